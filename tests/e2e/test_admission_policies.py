"""Webhooks, admission policies and lint agree, on the real API server (issue 12).

One corpus: every manifest of examples/manifests, the demo's samples
(tests/e2e/manifests/demo-samples.yaml) and a seeded hypothesis corpus of GPU and
non-GPU workloads of the seven kinds, in namespaces of each mode, with and without
cost labels to inherit. Each object is sent with `kubectl apply --dry-run=server`
in three setups:

- only the webhooks (the install as shipped);
- the webhooks and the admission policies, written by the operator once the
  ConfigMap says `admissionPolicies.enabled: true`;
- only the admission policies, with the webhook configurations deleted and the
  operator stopped: enforcement that survives the operator.

In each, the decision (allowed, warned, denied), the labels it names and the
labels filled from the namespace must equal the pure admission decision (the
domain's `mutate` then `validate`, run in a subprocess: these tests never import
finops_operator) and `finops-operator lint`. Then, still without the operator, an
untagged GPU workload is really refused and one in a labelled namespace is
created with the inherited labels. At the end the install is put back as it was,
and the operator removes its policies when the ConfigMap turns them off again.
"""

from __future__ import annotations

import copy
import json
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .conftest import (
    COMPLIANT,
    COST_CENTER,
    ENVIRONMENT,
    FEATURE,
    MODE,
    REPO,
    SCRIPT,
    TEAM,
    WORKLOAD_TYPE,
    Cluster,
    gpu_workload,
    wait_until,
)

EXAMPLES = REPO / "examples" / "manifests"
SAMPLES = Path(__file__).parent / "manifests" / "demo-samples.yaml"
KINDS = ("Pod", "Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob")
GROUP = "admissionregistration.k8s.io"
POLICIES = (
    ("validatingadmissionpolicy", "finops-cost-labels"),
    ("validatingadmissionpolicy", "finops-cost-labels-warnings"),
    ("validatingadmissionpolicybinding", "finops-cost-labels-enforce"),
    ("validatingadmissionpolicybinding", "finops-cost-labels-warnings"),
    ("mutatingadmissionpolicy", "finops-cost-labels-inherit"),
    ("mutatingadmissionpolicybinding", "finops-cost-labels-inherit"),
)
WEBHOOKS = ("validatingwebhookconfiguration", "mutatingwebhookconfiguration")
INHERITED = {TEAM: "recsys", COST_CENTER: "cc-2001"}
NAMESPACES = {
    "e2e-ap-enforce": {MODE: "enforce"},
    "e2e-ap-audit": {MODE: "audit"},
    "e2e-ap-default": {},  # the ConfigMap's default mode (audit)
    "e2e-ap-off": {MODE: "off"},
    "e2e-ap-inherit": {MODE: "enforce", **INHERITED},
}
EXEMPT = "finops.resilio.tech/exempt"
EXEMPT_REASON = "finops.resilio.tech/exempt-reason"
HONOURED = "is exempt from the cost label check"
# A namespace admin's ServiceAccount, the attacker of issue 19 (it may not exempt).
DEV = "system:serviceaccount:e2e-ap-enforce:dev"
LABEL_KEY = re.compile(r"(?:missing|invalid) ([a-z0-9.-]+/[A-Za-z0-9_.-]*[A-Za-z0-9])")
BAD = {
    TEAM: "ML_Research",
    FEATURE: "Semantic.Search",
    ENVIRONMENT: "prod",
    WORKLOAD_TYPE: "fine-tuning",
    COST_CENTER: "1234",
}

# The pure decision, in the project's own venv: mutate, apply the patch, validate.
PURE = """
import json, sys
import jsonpatch
from finops_operator.adapters.config_file import load_config
from finops_operator.domain.policies.admission import Request, mutate, validate
from finops_operator.domain.policies.label_check import LabelPolicy, Requester
from finops_operator.domain.workloads import pod_labels

policy = LabelPolicy(load_config(sys.argv[1]))
out = []
for item in json.load(sys.stdin):
    ns, labels = item["namespace"], {item["namespace"]: item["labels"]}
    def request(obj):
        meta = obj["metadata"]
        admin = Requester("admin", ("system:masters", "system:authenticated"))  # kubectl's user
        return Request("u", "CREATE", obj["kind"], ns, meta["name"], "", True, obj, None, admin)
    obj = item["object"]
    patch = mutate(request(obj), policy, labels).patch
    admitted = jsonpatch.apply_patch(obj, patch) if patch else obj
    decision = validate(request(admitted), policy, labels)
    out.append({
        "outcome": decision.outcome.value,
        "text": decision.message + "\\n" + "\\n".join(decision.warnings),
        "labels": dict(pod_labels(admitted)),
    })
json.dump(out, sys.stdout)
"""


@dataclass
class Item:
    source: str
    obj: dict[str, Any]

    @property
    def key(self) -> tuple[str, str, str]:
        meta = self.obj["metadata"]
        return (self.obj["kind"], meta["namespace"], meta["name"])


@dataclass(frozen=True)
class Seen:
    decision: str  # allowed, warned, denied, refused (before admission)
    named: frozenset[str]
    labels: dict[str, str]


# --- the corpus ------------------------------------------------------------------------


def _documents(path: Path) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
        if isinstance(doc, dict) and doc.get("kind") == "List":
            out.extend(doc.get("items") or [])
        elif isinstance(doc, dict):
            out.append(doc)
    return out


@st.composite
def _generated(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(KINDS))
    labels = {}
    for key, good in COMPLIANT.items():
        choice = draw(st.sampled_from(["good", "good", "bad", "absent", "empty"]))
        if choice != "absent":
            labels[key] = {"good": good, "bad": BAD[key], "empty": ""}[choice]
    resource = draw(st.sampled_from(["nvidia.com/gpu", "nvidia.com/mig-1g.10gb", "amd.com/gpu"]))
    gpus = draw(st.sampled_from([1, 1, 2, 0]))
    namespace = draw(st.sampled_from(sorted(NAMESPACES)))
    obj = gpu_workload(kind, "gen", namespace, labels, gpus=gpus, resource=resource)
    exempt = draw(st.sampled_from([None, None, None, None, "true", "true", "yes"]))
    if exempt is not None:
        annotations = obj["metadata"].setdefault("annotations", {})
        annotations[EXEMPT] = exempt
        if draw(st.booleans()):
            annotations[EXEMPT_REASON] = "burn-in (FIN-3301)"
    return obj


def generated_corpus(size: int = 48) -> list[dict[str, Any]]:
    """A seeded (derandomized) hypothesis sample: the same objects on every run."""
    found: list[dict[str, Any]] = []

    @settings(
        max_examples=size,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(_generated())
    def collect(obj: dict[str, Any]) -> None:
        found.append(obj)

    collect()
    return found


def corpus() -> list[Item]:
    items: list[Item] = []
    for path in sorted(EXAMPLES.glob("*.y*ml")):
        for obj in _documents(path):
            if obj.get("kind") in KINDS and obj.get("apiVersion") in ("v1", "apps/v1", "batch/v1"):
                meta = obj.setdefault("metadata", {})
                if meta.get("namespace") != "kube-system":
                    meta["namespace"] = "e2e-ap-enforce"
                items.append(Item(path.name, obj))
    for doc in _documents(SAMPLES):
        if doc["kind"] in KINDS:
            doc["metadata"].get("annotations", {}).pop("e2e.finops.resilio.tech/expect", None)
            items.append(Item(SAMPLES.name, doc))
    items += [Item("hypothesis", obj) for obj in generated_corpus()]
    seen: set[tuple[str, str, str]] = set()
    for index, item in enumerate(items):  # unique names, so that findings can be matched
        meta = item.obj["metadata"]
        meta["name"] = f"{meta['name'][:40]}-{index}"
        meta.pop("generateName", None)
        assert item.key not in seen
        seen.add(item.key)
    return items


# --- what each decider says ------------------------------------------------------------


def _template_labels(obj: dict[str, Any]) -> dict[str, str]:
    node: Any = obj
    path = {"Pod": (), "CronJob": ("spec", "jobTemplate", "spec", "template")}
    for step in path.get(obj["kind"], ("spec", "template")):
        node = (node or {}).get(step) or {}
    return dict(((node or {}).get("metadata") or {}).get("labels") or {})


def send(cluster: Cluster, item: Item) -> Seen:
    proc = cluster.apply(item.obj, "--dry-run=server", "-o", "json", check=False)
    named = frozenset(LABEL_KEY.findall(proc.stderr))
    if proc.returncode != 0:
        if "denied request" in proc.stderr or "denied the request" in proc.stderr:
            return Seen("denied", named, {})
        return Seen("refused", named, {})
    warned = any("finops:" in line for line in proc.stderr.splitlines())
    return Seen("warned" if warned else "allowed", named, _template_labels(json.loads(proc.stdout)))


def pure(cluster: Cluster, items: list[Item]) -> list[dict[str, Any]]:
    payload = [
        {"object": i.obj, "namespace": i.key[1], "labels": namespace_labels(cluster, i.key[1])}
        for i in items
    ]
    proc = subprocess.run(
        [str(REPO / ".venv" / "bin" / "python"), "-c", PURE, cluster.info["config"]],
        input=json.dumps(payload),
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    decided: list[dict[str, Any]] = json.loads(proc.stdout)
    return decided


def lint(cluster: Cluster, items: list[Item], tmp: Path) -> dict[tuple[str, str, str], set[str]]:
    manifest = tmp / "corpus.yaml"
    manifest.write_text(yaml.safe_dump_all([i.obj for i in items]), encoding="utf-8")
    proc = subprocess.run(
        [
            str(REPO / ".venv" / "bin" / "finops-operator"),
            "lint",
            "--format",
            "json",
            "--config",
            cluster.info["config"],
            str(manifest),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode in (0, 1), proc.stderr
    return {
        (f["kind"], f["namespace"], f["name"]): {*f["missing"], *f["invalid"]}
        for f in json.loads(proc.stdout)["findings"]
    }


_NAMESPACE_LABELS: dict[str, dict[str, str]] = {}


def namespace_labels(cluster: Cluster, name: str) -> dict[str, str]:
    if name not in _NAMESPACE_LABELS:
        labels = cluster.get("namespace", name)["metadata"].get("labels") or {}
        _NAMESPACE_LABELS[name] = dict(labels)
    return _NAMESPACE_LABELS[name]


# --- the setups --------------------------------------------------------------------------


def script(cluster: Cluster, command: str) -> None:
    subprocess.run(
        ["bash", str(SCRIPT), command, str(cluster.dir)],
        check=True,
        capture_output=True,
        timeout=240,
    )


def set_admission_policies(cluster: Cluster, enabled: bool) -> None:
    """Write `admissionPolicies.enabled` into the ConfigMap and restart the operator."""
    configmap = cluster.get("configmap", "finops-operator-config", "finops-system")
    config = yaml.safe_load(configmap["data"]["config.yaml"]) or {}
    config["admissionPolicies"] = {"enabled": enabled}
    patch = {"data": {"config.yaml": yaml.safe_dump(config, sort_keys=False)}}
    cluster.kubectl(
        "-n", "finops-system", "patch", "configmap", "finops-operator-config",
        "--type", "merge", "-p", json.dumps(patch),
    )  # fmt: skip
    script(cluster, "stop-operator")
    script(cluster, "operator")


def policies_present(cluster: Cluster) -> list[bool]:
    return [cluster.exists(kind, name) for kind, name in POLICIES]


def saved_webhooks(cluster: Cluster) -> list[dict[str, Any]]:
    saved = []
    for kind in WEBHOOKS:
        obj = cluster.get(kind, "finops-operator")
        meta = obj["metadata"]
        for field in ("resourceVersion", "uid", "creationTimestamp", "generation", "managedFields"):
            meta.pop(field, None)
        saved.append(obj)
    return saved


@pytest.fixture(scope="module")
def setting(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    for name, labels in NAMESPACES.items():
        cluster.namespace(name, labels)
    cluster.apply([d for d in _documents(SAMPLES) if d["kind"] == "Namespace"])
    items = corpus()
    state: dict[str, Any] = {
        "items": items,
        "pure": pure(cluster, items),
        "lint": lint(cluster, items, tmp_path_factory.mktemp("corpus")),
        "webhooks": saved_webhooks(cluster),
    }
    try:
        yield state
    finally:
        # Back to the install as shipped: webhooks, the operator, no policies.
        for obj in state["webhooks"]:
            if not cluster.exists(obj["kind"].lower(), "finops-operator"):
                cluster.apply(obj)
        set_admission_policies(cluster, False)
        wait_until(
            lambda: not any(policies_present(cluster)),
            timeout=60,
            what="the operator removes its admission policies when they are turned off",
        )


def check_agreement(cluster: Cluster, state: dict[str, Any], setup: str) -> None:
    items: list[Item] = state["items"]
    problems = []
    decisions: set[str] = set()
    for item, expected in zip(items, state["pure"], strict=True):
        seen = send(cluster, item)
        if seen.decision == "refused":
            # Refused by the API server's own validation before admission (an unquoted
            # number as a label value in an example): never admitted anywhere.
            assert item.source != "hypothesis", (item.key, seen)
            continue
        decisions.add(seen.decision)
        outcome = {"denied": "denied", "warned": "warned"}.get(expected["outcome"], "allowed")
        if HONOURED in expected["text"]:  # an honoured exemption is answered with a warning
            outcome = "warned"
        named = frozenset(LABEL_KEY.findall(expected["text"]))
        flagged = state["lint"].get(item.key, set())
        before = _template_labels(item.obj)
        inherited = {k: v for k, v in expected["labels"].items() if before.get(k) != v}
        where = f"{setup}: {item.source}: {'/'.join(item.key)}"
        if seen.decision != outcome:
            problems.append(f"{where}: {seen.decision}, the pure decision is {outcome}")
        elif seen.named != named:
            problems.append(f"{where}: names {sorted(seen.named)}, pure {sorted(named)}")
        elif outcome != "allowed" and named != flagged - set(inherited):
            problems.append(f"{where}: names {sorted(named)}, lint {sorted(flagged)}")
        elif (
            outcome == "allowed"
            and seen.labels
            and any(seen.labels.get(k) != v for k, v in inherited.items())
        ):
            problems.append(f"{where}: labels {seen.labels}, inherited {inherited}")
        mode = namespace_labels(cluster, item.key[1]).get(MODE, "audit")
        governed = mode in ("enforce", "audit") and item.key[1] != "kube-system"
        exempt = HONOURED in expected["text"]  # on the object or its template
        lint_flags = bool(flagged - set(inherited))
        if governed and not exempt and lint_flags != (outcome != "allowed"):
            problems.append(f"{where}: lint flags {sorted(flagged)}, admission {outcome}")
    assert not problems, "\n".join(problems)
    assert decisions == {"allowed", "warned", "denied"}, decisions
    check_exemption_authority(cluster, setup)


def namespace_admin(cluster: Cluster) -> str:
    """The ServiceAccount `dev` of e2e-ap-enforce, bound to the `admin` ClusterRole there."""
    cluster.apply(
        [
            {
                "apiVersion": "v1",
                "kind": "ServiceAccount",
                "metadata": {"name": "dev", "namespace": "e2e-ap-enforce"},
            },
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "RoleBinding",
                "metadata": {"name": "dev-admin", "namespace": "e2e-ap-enforce"},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "ClusterRole",
                    "name": "admin",
                },
                "subjects": [
                    {"kind": "ServiceAccount", "name": "dev", "namespace": "e2e-ap-enforce"}
                ],
            },
        ]
    )
    return DEV


def check_exemption_authority(cluster: Cluster, setup: str) -> None:
    """Issue 19: a namespace admin's self-exemption of an untagged 8-GPU Pod is refused on
    the real API server (as their ServiceAccount, impersonated); a cluster admin's, with a
    reason, is admitted with a warning; without a reason it is refused too."""
    pod = gpu_workload("Pod", "self-exempt", "e2e-ap-enforce", gpus=8)
    pod["metadata"]["annotations"] = {EXEMPT: "true", EXEMPT_REASON: "mine (no ticket)"}
    manifest = yaml.safe_dump(pod)
    dry_run = ("apply", "-f", "-", "--dry-run=server")
    user = namespace_admin(cluster)
    as_dev = cluster.kubectl(*dry_run, f"--as={user}", input=manifest, check=False)
    assert as_dev.returncode != 0, (setup, as_dev.stdout)
    assert "denied" in as_dev.stderr, (setup, as_dev.stderr)
    assert f"The exempt annotation is not honoured: {user} may not exempt" in as_dev.stderr
    assert "exemptions.allowedGroups [system:masters]" in as_dev.stderr, (setup, as_dev.stderr)
    as_admin = cluster.kubectl(*dry_run, input=manifest, check=False)
    assert as_admin.returncode == 0, (setup, as_admin.stderr)
    assert HONOURED in as_admin.stderr, (setup, as_admin.stderr)
    del pod["metadata"]["annotations"][EXEMPT_REASON]
    unreasoned = cluster.kubectl(*dry_run, input=yaml.safe_dump(pod), check=False)
    assert unreasoned.returncode != 0, (setup, unreasoned.stdout)
    assert "does not exempt without a reason" in unreasoned.stderr, (setup, unreasoned.stderr)


# --- the tests, in order -------------------------------------------------------------------


def test_the_corpus_is_varied(setting: dict[str, Any]) -> None:
    outcomes = {p["outcome"] for p in setting["pure"]}
    assert {"denied", "warned", "compliant", "skipped", "exempt"} <= outcomes
    assert any(p["labels"].get(TEAM) == "recsys" for p in setting["pure"])  # inherited
    assert 60 <= len(setting["items"]) <= 100


def test_only_webhooks_agree_with_lint_and_the_pure_decision(
    cluster: Cluster, setting: dict[str, Any]
) -> None:
    assert not any(policies_present(cluster))
    check_agreement(cluster, setting, "webhooks")


def test_the_operator_writes_the_policies_when_the_configuration_asks(
    cluster: Cluster, setting: dict[str, Any]
) -> None:
    set_admission_policies(cluster, True)
    wait_until(lambda: all(policies_present(cluster)), timeout=60, what="the policies written")
    namespace = cluster.get("namespace", "finops-system")["metadata"]
    for kind, name in POLICIES:
        obj = cluster.get(kind, name)
        [owner] = obj["metadata"]["ownerReferences"]
        assert (owner["kind"], owner["uid"]) == ("Namespace", namespace["uid"])
        # The API server compiled every expression and its type check found nothing.
        assert not (obj.get("status") or {}).get("typeChecking", {}).get("expressionWarnings")
    enforce = cluster.get("validatingadmissionpolicybinding", "finops-cost-labels-enforce")
    assert enforce["spec"]["validationActions"] == ["Deny"]
    warnings = cluster.get("validatingadmissionpolicybinding", "finops-cost-labels-warnings")
    assert warnings["spec"]["validationActions"] == ["Warn", "Audit"]


# An edit of each kind of object, which the operator must undo (its watch, then a patch).
EDITS = (
    ("validatingadmissionpolicy", "finops-cost-labels", {"spec": {"failurePolicy": "Ignore"}}),
    (
        "validatingadmissionpolicybinding",
        "finops-cost-labels-enforce",
        {"spec": {"validationActions": ["Audit"]}},
    ),
    (
        "mutatingadmissionpolicy",
        "finops-cost-labels-inherit",
        {"spec": {"reinvocationPolicy": "Never"}},
    ),
    (
        "mutatingadmissionpolicybinding",
        "finops-cost-labels-inherit",
        {"spec": {"matchResources": {"namespaceSelector": {"matchExpressions": []}}}},
    ),
)


def test_the_operator_undoes_edits_and_deletes_of_its_policies(
    cluster: Cluster, setting: dict[str, Any]
) -> None:
    before = {(kind, name): cluster.get(kind, name)["spec"] for kind, name, _ in EDITS}
    for kind, name, patch in EDITS:
        cluster.kubectl("patch", kind, name, "--type", "merge", "-p", json.dumps(patch))
    cluster.kubectl("delete", "validatingadmissionpolicybinding", "finops-cost-labels-warnings")

    def restored() -> bool:
        return all(
            cluster.get(kind, name)["spec"] == spec for (kind, name), spec in before.items()
        ) and all(policies_present(cluster))

    wait_until(restored, timeout=60, what="the operator restores its edited policies")


def test_webhooks_and_policies_together_agree(cluster: Cluster, setting: dict[str, Any]) -> None:
    check_agreement(cluster, setting, "both")


def test_only_policies_with_the_operator_stopped_agree(
    cluster: Cluster, setting: dict[str, Any]
) -> None:
    for kind in WEBHOOKS:
        cluster.kubectl("delete", kind, "finops-operator")
    script(cluster, "stop-operator")
    check_agreement(cluster, setting, "policies")


def test_with_the_operator_down_untagged_gpu_work_is_refused_and_labels_inherited(
    cluster: Cluster, setting: dict[str, Any]
) -> None:
    untagged = gpu_workload("Deployment", "untagged-no-operator", "e2e-ap-enforce", {TEAM: "a"})
    proc = cluster.apply(untagged, check=False)
    assert proc.returncode != 0, proc.stdout
    assert "ValidatingAdmissionPolicy 'finops-cost-labels'" in proc.stderr
    for label in (FEATURE, ENVIRONMENT, WORKLOAD_TYPE, COST_CENTER):
        assert f"missing {label}" in proc.stderr
    assert not cluster.exists("deployment", "untagged-no-operator", "e2e-ap-enforce")
    own = {k: v for k, v in COMPLIANT.items() if k not in INHERITED}
    job = gpu_workload("Job", "inherits-no-operator", "e2e-ap-inherit", own)
    cluster.apply(job)
    stored = cluster.get("job", "inherits-no-operator", "e2e-ap-inherit")
    template = stored["spec"]["template"]["metadata"]
    for key, value in INHERITED.items():
        assert template["labels"][key] == value
    noted = template["annotations"]["finops.resilio.tech/inherited-labels"]
    assert noted == ",".join(sorted(INHERITED))
    cluster.kubectl("delete", "job", "inherits-no-operator", "-n", "e2e-ap-inherit")
    before = copy.deepcopy(setting["webhooks"])
    assert before  # restored by the fixture
