"""Writes the `gpu-workload` matchCondition of the shipped webhooks from the domain's CEL.

The operator writes `gpu-workload` into its webhook configurations from its own
`gpuResources` (`webhook_conditions.gpu_condition`). The manifests, and the chart's
copy of them, ship the default configuration's condition, and they must ship it
byte for byte: then an operator on the default configuration finds the condition
already there and changes nothing, so the field stays Helm's in the API server's
managed fields and `helm upgrade` (server-side apply) meets no conflict. A text
that only decided the same would be rewritten by the operator at its start, and
every later upgrade would need `--force-conflicts`.

The expression is one long line; it is written as a folded YAML scalar (`>-`),
broken at single spaces, which YAML reads back as the same line.
`--check` exits 1 when a committed file is out of date (a test runs it).
"""

from __future__ import annotations

import argparse
import re
import sys
import textwrap
from pathlib import Path

from finops_operator.domain.config import Config
from finops_operator.domain.policies.admission_policy import GPU_CONDITION
from finops_operator.domain.policies.webhook_conditions import gpu_condition

ROOT = Path(__file__).resolve().parent.parent
TARGETS = (
    ROOT / "manifests" / "base" / "webhooks.yaml",
    ROOT / "charts" / "finops-operator" / "files" / "webhooks.yaml",
)
# `- name: gpu-workload`, its `expression:` key, and the scalar's lines (more indented).
_CONDITION = re.compile(
    rf"^(?P<indent> *)- name: {GPU_CONDITION}\n(?P=indent)  expression: .*\n"
    rf"(?:(?P=indent)    .*\n)*",
    re.MULTILINE,
)


def folded(expression: str, indent: str) -> str:
    """`expression` as a `>-` scalar under `indent`, each line broken at one space."""
    if "  " in expression or expression != expression.strip() or "\n" in expression:
        raise ValueError("a folded scalar keeps only single inner spaces on one line")
    lines = textwrap.wrap(expression, width=88, break_long_words=False, break_on_hyphens=False)
    body = "".join(f"{indent}    {line}\n" for line in lines)
    return f"{indent}- name: {GPU_CONDITION}\n{indent}  expression: >-\n{body}"


def rewritten(text: str) -> str:
    expression = gpu_condition(Config())["expression"]
    new, count = _CONDITION.subn(lambda m: folded(expression, m.group("indent")), text)
    if count == 0:
        raise ValueError(f"no `- name: {GPU_CONDITION}` condition found")
    return new


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when a file is stale")
    args = parser.parse_args(argv)
    stale = []
    for target in TARGETS:
        text = target.read_text()
        new = rewritten(text)
        if new != text:
            stale.append(target)
            if not args.check:
                target.write_text(new)
    if args.check and stale:
        names = ", ".join(str(t.relative_to(ROOT)) for t in stale)
        print(f"out of date: {names}; run scripts/gen_webhook_gpu_condition.py", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
