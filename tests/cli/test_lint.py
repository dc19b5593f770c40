"""The lint module in process: reading files, folders, streams and Lists, and its output."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import pytest
import yaml

from finops_operator.cli import lint
from finops_operator.cli.lint import (
    MAX_EXPANDED_NODES,
    LintResult,
    expand_paths,
    expanded_nodes,
    format_json,
    format_text,
    lint_paths,
    parse_documents,
)
from finops_operator.domain.config import Config, parse_config
from finops_operator.domain.policies.label_check import LabelPolicy

POLICY = LabelPolicy(Config())
GPU_POD = """\
apiVersion: v1
kind: Pod
metadata: {name: %s, namespace: ml}
spec:
  containers: [{name: c, resources: {limits: {nvidia.com/gpu: 1}}}]
"""


def lint_text(text: str, policy: LabelPolicy = POLICY) -> LintResult:
    return lint_paths(["-"], policy, stdin=io.StringIO(text))


@pytest.mark.parametrize(
    ("text", "names", "errors"),
    [
        pytest.param("", [], [], id="an empty stream has no objects"),
        pytest.param("---\n---\n", [], [], id="empty documents are skipped"),
        pytest.param("# only a comment\n", [], [], id="a comment alone is an empty document"),
        pytest.param(GPU_POD % "a", ["a"], [], id="one document"),
        pytest.param(GPU_POD % "a" + "---\n" + GPU_POD % "b", ["a", "b"], [], id="two documents"),
        pytest.param(
            "kind: List\nitems:\n"
            "- {kind: Pod, metadata: {name: a}}\n- {kind: Pod, metadata: {name: b}}\n",
            ["a", "b"],
            [],
            id="a List is opened",
        ),
        pytest.param(
            "kind: PodList\nitems:\n- {kind: Pod, metadata: {name: a}}\n",
            ["a"],
            [],
            id="a typed List is opened",
        ),
        pytest.param(
            "kind: List\nitems:\n- kind: List\n  items: [{kind: Pod, metadata: {name: a}}]\n",
            ["a"],
            [],
            id="a List inside a List is opened",
        ),
        pytest.param(
            "kind: List\nitems:\n- {kind: Pod, metadata: {name: a}}\n- 42\n",
            ["a"],
            ["s: document 1, item 1 is a number, not an object"],
            id="a List item that is not an object is named",
        ),
        pytest.param(
            "- a\n- b\n---\n" + GPU_POD % "a",
            ["a"],
            ["s: document 1 is a list, not a Kubernetes object"],
            id="a list document is named and the next still read",
        ),
        pytest.param(
            "hello\n",
            [],
            ["s: document 1 is a string, not a Kubernetes object"],
            id="a scalar document is named",
        ),
        pytest.param(
            GPU_POD % "a" + "---\nkind: [\n",
            ["a"],
            ["s: cannot parse YAML at line 8, column 1: did not find expected node content"],
            id="documents before a syntax error are kept",
        ),
    ],
)
def test_parse_documents(text: str, names: list[str], errors: list[str]) -> None:
    objects, found_errors = parse_documents(text, "s")
    assert [o["metadata"]["name"] for o in objects] == names
    assert found_errors == errors


def test_folders_are_walked_for_yaml_only_in_a_stable_order(tmp_path: Path) -> None:
    (tmp_path / "b").mkdir()
    for name in ("b/z.yml", "a.yaml", "notes.md", "b/c.yaml", "x.json"):
        (tmp_path / name).write_text("")
    errors: list[str] = []
    files = list(expand_paths([str(tmp_path)], errors))
    assert [Path(f).relative_to(tmp_path).as_posix() for f in files] == [
        "a.yaml",
        "b/c.yaml",
        "b/z.yml",
    ]
    assert errors == []


def test_a_file_named_explicitly_is_read_whatever_its_suffix(tmp_path: Path) -> None:
    file = tmp_path / "pod.json"
    file.write_text(json.dumps({"kind": "Pod", "metadata": {"name": "p"}}))
    assert list(expand_paths([str(file)], [])) == [str(file)]


def test_a_file_given_twice_is_read_once(tmp_path: Path) -> None:
    file = tmp_path / "a.yaml"
    file.write_text("")
    assert list(expand_paths([str(file), str(tmp_path), str(file)], [])) == [str(file)]


def test_a_missing_path_is_an_error_and_the_rest_is_read(tmp_path: Path) -> None:
    good = tmp_path / "pod.yaml"
    good.write_text(GPU_POD % "p")
    result = lint_paths([str(tmp_path / "nope"), str(good)], POLICY)
    assert result.errors == [f"{tmp_path / 'nope'}: no such file or folder"]
    assert result.checked == 1
    assert result.exit_code == 2


def test_a_file_that_is_not_utf8_is_named(tmp_path: Path) -> None:
    file = tmp_path / "latin1.yaml"
    file.write_bytes(b"kind: Pod\nmetadata: {name: caf\xe9}\n")
    result = lint_paths([str(file)], POLICY)
    assert len(result.errors) == 1
    assert result.errors[0].startswith(f"{file}: cannot read:")


@pytest.mark.parametrize(
    ("text", "checked", "findings", "code"),
    [
        pytest.param(GPU_POD % "p", 1, 1, 1, id="an untagged GPU Pod is a finding"),
        pytest.param(
            "kind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: c}]}\n",
            1,
            0,
            0,
            id="a CPU Pod is checked and clean",
        ),
        pytest.param(
            "kind: ConfigMap\nmetadata: {name: c}\n", 0, 0, 0, id="a ConfigMap is not checked"
        ),
        pytest.param(
            "apiVersion: batch.volcano.sh/v1alpha1\nkind: Job\nmetadata: {name: j}\n",
            0,
            0,
            0,
            id="a custom resource named Job is not checked",
        ),
        pytest.param(
            (GPU_POD % "p").replace("namespace: ml", "namespace: kube-system"),
            1,
            0,
            0,
            id="an exempt GPU Pod is counted but not a finding",
        ),
    ],
)
def test_what_is_checked_and_found(text: str, checked: int, findings: int, code: int) -> None:
    result = lint_text(text)
    assert (result.checked, len(result.findings), result.exit_code) == (checked, findings, code)


def test_stdin_is_named_stdin_in_findings() -> None:
    result = lint_text(GPU_POD % "p")
    assert result.findings[0].file == "<stdin>"


def test_an_object_without_namespace_is_reported_with_none() -> None:
    result = lint_text((GPU_POD % "p").replace(", namespace: ml", ""))
    assert result.findings[0].as_json()["namespace"] is None


def test_a_generate_name_stands_in_for_a_name() -> None:
    result = lint_text((GPU_POD % "p").replace("name: p,", "generateName: train-,"))
    assert result.findings[0].name == "train-"


def test_a_name_that_is_a_number_is_reported_as_text() -> None:
    result = lint_text(GPU_POD % "123")
    assert result.findings[0].as_json()["name"] == "123"


def test_the_configuration_changes_the_findings() -> None:
    policy = LabelPolicy(
        parse_config({"labels": {f"resilio.tech/{k}": None for k in ("feature", "cost-center")}})
    )
    text = (GPU_POD % "p").replace(
        "namespace: ml}",
        "namespace: ml, labels: {resilio.tech/team: a, resilio.tech/environment: staging, "
        "resilio.tech/workload-type: batch}}",
    )
    assert lint_text(text, policy).exit_code == 0
    assert lint_text(text).exit_code == 1


def test_format_json_is_the_contract() -> None:
    result = lint_text(GPU_POD % "p")
    assert json.loads(format_json(result)) == {
        "checked": 1,
        "findings": [
            {
                "file": "<stdin>",
                "kind": "Pod",
                "namespace": "ml",
                "name": "p",
                "missing": [
                    "resilio.tech/team",
                    "resilio.tech/feature",
                    "resilio.tech/environment",
                    "resilio.tech/workload-type",
                    "resilio.tech/cost-center",
                ],
                "invalid": {},
            }
        ],
    }


def test_format_json_adds_errors_only_when_there_are_some() -> None:
    assert "errors" not in json.loads(format_json(lint_text("")))
    assert json.loads(format_json(lint_text("hello\n")))["errors"] == [
        "<stdin>: document 1 is a string, not a Kubernetes object"
    ]


def test_format_text_names_file_object_and_each_problem_with_its_rule() -> None:
    text = (GPU_POD % "p").replace(
        "namespace: ml}", "namespace: ml, labels: {resilio.tech/environment: prod}}"
    )
    lines = format_text(lint_text(text)).splitlines()
    assert lines[0] == (
        "<stdin>: Pod ml/p: missing resilio.tech/team; missing resilio.tech/feature; "
        "missing resilio.tech/workload-type; missing resilio.tech/cost-center; "
        "invalid resilio.tech/environment='prod' "
        "(must be one of production, staging, development)"
    )
    assert lines[1] == "checked 1 workload(s): 1 with cost-label violations"


def test_format_text_counts_input_errors() -> None:
    assert format_text(lint_text("hello\n")) == (
        "checked 0 workload(s): 0 with cost-label violations, 1 input error(s)"
    )


def test_lint_knows_no_mode_and_no_owner_a_manifest_is_checked_as_written() -> None:
    owned = GPU_POD.replace(
        "namespace: ml}",
        "namespace: ml, ownerReferences: [{kind: ReplicaSet, name: r, uid: u, controller: true}]}",
    )
    for policy in (LabelPolicy(Config(mode="off")), POLICY):
        result = lint_text(GPU_POD % "a" + "---\n" + owned % "b", policy)
        assert [f.name for f in result.findings] == ["a", "b"]


def test_lint_counts_non_gpu_and_exempt_workloads_but_not_other_objects() -> None:
    text = (
        "{kind: Pod, metadata: {name: cpu}}\n---\n"
        + GPU_POD.replace("namespace: ml", "namespace: kube-system") % "exempt"
        + "---\n{kind: ConfigMap, metadata: {name: c}}\n---\n"
        + "{kind: Job, apiVersion: batch.volcano.sh/v1alpha1, metadata: {name: v}}\n"
    )
    result = lint_text(text)
    assert (result.checked, result.findings) == (2, [])


def bomb(levels: int, width: int = 10) -> str:
    """A "billion laughs": each level an anchored list of `width` aliases of the last."""
    lines = ["l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for level in range(1, levels):
        lines.append(f"l{level}: &l{level} [" + ", ".join([f"*l{level - 1}"] * width) + "]")
    return "\n".join(lines) + "\n"


def test_expanded_nodes_counts_each_alias_as_the_whole_node_it_stands_for() -> None:
    node = yaml.compose("a: &x [1, 2]\nb: [*x, *x]\n")
    # the mapping, keys a and b, x (a list of 2), b's list holding x twice
    assert expanded_nodes(node) == 1 + 2 + 3 + (1 + 3 + 3)


def test_expanded_nodes_stops_counting_past_the_limit() -> None:
    assert expanded_nodes(yaml.compose(bomb(9)), limit=1000) == 1001


def test_an_alias_bomb_is_named_and_not_built_and_other_documents_are_read() -> None:
    text = GPU_POD % "before" + "---\n" + bomb(9) + "---\n" + GPU_POD % "after"
    objects, errors = parse_documents(text, "bomb.yaml")
    assert [o["metadata"]["name"] for o in objects] == ["before", "after"]
    assert errors == [
        f"bomb.yaml: document 2: its aliases expand to more than {MAX_EXPANDED_NODES:,} "
        "nodes (a YAML alias bomb?); not read"
    ]


def test_ordinary_anchors_and_aliases_still_work() -> None:
    text = "x-labels: &labels {app: a}\n" + (GPU_POD % "p").replace(
        "namespace: ml}", "namespace: ml, labels: *labels}"
    )
    objects, errors = parse_documents(text, "f.yaml")
    assert errors == [] and objects[0]["metadata"]["labels"] == {"app": "a"}


def test_a_device_is_named_and_never_read() -> None:
    result = lint_paths(["/dev/zero"], POLICY)
    assert result.errors == [
        "/dev/zero: not read: not a regular file (a FIFO, socket or device is never read)"
    ]
    assert result.exit_code == 2


def test_a_fifo_is_named_without_waiting_for_a_writer(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.yaml"
    os.mkfifo(fifo)
    result = lint_paths([str(fifo)], POLICY)  # would block forever if it were opened plainly
    assert result.errors == [
        f"{fifo}: not read: not a regular file (a FIFO, socket or device is never read)"
    ]


def test_an_input_over_the_size_cap_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(lint, "MAX_INPUT_BYTES", 100)
    big = tmp_path / "big.yaml"
    big.write_text(GPU_POD % ("x" * 100))
    small = tmp_path / "small.yaml"
    small.write_text("kind: ConfigMap\n")
    result = lint_paths([str(big), str(small), "-"], POLICY, io.StringIO("y" * 101))
    assert result.errors == [
        f"{big}: not read: larger than 100 bytes, the limit of one input",
        "<stdin>: not read: larger than 100 bytes, the limit of one input",
    ]
