"""Rewrite tests/golden/rules/ from tests/golden/policies/ after a deliberate rendering change.

Also tests/golden/admission/out-NAME.yaml (what `render --admission-policy` prints)
from each configuration tests/golden/admission/in-NAME.yaml.

Run `.venv/bin/python -m tests.golden.regenerate`, then read `git diff tests/golden`
before committing: every changed line is a change users will see in their rules.
"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

from finops_operator.cli.render import dump_yaml, render_admission_policies
from finops_operator.domain import conventions
from finops_operator.domain.config import parse_config
from finops_operator.domain.rules.prometheus_rule import (
    recording_rules_prometheus_rule,
    render_policy,
    rule_groups_file,
)

GOLDEN = Path(__file__).resolve().parent
POLICIES = GOLDEN / "policies"
RULES = GOLDEN / "rules"
RECORDING_RULES_FILE = RULES / f"{conventions.RECORDING_RULES_NAME}.yaml"
# The same rules reading tokens from OpenTelemetry GenAI (`llmGateway.preset: otel-genai`).
OTEL_GENAI_RECORDING_RULES_FILE = RULES / f"{conventions.RECORDING_RULES_NAME}-otel-genai.yaml"
OTEL_GENAI_GATEWAY = {"llmGateway": {"preset": "otel-genai"}}
ADMISSION = GOLDEN / "admission"


def expected_admission() -> dict[Path, str]:
    """Each golden admission-policy file and what rendering its configuration gives today."""
    expected = {}
    for config_file in sorted(ADMISSION.glob("in-*.yaml")):
        config = parse_config(yaml.safe_load(config_file.read_text(encoding="utf-8")))
        target = ADMISSION / ("out-" + config_file.name.removeprefix("in-"))
        expected[target] = dump_yaml(render_admission_policies(config))
    return expected


def expected_rules() -> dict[Path, str]:
    """Each golden rules file and the text rendering produces for it today."""
    expected = {RECORDING_RULES_FILE: dump_yaml([recording_rules_prometheus_rule()])}
    otel_genai = parse_config(OTEL_GENAI_GATEWAY).llm_gateway
    expected[OTEL_GENAI_RECORDING_RULES_FILE] = dump_yaml(
        [recording_rules_prometheus_rule(gateway=otel_genai)]
    )
    for policy_file in sorted(POLICIES.glob("*.yaml")):
        policy = yaml.safe_load(policy_file.read_text(encoding="utf-8"))
        rule = render_policy(policy, source=str(policy_file.relative_to(GOLDEN)))
        expected[RULES / policy_file.name] = dump_yaml([rule])
    return expected


def write_rule_groups(folder: Path) -> list[Path]:
    """Each golden PrometheusRule as the plain `groups:` file promtool reads, into `folder`."""
    written = []
    for golden in sorted(RULES.glob("*.yaml")):
        rule = yaml.safe_load(golden.read_text(encoding="utf-8"))
        target = folder / golden.name
        target.write_text(dump_yaml([rule_groups_file(rule)]), encoding="utf-8")
        written.append(target)
    return written


def main() -> int:
    expected = expected_rules() | expected_admission()
    stale_files = set(RULES.glob("*.yaml")) | set(ADMISSION.glob("out-*.yaml"))
    for stale in stale_files - set(expected):
        stale.unlink()
        print(f"removed {stale.relative_to(GOLDEN.parent.parent)}")
    for path, text in expected.items():
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path.relative_to(GOLDEN.parent.parent)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
