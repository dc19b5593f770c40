"""The `finops-operator` command line: parses arguments and hands off to one module per command.

Exit codes follow DESIGN.md: 0 clean, 1 findings, 2 input that could not be used.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from finops_operator import demo, render_command, report_command
from finops_operator.config import ConfigError, load_config


def _lint(args: argparse.Namespace) -> int:
    from finops_operator.label_check import LabelPolicy
    from finops_operator.lint import format_json, format_text, lint_paths

    policy = LabelPolicy(load_config(args.config))
    result = lint_paths(args.paths, policy)
    for error in result.errors:
        print(f"error: {error}", file=sys.stderr)
    print(format_json(result) if args.format == "json" else format_text(result))
    return result.exit_code


def _run(args: argparse.Namespace) -> int:
    from finops_operator.operator import run_operator

    return run_operator(
        config=load_config(args.config),
        webhook_host=args.webhook_host,
        webhook_port=args.webhook_port,
        webhook_cert=args.webhook_cert,
        webhook_key=args.webhook_key,
        metrics_port=args.metrics_port,
        namespace=args.namespace,
        verbose=args.verbose,
        webhook_secret=args.webhook_secret,
        leader_election=not args.no_leader_election,
        lease_seconds=args.lease_seconds,
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="finops-operator",
        description="Cost visibility and control for GPU and AI workloads on Kubernetes.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    lint = commands.add_parser("lint", help="check manifests for the cost labels, offline")
    lint.add_argument("paths", nargs="+", metavar="PATH", help="files, folders, or - for stdin")
    lint.add_argument("--format", choices=("text", "json"), default="text")
    lint.add_argument("--config", help="configuration file (default: $FINOPS_CONFIG or built in)")
    lint.set_defaults(handler=_lint)

    run = commands.add_parser("run", help="run the operator against the current kubeconfig")
    run.add_argument("--config", help="configuration file (default: $FINOPS_CONFIG or built in)")
    run.add_argument("--webhook-host", default="0.0.0.0", help="address the webhook listens on")
    run.add_argument("--webhook-port", type=int, default=9443, help="HTTPS port for admission")
    run.add_argument("--webhook-cert", help="TLS certificate (PEM); self-signed when absent")
    run.add_argument("--webhook-key", help="TLS private key (PEM) for --webhook-cert")
    run.add_argument(
        "--webhook-secret",
        help="TLS Secret in the operator's namespace shared by all replicas: created once "
        "if absent, its CA set as caBundle of the webhook configurations",
    )
    run.add_argument("--metrics-port", type=int, default=8080, help="port of /metrics and /healthz")
    run.add_argument(
        "--namespace",
        default=None,
        help="the operator's own namespace (default: $POD_NAMESPACE or finops-system)",
    )
    run.add_argument(
        "--no-leader-election",
        action="store_true",
        help="write without holding the Lease (only for a single replica)",
    )
    run.add_argument(
        "--lease-seconds",
        type=int,
        default=15,
        help="how long the leader's Lease holds without renewal (renewed every third of it)",
    )
    run.add_argument("--verbose", action="store_true", help="debug logging")
    run.set_defaults(handler=_run)

    render = commands.add_parser("render", help="print the PrometheusRule a CostPolicy becomes")
    render_command.add_arguments(render)
    render.set_defaults(handler=render_command.run)

    report = commands.add_parser("report", help="showback for a period from Prometheus")
    report_command.add_arguments(report)
    report.set_defaults(handler=report_command.run)

    tour = commands.add_parser(
        "demo", help="the whole product on one machine: emulated cluster, real Prometheus"
    )
    demo.add_arguments(tour)
    tour.set_defaults(handler=demo.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "run" and bool(args.webhook_cert) != bool(args.webhook_key):
        parser.error("--webhook-cert and --webhook-key go together")
    if args.command == "run" and args.webhook_cert and args.webhook_secret:
        parser.error(
            "--webhook-secret replaces --webhook-cert/--webhook-key; give one or the other"
        )
    try:
        code: int = args.handler(args)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return code


if __name__ == "__main__":
    sys.exit(main())
