"""`finops-operator lint` through the real command line, as a CI pipeline runs it.

The expected findings on examples/manifests were written by hand from the rules
(tests/lint_expected/examples.json), not produced by the tool.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support.paths import ROOT

DATA = Path("tests/data")
EXPECTED = ROOT / "tests" / "lint_expected" / "examples.json"


def lint(*args: str, stdin: str | None = None, env: dict[str, str] | None = None) -> Any:
    environment = {k: v for k, v in os.environ.items() if k != "FINOPS_CONFIG"}
    environment.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "finops_operator.cli", "lint", *args],
        cwd=ROOT,
        input=stdin,
        capture_output=True,
        text=True,
        env=environment,
        timeout=60,
        check=False,
    )


def test_examples_give_exactly_the_expected_findings() -> None:
    done = lint("--format", "json", "examples/manifests")
    assert done.stderr == ""
    assert json.loads(done.stdout) == json.loads(EXPECTED.read_text())
    assert done.returncode == 1


def test_examples_in_text_name_each_object_key_and_rule() -> None:
    done = lint("examples/manifests")
    assert done.returncode == 1
    lines = done.stdout.splitlines()
    assert len(lines) == 8
    assert (
        "examples/manifests/job-pytorch-ddp-training.yaml: Job ml-training/llm-pretrain-run-0142: "
        "invalid resilio.tech/team='ML-Research' "
        "(must match ^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$); "
        "invalid resilio.tech/environment='prod' "
        "(must be one of production, staging, development); "
        "invalid resilio.tech/cost-center='1234' (must match ^cc-[0-9]+$)"
    ) in lines
    assert (
        "examples/manifests/pod-notebook.yaml: Pod data-science/jupyter-alice: "
        "missing resilio.tech/feature; missing resilio.tech/cost-center"
    ) in lines
    assert lines[-1] == "checked 22 workload(s): 7 with cost-label violations"


def test_a_malformed_file_is_named_with_exit_2_and_the_others_still_reported() -> None:
    done = lint("--format", "json", str(DATA / "malformed"))
    assert done.returncode == 2
    errors = done.stderr.splitlines()
    assert errors == [
        "error: tests/data/malformed/broken-yaml.yaml: cannot parse YAML at line 19, "
        "column 5: did not find expected ',' or '}'",
        "error: tests/data/malformed/scalar-document.yaml: document 1 is a string, "
        "not a Kubernetes object",
    ]
    report = json.loads(done.stdout)
    assert report["checked"] == 3
    assert [(f["file"], f["name"]) for f in report["findings"]] == [
        ("tests/data/malformed/broken-yaml.yaml", "before-the-break"),
        ("tests/data/malformed/scalar-document.yaml", "after-the-scalar"),
        ("tests/data/malformed/valid-untagged.yaml", "untagged-training"),
    ]
    assert report["errors"] == [e.removeprefix("error: ") for e in errors]


def test_a_missing_path_exits_2_naming_it() -> None:
    done = lint(str(DATA / "clean"), "does/not/exist.yaml")
    assert done.returncode == 2
    assert "error: does/not/exist.yaml: no such file or folder" in done.stderr


def test_a_clean_folder_exits_0() -> None:
    done = lint(str(DATA / "clean"))
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout == "checked 2 workload(s): 0 with cost-label violations\n"


def test_stdin_is_read_for_a_dash() -> None:
    manifest = (ROOT / "examples/manifests/pod-notebook.yaml").read_text()
    done = lint("--format", "json", "-", stdin=manifest)
    assert done.returncode == 1
    report = json.loads(done.stdout)
    assert report["checked"] == 1
    assert report["findings"][0]["file"] == "<stdin>"
    assert report["findings"][0]["name"] == "jupyter-alice"


def test_stdin_and_files_together() -> None:
    clean = (ROOT / DATA / "clean/compliant.yaml").read_text()
    done = lint("-", "examples/manifests/pod-notebook.yaml", stdin=clean)
    assert done.returncode == 1
    assert done.stdout.splitlines()[-1] == "checked 3 workload(s): 1 with cost-label violations"


CUSTOM = """\
labels:
  resilio.tech/cost-center: null          # finance does not use cost centers here
  resilio.tech/environment: {values: [production, staging, development, prod]}
  resilio.tech/team: {pattern: '^[A-Za-z-]+$'}
"""


@pytest.mark.parametrize(
    "how",
    [
        pytest.param("flag", id="given with --config"),
        pytest.param("env", id="given in FINOPS_CONFIG"),
    ],
)
def test_a_custom_configuration_changes_the_findings(how: str, tmp_path: Path) -> None:
    config = tmp_path / "finops.yaml"
    config.write_text(CUSTOM)
    args = ["--config", str(config)] if how == "flag" else []
    env = {"FINOPS_CONFIG": str(config)} if how == "env" else {}
    done = lint(*args, "--format", "json", "examples/manifests", env=env)
    findings = {f["name"]: f for f in json.loads(done.stdout)["findings"]}
    assert "llm-pretrain-run-0142" not in findings
    assert "embed-reviews-2024-11-04" not in findings
    assert "rag-embedder" not in findings
    assert findings["jupyter-alice"]["missing"] == ["resilio.tech/feature"]
    assert findings["nightly-finetune-llama"]["missing"] == []
    assert done.returncode == 1


def test_custom_gpu_resources_decide_what_is_a_gpu_workload(tmp_path: Path) -> None:
    config = tmp_path / "finops.yaml"
    config.write_text("gpuResources: [example.com/npu, cpu]\n")
    zero_gpu = "examples/manifests/zero-gpu-workloads.yaml"
    done = lint("--config", str(config), "--format", "json", zero_gpu)
    report = json.loads(done.stdout)
    assert [f["name"] for f in report["findings"]] == [
        "llm-router-cpu",
        "dataset-dedup",
        "cleanup-checkpoints",
    ]
    assert done.returncode == 1


@pytest.mark.parametrize(
    ("text", "named"),
    [
        pytest.param("pricing:\n  gpuHorly: {}\n", "pricing.gpuHorly: unknown key", id="a typo"),
        pytest.param("mode: strict\n", "mode: Input should be", id="a bad value"),
        pytest.param(
            "labels:\n  resilio.tech/team: {pattern: '(['}\n",
            "labels['resilio.tech/team'].pattern: invalid regular expression",
            id="a bad pattern",
        ),
        pytest.param("mode: [\n", "not valid YAML", id="a file that is not YAML"),
    ],
)
def test_a_bad_configuration_exits_2_naming_the_key(text: str, named: str, tmp_path: Path) -> None:
    config = tmp_path / "finops.yaml"
    config.write_text(text)
    done = lint("--config", str(config), str(DATA / "clean"))
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.startswith(f"error: {config}:")
    assert named in done.stderr


def test_a_missing_configuration_file_exits_2(tmp_path: Path) -> None:
    done = lint("--config", str(tmp_path / "nope.yaml"), str(DATA / "clean"))
    assert done.returncode == 2
    assert "cannot read the configuration file" in done.stderr


# --- issue 13, item 6: hostile quantities are findings or input errors, never tracebacks --


@pytest.mark.parametrize(
    ("quantity", "code"),
    [
        ('"1e999999999999"', 1),  # not a quantity the API server could store: one GPU
        ('"-1e999999999999"', 1),
        ('"16Ei"', 1),
        ("9" * 5000, 2),  # PyYAML cannot build the integer: an input error, named
    ],
)
def test_a_hostile_gpu_quantity_never_gives_a_traceback(quantity: str, code: int) -> None:
    manifest = (
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: ml}\nspec:\n"
        "  containers:\n  - name: c\n"
        f"    resources: {{limits: {{nvidia.com/gpu: {quantity}}}}}\n"
    )
    done = lint("-", stdin=manifest)
    assert done.returncode == code, done.stderr
    assert "Traceback" not in done.stderr
    if code == 2:
        assert "<stdin>: cannot parse YAML" in done.stderr


def test_hostile_inputs_exit_2_naming_each_never_a_traceback(tmp_path: Path) -> None:
    """Once: /dev/zero gave a MemoryError traceback with exit 1 ("violations"), and a
    FIFO hung; an alias bomb exhausts memory wherever something walks it."""
    fifo = tmp_path / "pipe.yaml"
    os.mkfifo(fifo)
    levels = ["l0: &l0 [a, a, a, a, a, a, a, a, a, a]"]
    levels += [f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 10) + "]" for i in range(1, 9)]
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text("\n".join(levels) + "\n")
    done = lint("/dev/zero", str(fifo), str(bomb), str(DATA / "clean"))
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert "error: /dev/zero: not read: not a regular file" in done.stderr
    assert f"error: {fifo}: not read: not a regular file" in done.stderr
    assert f"error: {bomb}: document 1: its aliases expand to more than" in done.stderr
    assert "3 input error(s)" in done.stdout


# --- issue 19, item 4: the operator's ConfigMap checked in CI, before a typo reaches a restart


def test_config_alone_checks_the_installed_configmap_as_shipped() -> None:
    done = lint("--config", "manifests/base/config.yaml")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "manifests/base/config.yaml: a valid configuration (mode audit)\n"


def test_a_typo_in_the_configmap_exits_2_naming_the_key(tmp_path: Path) -> None:
    shipped = (ROOT / "manifests" / "base" / "config.yaml").read_text()
    assert "    mode: audit\n" in shipped
    typo = tmp_path / "config.yaml"
    typo.write_text(shipped.replace("    mode: audit\n", "    mode: enforced\n"))
    done = lint("--config", str(typo))
    assert done.returncode == 2
    assert f"error: {typo}: invalid configuration:" in done.stderr
    assert "mode: Input should be 'enforce', 'audit' or 'off'" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("kind: ConfigMap\napiVersion: v1\ndata: {}\n", "without a 'config.yaml' key"),
        ("kind: ConfigMap\ndata:\n  config.yaml: 'mode: [\n'\n", "data.config.yaml is not valid"),
    ],
)
def test_a_configmap_without_a_usable_config_exits_2(text: str, named: str, tmp_path: Path) -> None:
    config = tmp_path / "cm.yaml"
    config.write_text(text)
    done = lint("--config", str(config))
    assert done.returncode == 2 and named in done.stderr, done.stderr


def test_no_path_and_no_config_exits_2_saying_what_to_give() -> None:
    done = lint()
    assert done.returncode == 2
    assert "nothing to check" in done.stderr
