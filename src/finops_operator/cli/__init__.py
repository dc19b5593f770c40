"""The `finops-operator` command line: parses arguments and hands off to one module per command.

Exit codes follow DESIGN.md: 0 clean, 1 findings, 2 input that could not be used.
Each command is a module here with `add_arguments` and `run`; `demo` loads the
development tools only when it runs.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from finops_operator.cli import demo, lint, render, report, run
from finops_operator.errors import ConfigError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="finops-operator",
        description="Cost visibility and control for GPU and AI workloads on Kubernetes.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, module, summary in (
        ("lint", lint, "check manifests for the cost labels, offline"),
        ("run", run, "run the operator against the current kubeconfig"),
        ("render", render, "print what the operator writes: rules, admission policies, dashboards"),
        ("report", report, "showback for a period from Prometheus"),
        ("demo", demo, "the whole product on one machine: emulated cluster, real Prometheus"),
    ):
        command = commands.add_parser(name, help=summary)
        module.add_arguments(command)
        command.set_defaults(handler=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "run":
        run.check(parser, args)
    try:
        code: int = args.handler(args)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return code


if __name__ == "__main__":
    sys.exit(main())
