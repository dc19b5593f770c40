"""`finops-operator demo`: its arguments here, the demo itself in finops_devtools.

The operator never loads the simulator, the dev cluster or the demo: `run` imports
`finops_devtools.demo` only when the demo command is the one that runs.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Final

DEFAULT_OUTPUT: Final = Path(tempfile.gettempdir()) / "finops-operator-demo"


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} must be at least 1")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--days", type=_positive, default=10, help="simulated days of history (default 10)"
    )
    parser.add_argument("--teams", type=_positive, default=12, help="simulated teams (default 12)")
    parser.add_argument("--seed", type=int, default=7, help="seed of the simulated cluster")
    parser.add_argument(
        "--scrape-interval",
        type=int,
        default=300,
        choices=(15, 30, 60, 300),
        help="seconds between simulated scrapes (default 300; smaller is slower)",
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=DEFAULT_OUTPUT,
        help=f"folder for the showback report (default {DEFAULT_OUTPUT}; kept after the demo)",
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        default=None,
        help="work directory (default: a new temporary one); implies --keep",
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the work directory (data, logs, manifests)"
    )
    parser.add_argument(
        "--hold",
        action="store_true",
        help="after the tour, keep everything running until Ctrl-C (to explore)",
    )
    parser.add_argument(
        "--timeout", type=float, default=180.0, help="seconds to wait for the CostReports"
    )
    parser.add_argument("--prometheus", default=None, help="prometheus binary (default: $PATH)")
    parser.add_argument("--promtool", default=None, help="promtool binary (default: $PATH)")


def run(args: argparse.Namespace) -> int:
    try:
        from finops_devtools import demo
    except ModuleNotFoundError as err:
        # The demo is in the finops-devtools distribution, which neither the operator's
        # wheel nor the image holds (docs/architecture.md, "Decisions").
        if err.name is None or err.name.split(".")[0] != "finops_devtools":
            raise
        print(
            "error: the demo is not part of this installation: install finops-devtools "
            "(the operator's wheel and image hold the operator only); from a source "
            "checkout: pip install -e ./devtools, or run scripts/bootstrap.sh",
            file=sys.stderr,
        )
        return 2
    return demo.run(args)
