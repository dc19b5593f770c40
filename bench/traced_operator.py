"""`finops-operator` under tracemalloc, for `bench/scale.py --tracemalloc`.

    python bench/traced_operator.py OUT run --config ...

Runs the CLI as `python -m finops_operator.cli` would, with tracemalloc on from
the first import. On SIGUSR2 it writes to OUT the traced heap (current and
peak) and the 25 allocation sites holding the most memory, grouped by file and
line, so the benchmark can say where the operator's memory goes. Nothing of the
operator is changed; this is a wrapper the benchmark starts instead of it.
"""

from __future__ import annotations

import signal
import sys
import tracemalloc
from pathlib import Path
from types import FrameType

tracemalloc.start(1)


def main() -> int:
    out = Path(sys.argv[1])

    def dump(_signum: int, _frame: FrameType | None) -> None:
        current, peak = tracemalloc.get_traced_memory()
        snapshot = tracemalloc.take_snapshot()
        lines = [f"traced heap {current / 2**20:.1f} MB, peak {peak / 2**20:.1f} MB"]
        for stat in snapshot.statistics("lineno")[:25]:
            frame = stat.traceback[0]
            where = f"{frame.filename}:{frame.lineno}"
            lines.append(f"{stat.size / 2**20:8.1f} MB {stat.count:9,} blocks  {where}")
        out.write_text("\n".join(lines) + "\n")

    signal.signal(signal.SIGUSR2, dump)
    from finops_operator.cli import main as cli_main

    sys.argv = ["finops-operator", *sys.argv[2:]]
    return int(cli_main() or 0)


if __name__ == "__main__":
    sys.exit(main())
