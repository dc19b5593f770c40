"""The admission webhooks, registered by `kubectl apply -k` and called by the real API server.

The first test counts webhook calls, so it runs before anything in this module
creates GPU workloads (whose controllers would create GPU pods meanwhile).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from finops_operator.adapters.config_file import load_config
from finops_operator.domain.conventions import MUTATING_WEBHOOK, VALIDATING_WEBHOOK
from finops_operator.domain.policies.admission_policy import (
    GPU_CONDITION,
    MUTATING_CONDITION,
    VALIDATING_CONDITION,
)
from finops_operator.domain.policies.webhook_conditions import (
    NAME_LABEL,
    conditions_patch,
    webhook_settings,
)

from .conftest import (
    COMPLIANT,
    COST_CENTER,
    ENVIRONMENT,
    FEATURE,
    MODE,
    REPO,
    TEAM,
    WORKLOAD_TYPE,
    Cluster,
    gpu_workload,
    start_second_operator,
    stop_process,
    wait_until,
)

EXAMPLES = REPO / "examples" / "manifests"
SAMPLES = Path(__file__).parent / "manifests" / "demo-samples.yaml"
REQUESTS = "finops_admission_requests_total"
OPERATORS_CONDITION = {
    VALIDATING_WEBHOOK: VALIDATING_CONDITION,
    MUTATING_WEBHOOK: MUTATING_CONDITION,
}
# Kinds the project's own webhooks watch; anything else in the examples is not ours.
KINDS = {"Pod", "Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob"}


def admission_calls(cluster: Cluster) -> float:
    return cluster.metric(REQUESTS)


def wait_enforced(cluster: Cluster, namespace: str) -> None:
    """Until the operator's namespace index has seen `namespace` in enforce mode."""
    probe = gpu_workload("Pod", "enforce-probe", namespace)

    def denied() -> bool:
        proc = cluster.apply(probe, "--dry-run=server", check=False)
        return proc.returncode != 0 and "denied the request" in proc.stderr

    wait_until(denied, timeout=30, what=f"namespace {namespace} enforced by the webhook")


def enforce_namespace(cluster: Cluster, name: str, **labels: str) -> str:
    cluster.namespace(name, {MODE: "enforce", **labels})
    wait_enforced(cluster, name)
    return name


def objects_of(path: Path) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
        if not doc:
            continue
        if doc.get("kind") == "List":
            out.extend(doc.get("items") or [])
        else:
            out.append(doc)
    return out


def test_webhooks_are_registered_with_the_operators_ca(cluster: Cluster) -> None:
    secret = cluster.get("secret", "finops-operator-webhook-tls", "finops-system")
    ca = secret["data"]["ca.crt"]
    for kind in ("validatingwebhookconfiguration", "mutatingwebhookconfiguration"):
        config = cluster.get(kind, "finops-operator")
        for hook in config["webhooks"]:
            # The server compiled the CEL matchConditions when it accepted the object,
            # the manifests' own and, last, the one the operator wrote at its start.
            names = [c["name"] for c in hook["matchConditions"]]
            assert names[:2] == ["create-or-update", "gpu-workload"]
            assert names[-1] == OPERATORS_CONDITION[hook["name"]]
            assert hook["clientConfig"]["caBundle"] == ca, kind
            # tests/e2e/overlay: the local operator process, on loopback.
            assert hook["clientConfig"]["url"].startswith("https://127.0.0.1:")


def test_non_gpu_and_kube_system_workloads_never_reach_the_webhook(cluster: Cluster) -> None:
    cluster.namespace("e2e-no-gpu", {MODE: "enforce"})
    before = admission_calls(cluster)
    objs = [
        gpu_workload("Deployment", "web", "e2e-no-gpu", gpus=0),
        gpu_workload("Job", "cpu-job", "e2e-no-gpu", gpus=0),
        gpu_workload("Pod", "zero-gpu", "e2e-no-gpu", gpus="0"),
        # A GPU workload without any label, in kube-system: the namespaceSelector skips it.
        gpu_workload("Pod", "e2e-kube-system-gpu", "kube-system"),
    ]
    for path in ("zero-gpu-workloads.yaml",):
        for obj in objects_of(EXAMPLES / path):
            obj.setdefault("metadata", {})["namespace"] = "e2e-no-gpu"
            objs.append(obj)
    cluster.apply(objs)
    # The API server has answered; the operator's counter would have moved synchronously.
    assert admission_calls(cluster) == before, "a non-GPU or kube-system object reached the webhook"
    cluster.kubectl("delete", "pod", "e2e-kube-system-gpu", "-n", "kube-system", "--wait=false")


def test_compliant_gpu_workloads_are_admitted_without_calling_the_webhooks(
    cluster: Cluster,
) -> None:
    """Issue 23: the operator's matchConditions let the API server admit what needs no judge.

    Runs before anything else in the module creates GPU workloads, whose controllers
    would otherwise call /mutate for their pods meanwhile."""
    enforce = enforce_namespace(cluster, "e2e-skip-enforce")
    audit = cluster.namespace("e2e-skip-audit", {MODE: "audit"})
    before = admission_calls(cluster)
    validated = cluster.metric(REQUESTS, webhook="validate")
    compliant = [
        gpu_workload("Pod", "tagged", enforce, COMPLIANT),
        gpu_workload("Deployment", "tagged", enforce, COMPLIANT),
        gpu_workload("CronJob", "tagged", enforce, COMPLIANT),
        gpu_workload("Job", "tagged", audit, COMPLIANT),
    ]
    proc = cluster.apply(compliant)
    assert "Warning" not in proc.stderr, proc.stderr
    # The Deployment's ReplicaSet and Pod, and the Job's Pod, are compliant too.
    wait_until(
        lambda: (
            len(cluster.get("pods", None, enforce)["items"]) == 2
            and len(cluster.get("pods", None, audit)["items"]) == 1
        ),
        timeout=60,
        what="the controllers' pods",
    )
    assert admission_calls(cluster) == before, "a compliant GPU workload reached a webhook"
    # Still sent: a violation to explain, in enforce and in audit, and an exemption.
    untagged = gpu_workload("Pod", "untagged", enforce, {TEAM: "search-platform"})
    proc = cluster.apply(untagged, check=False)
    assert proc.returncode != 0 and "denied the request" in proc.stderr, proc.stderr
    proc = cluster.apply(gpu_workload("Pod", "untagged", audit, {TEAM: "search-platform"}))
    assert proc.stderr.count("Warning: finops:") == 4, proc.stderr
    exempt = gpu_workload("Pod", "exempt", audit, COMPLIANT)
    exempt["metadata"]["annotations"] = {
        "finops.resilio.tech/exempt": "true",
        "finops.resilio.tech/exempt-reason": "burn-in",
    }
    proc = cluster.apply(exempt)
    assert "Warning: finops:" in proc.stderr, proc.stderr
    assert cluster.metric(REQUESTS, webhook="validate") >= validated + 3


def test_untagged_gpu_workloads_are_denied_in_enforce_with_the_message(cluster: Cluster) -> None:
    ns = enforce_namespace(cluster, "e2e-enforce")
    for kind in ("Pod", "Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob"):
        obj = gpu_workload(kind, f"untagged-{kind.lower()}", ns, {TEAM: "search-platform"})
        proc = cluster.apply(obj, check=False)
        assert proc.returncode != 0, f"{kind} admitted: {proc.stdout}"
        assert 'admission webhook "labels.finops.resilio.tech" denied the request' in proc.stderr
        assert "asks for a GPU but its cost labels are missing or invalid" in proc.stderr
        for label in (FEATURE, ENVIRONMENT, WORKLOAD_TYPE, COST_CENTER):
            assert label in proc.stderr, proc.stderr
        assert not cluster.exists(kind.lower(), obj["metadata"]["name"], ns)
        compliant = gpu_workload(kind, f"tagged-{kind.lower()}", ns, COMPLIANT)
        cluster.apply(compliant)
    assert cluster.metric(REQUESTS, webhook="validate", outcome="denied") >= 6


def test_examples_follow_lint_exactly(cluster: Cluster, tmp_path: Path) -> None:
    """`kubectl apply` of examples/manifests in enforce namespaces denies what `lint` flags."""
    lint = subprocess.run(
        [
            str(REPO / ".venv" / "bin" / "finops-operator"),
            "lint",
            "--format",
            "json",
            "--config",
            cluster.info["config"],
            str(EXAMPLES),
        ],
        capture_output=True,
        text=True,
    )
    assert lint.returncode in (0, 1), lint.stderr
    default_ns = "e2e-examples"
    flagged = {
        (f["kind"], f["namespace"] or default_ns, f["name"])
        for f in json.loads(lint.stdout)["findings"]
    }
    assert flagged, "lint flags some examples"
    namespaces = {default_ns}
    work: list[tuple[str, dict[str, Any]]] = []
    for path in sorted(EXAMPLES.glob("*.y*ml")):
        for obj in objects_of(path):
            meta = obj.setdefault("metadata", {})
            if obj.get("kind") in KINDS:
                meta.setdefault("namespace", default_ns)
            if meta.get("namespace") not in (None, "kube-system"):
                namespaces.add(meta["namespace"])
            work.append((path.name, obj))
    for ns in sorted(namespaces):
        if not cluster.exists("namespace", ns):
            cluster.namespace(ns, {MODE: "enforce"})
    for ns in sorted(namespaces):
        wait_enforced(cluster, ns)
    seen: set[tuple[str, str, str]] = set()
    for file, obj in work:
        meta = obj["metadata"]
        proc = cluster.apply(obj, check=False)
        if "no matches for kind" in proc.stderr:
            continue  # e.g. a Volcano Job: another group, not installed, not ours
        key = (obj["kind"], meta.get("namespace", ""), meta["name"])
        if key in flagged:
            seen.add(key)
            assert proc.returncode != 0, f"{file}: {key} admitted but lint flags it"
            if "cannot unmarshal number" in proc.stderr:
                # An unquoted number as a label value: the API server refuses the
                # object before admission (kmock accepted it). lint flags it too.
                continue
            assert "denied the request" in proc.stderr, proc.stderr
        else:
            assert proc.returncode == 0, f"{file}: {key} refused: {proc.stderr}"
    assert seen == flagged


def test_demo_samples_admission_outcomes(cluster: Cluster) -> None:
    """The demo's samples (tests/e2e/manifests/demo-samples.yaml) get the demo's outcomes."""
    docs = [d for d in yaml.safe_load_all(SAMPLES.read_text(encoding="utf-8")) if d]
    namespaces = [d for d in docs if d["kind"] == "Namespace"]
    cluster.apply(namespaces)
    wait_enforced(cluster, "search")
    for doc in docs:
        if doc["kind"] == "Namespace":
            continue
        expect = doc["metadata"]["annotations"].pop("e2e.finops.resilio.tech/expect")
        proc = cluster.apply(doc, check=False)
        meta = doc["metadata"]
        where = f"{doc['kind']} {meta['namespace']}/{meta['name']}"
        if expect == "denied":
            assert proc.returncode != 0, f"{where} admitted"
            assert "denied the request" in proc.stderr
            continue
        assert proc.returncode == 0, f"{where}: {proc.stderr}"
        live = cluster.get(doc["kind"].lower(), meta["name"], meta["namespace"])
        labels = live["spec"]["template"]["metadata"]["labels"]
        if expect == "inherited":
            ns_labels = cluster.get("namespace", meta["namespace"])["metadata"]["labels"]
            for key in (TEAM, FEATURE, ENVIRONMENT, WORKLOAD_TYPE, COST_CENTER):
                assert labels[key] == ns_labels[key], (key, labels)
        elif expect == "warned":
            assert "Warning: finops:" in proc.stderr, proc.stderr
            assert FEATURE in proc.stderr
        elif expect in ("created", "ignored"):
            assert "Warning: finops" not in proc.stderr, proc.stderr


def test_audit_mode_warns_in_kubectls_output(cluster: Cluster) -> None:
    ns = cluster.namespace("e2e-audit", {MODE: "audit"})
    obj = gpu_workload("Deployment", "notebook", ns, {TEAM: "llm-core"})
    proc = cluster.apply(obj)
    warnings = [line for line in proc.stderr.splitlines() if line.startswith("Warning: finops:")]
    assert len(warnings) == 4, proc.stderr
    assert cluster.exists("deployment", "notebook", ns)


def test_the_cluster_default_audit_mode_applies_without_a_namespace_label(cluster: Cluster) -> None:
    """The shipped ConfigMap says `mode: audit`: an unlabelled namespace warns, never denies."""
    ns = cluster.namespace("e2e-default-mode")
    proc = cluster.apply(gpu_workload("Job", "untagged", ns))
    assert "Warning: finops:" in proc.stderr, proc.stderr


def test_labels_are_inherited_from_the_namespace(cluster: Cluster) -> None:
    ns = cluster.namespace(
        "e2e-inherit",
        {
            MODE: "enforce",
            TEAM: "recsys",
            FEATURE: "ranking",
            ENVIRONMENT: "production",
            WORKLOAD_TYPE: "training",
            COST_CENTER: "cc-2001",
        },
    )

    def inherits() -> bool:
        proc = cluster.apply(
            gpu_workload("Pod", "probe", ns), "--dry-run=server", "-o", "json", check=False
        )
        return (
            proc.returncode == 0
            and json.loads(proc.stdout)["metadata"]["labels"].get(TEAM) == "recsys"
        )

    wait_until(inherits, timeout=30, what="the operator knows the namespace's labels")
    # Without its own labels, admitted in enforce: the mutating webhook filled them.
    cluster.apply(gpu_workload("Job", "train", ns, {FEATURE: "own-feature"}))
    job = cluster.get("job", "train", ns)
    labels = job["spec"]["template"]["metadata"]["labels"]
    assert labels[TEAM] == "recsys"
    assert labels[FEATURE] == "own-feature", "an own label is never overwritten"
    assert labels[COST_CENTER] == "cc-2001"
    pod = gpu_workload("Pod", "bare", ns)
    cluster.apply(pod)
    assert cluster.get("pod", "bare", ns)["metadata"]["labels"][ENVIRONMENT] == "production"


def test_server_side_dry_run_has_no_side_effects(cluster: Cluster) -> None:
    ns = enforce_namespace(cluster, "e2e-dry-run")
    events_before = cluster.get("events", None, ns)["items"]
    obj = gpu_workload("Deployment", "dry", ns, COMPLIANT)
    proc = cluster.apply(obj, "--dry-run=server")
    assert "(server dry run)" in proc.stdout
    bad = gpu_workload("Deployment", "dry-bad", ns)
    proc = cluster.apply(bad, "--dry-run=server", check=False)
    assert proc.returncode != 0 and "denied the request" in proc.stderr
    assert not cluster.exists("deployment", "dry", ns)
    assert not cluster.exists("deployment", "dry-bad", ns)
    assert cluster.get("replicasets", None, ns)["items"] == []
    assert cluster.get("events", None, ns)["items"] == events_before


@pytest.mark.parametrize(
    "resource", ["nvidia.com/mig-1g.10gb", "amd.com/gpu", "nvidia.com/gpu.shared"]
)
def test_every_gpu_resource_reaches_the_webhook(cluster: Cluster, resource: str) -> None:
    ns = "e2e-enforce"
    if not cluster.exists("namespace", ns):
        enforce_namespace(cluster, ns)
    name = "res-" + resource.replace("/", "-").replace(".", "-")
    proc = cluster.apply(gpu_workload("Pod", name, ns, resource=resource), check=False)
    assert proc.returncode != 0 and "denied the request" in proc.stderr, proc.stderr


WEBHOOK_CONFIGURATIONS = ("validatingwebhookconfiguration", "mutatingwebhookconfiguration")


def written_for(cluster: Cluster, resource: str, namespace: str) -> bool:
    """Both webhooks carry a gpu-workload naming `resource` and exempt `namespace`."""
    for kind in WEBHOOK_CONFIGURATIONS:
        for hook in cluster.get(kind, "finops-operator")["webhooks"]:
            gpu = {c["name"]: c["expression"] for c in hook["matchConditions"]}[GPU_CONDITION]
            [names] = [
                e
                for e in hook["namespaceSelector"]["matchExpressions"]
                if e["key"] == NAME_LABEL and e["operator"] == "NotIn"
            ]
            if f"'{resource}'" not in gpu or namespace not in names["values"]:
                return False
    return True


def test_a_replica_writes_its_gpu_resources_and_exempt_namespaces_into_the_webhooks(
    cluster: Cluster,
) -> None:
    """A GPU resource only the configuration names reaches the webhook once a replica
    with that configuration started (before, it was admitted without a call)."""
    ns = enforce_namespace(cluster, "e2e-custom-gpu")
    pod = gpu_workload("Pod", "custom-gpu", ns, resource="example.com/gpu")
    before = admission_calls(cluster)
    cluster.apply(pod, "--dry-run=server")
    assert admission_calls(cluster) == before, "the manifests' condition names no example.com/gpu"
    config = yaml.safe_load(Path(cluster.info["config"]).read_text(encoding="utf-8"))
    config["gpuResources"] = ["nvidia.com/gpu", "example.com/gpu"]
    config["exemptNamespaces"] = ["kube-system", "e2e-gpu-infra"]
    path = cluster.dir / "config-custom-gpu.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    proc, *_, log = start_second_operator(cluster, path, name="custom-gpu")
    try:
        # The API server compiled (and cost-checked) the written CEL when it accepted it.
        wait_until(
            lambda: written_for(cluster, "example.com/gpu", "e2e-gpu-infra"),
            timeout=60,
            what=f"the replica's gpu-workload and exempt namespaces (log {log})",
        )
        for kind in WEBHOOK_CONFIGURATIONS:
            for hook in cluster.get(kind, "finops-operator")["webhooks"]:
                [names] = [
                    e["values"]
                    for e in hook["namespaceSelector"]["matchExpressions"]
                    if e["key"] == NAME_LABEL
                ]
                assert names == ["kube-system", "e2e-gpu-infra", "finops-system"]
        # Sent now; the script's operator (the one the webhooks call) judges it with its
        # own configuration, where example.com/gpu is no GPU.
        cluster.apply(pod, "--dry-run=server")
        assert admission_calls(cluster) > before
    finally:
        stop_process(proc)
        (Path(cluster.info["state"]) / "extra-operator-custom-gpu.pid").unlink(missing_ok=True)
        settings = webhook_settings(load_config(cluster.info["config"]), "finops-system")
        for kind in WEBHOOK_CONFIGURATIONS:
            ops = conditions_patch(cluster.get(kind, "finops-operator"), settings)
            if ops:
                cluster.kubectl(
                    "patch", kind, "finops-operator", "--type=json", "-p", json.dumps(ops)
                )
    assert not written_for(cluster, "example.com/gpu", "e2e-gpu-infra")
