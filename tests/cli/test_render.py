"""`finops-operator render`: YAML on stdout, or exit 2 with the field named on stderr."""

from __future__ import annotations

import io
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from finops_operator.cli import main
from tests.golden.regenerate import ADMISSION, POLICIES, RECORDING_RULES_FILE, RULES
from tests.support.tools import needs_tool

PROMTOOL = shutil.which("promtool")

HOSTILE = """\
apiVersion: finops.resilio.tech/v1alpha1
kind: CostPolicy
metadata: {name: sneaky, namespace: team-a}
spec:
  selector: {team: 'a"} or vector(1) #'}
  anomaly: {threshold: 50}
"""


def render(
    args: list[str], capsys: pytest.CaptureFixture[str], stdin: str | None = None
) -> tuple[int, str, str]:
    if stdin is not None:
        monkeypatch = pytest.MonkeyPatch()
        monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
        try:
            code = main(["render", *args])
        finally:
            monkeypatch.undo()
    else:
        code = main(["render", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_render_prints_the_golden_prometheus_rule(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = render([str(POLICIES / "search-platform.yaml")], capsys)
    assert (code, err) == (0, "")
    assert out == (RULES / "search-platform.yaml").read_text(encoding="utf-8")


def test_render_recording_rules_prints_the_shared_rules(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = render(["--recording-rules"], capsys)
    assert code == 0
    assert out == RECORDING_RULES_FILE.read_text(encoding="utf-8")


def test_recording_rules_take_a_namespace_and_labels(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = render(
        ["--recording-rules", "--namespace", "monitoring", "--label", "release=kps"], capsys
    )
    metadata = yaml.safe_load(out)["metadata"]
    assert code == 0 and metadata["namespace"] == "monitoring"
    assert metadata["labels"]["release"] == "kps"


def test_a_team_name_with_promql_exits_2_naming_the_field(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    policy = tmp_path / "sneaky.yaml"
    policy.write_text(HOSTILE, encoding="utf-8")
    code, out, err = render([str(policy)], capsys)
    assert code == 2 and out == ""
    assert err.startswith(f"error: {policy}: spec.selector.team: ")


def test_a_policy_is_read_from_stdin(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = render(["-"], capsys, stdin=HOSTILE)
    assert code == 2 and "error: <stdin>: spec.selector.team:" in err
    good = (POLICIES / "every-team.yaml").read_text(encoding="utf-8")
    code, out, _ = render(["-"], capsys, stdin=good)
    assert code == 0 and yaml.safe_load(out)["kind"] == "PrometheusRule"


def test_several_policies_in_one_file_render_to_several_documents(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    both = tmp_path / "both.yaml"
    both.write_text(
        (POLICIES / "every-team.yaml").read_text(encoding="utf-8")
        + "---\n"
        + (POLICIES / "idle-notebooks.yaml").read_text(encoding="utf-8"),
        encoding="utf-8",
    )
    code, out, _ = render([str(both)], capsys)
    names = [doc["metadata"]["name"] for doc in yaml.safe_load_all(out)]
    assert code == 0 and names == ["costpolicy-every-team", "costpolicy-idle-notebooks"]


def test_the_bad_document_of_several_is_named_by_its_index(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    both = tmp_path / "both.yaml"
    both.write_text(
        (POLICIES / "every-team.yaml").read_text(encoding="utf-8") + "---\n" + HOSTILE,
        encoding="utf-8",
    )
    code, out, err = render([str(both)], capsys)
    assert code == 2 and out == ""
    assert f"error: {both}[1]: spec.selector.team:" in err


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("a: [unclosed", "not valid YAML"),
        ("", "no CostPolicy found"),
        ("- just\n- a list\n", "(top level)"),
    ],
)
def test_unreadable_input_exits_2_with_a_message(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, content: str, message: str
) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(content, encoding="utf-8")
    code, out, err = render([str(policy)], capsys)
    assert code == 2 and out == "" and message in err


def test_a_missing_file_exits_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = render([str(tmp_path / "absent.yaml")], capsys)
    assert code == 2 and "cannot read" in err


def test_a_policy_and_recording_rules_together_is_a_usage_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, _, err = render([str(POLICIES / "every-team.yaml"), "--recording-rules"], capsys)
    usage = "one of POLICY.yaml, --recording-rules, --admission-policy or --dashboards"
    assert code == 2 and usage in err
    code, _, _ = render([], capsys)
    assert code == 2


def test_a_budget_in_another_currency_than_the_configuration_exits_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("pricing: {currency: EUR}\n", encoding="utf-8")
    code, _, err = render(["--config", str(config), str(POLICIES / "team-budget.yaml")], capsys)
    assert code == 2 and "spec.budget.currency: USD differs" in err


@needs_tool("promtool")
def test_the_groups_format_is_a_file_promtool_accepts(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, out, _ = render(["--format", "groups", str(POLICIES / "search-platform.yaml")], capsys)
    assert code == 0
    rules = tmp_path / "rules.yaml"
    rules.write_text(out, encoding="utf-8")
    result = subprocess.run(
        [str(PROMTOOL), "check", "rules", str(rules)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


# --- issue 13, item 6: absurd numbers exit 2 naming the field, never a traceback -----

BIG_BUDGET = """\
apiVersion: finops.resilio.tech/v1alpha1
kind: CostPolicy
metadata: {name: big, namespace: team-a}
spec:
  selector: {team: search}
  %s
"""


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ("budget: {monthly: 100000000000000000000000000}", "spec.budget.monthly"),
        ("budget: {monthly: 1.0e+26}", "spec.budget.monthly"),
        ("budget: {monthly: 1.0e+400}", "spec.budget.monthly"),
        ("budget: {monthly: %s}" % ("9" * 5000), "POLICY"),
        ("anomaly: {threshold: 50, minHourlyCost: 1.0e+26}", "spec.anomaly.minHourlyCost"),
        ("anomaly: {threshold: 1.0e+26}", "spec.anomaly.threshold"),
        ("idle: {maxUtilization: 1.0e+26}", "spec.idle.maxUtilization"),
    ],
)
def test_an_absurd_number_exits_2_naming_the_field(
    spec: str, field: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = render(["-"], capsys, stdin=BIG_BUDGET % spec)
    assert (code, out) == (2, "")
    assert err.startswith("error: ") and "Traceback" not in err
    if field != "POLICY":
        assert field in err


def test_yaml_nested_too_deep_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = render(["-"], capsys, stdin="a: " + "[" * 5000 + "]" * 5000)
    assert (code, out) == (2, "")
    assert err.startswith("error: ")


def test_admission_policy_prints_the_golden_policies_of_the_configuration(
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = str(ADMISSION / "in-custom.yaml")
    code, out, err = render(["--admission-policy", "--config", config], capsys)
    assert (code, err) == (0, "")
    assert out == (ADMISSION / "out-custom.yaml").read_text(encoding="utf-8")
    code, out, _ = render(["--admission-policy", "--mutating-version", "v1"], capsys)
    kinds = {(d["apiVersion"], d["kind"]) for d in yaml.safe_load_all(out)}
    assert ("admissionregistration.k8s.io/v1", "MutatingAdmissionPolicy") in kinds
    assert ("admissionregistration.k8s.io/v1", "ValidatingAdmissionPolicyBinding") in kinds


def test_admission_policy_with_a_pattern_re2_cannot_run_exits_2_naming_it(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("labels:\n  resilio.tech/team: {pattern: '^(?<!x)[a-z]+$'}\n")
    code, out, err = render(["--admission-policy", "--config", str(config)], capsys)
    assert code == 2 and out == ""
    assert "labels['resilio.tech/team'].pattern" in err and "lookbehind" in err
    assert "Traceback" not in err
    code, _, err = render(["--admission-policy", "--recording-rules"], capsys)
    assert code == 2 and "one of" in err
