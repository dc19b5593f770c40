"""The operator's token can change a workload's violations annotation and nothing else.

RBAC grants `patch` on a kind, not on a field: with the operator's own token an
attack round patched `kube-system/victim` to run another image under another
ServiceAccount (issue 19). manifests/base/least-privilege.yaml ships a
ValidatingAdmissionPolicy the API server evaluates for that ServiceAccount's
updates. Requests here impersonate it (`--as`), so the API server judges them with
its username, its RBAC and the policy, exactly as a request with its token.
"""

from __future__ import annotations

import json

import pytest

from finops_operator.domain import conventions

from .conftest import OPERATOR_USER, Cluster

NS = "e2e-least-privilege"
POLICY = "finops-operator-writes-only-its-annotation"


@pytest.fixture(scope="module")
def victim(cluster: Cluster) -> str:
    cluster.namespace(NS)
    cluster.apply(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "victim", "namespace": NS, "labels": {"app": "victim"}},
            "spec": {
                "replicas": 0,
                "selector": {"matchLabels": {"app": "victim"}},
                "template": {
                    "metadata": {"labels": {"app": "victim"}},
                    "spec": {"containers": [{"name": "app", "image": "registry.invalid/app:1"}]},
                },
            },
        }
    )
    return "victim"


def patch_as_operator(cluster: Cluster, body: dict[str, object], *more: str) -> tuple[int, str]:
    proc = cluster.kubectl(
        "--as", OPERATOR_USER, "-n", NS, "patch", "deployment", "victim",
        "--type", "merge", "-p", json.dumps(body), *more, check=False,
    )  # fmt: skip
    return proc.returncode, proc.stdout + proc.stderr


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (
            {"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "evil:1"}]}}}},
            "may not change a workload's spec",
        ),
        ({"spec": {"template": {"spec": {"serviceAccountName": "default"}}}}, "spec"),
        ({"metadata": {"labels": {"app": "victim", "extra": "x"}}}, "labels"),
        ({"metadata": {"annotations": {"other": "x"}}}, "only the finops.resilio.tech/violations"),
        ({"metadata": {"finalizers": ["example.com/hold"]}}, "owners or finalizers"),
    ],
    ids=["image", "service-account", "labels", "other-annotation", "finalizers"],
)
def test_the_operator_token_is_refused_any_change_but_its_annotation(
    cluster: Cluster, victim: str, change: dict[str, object], named: str
) -> None:
    before = cluster.get("deployment", victim, NS)
    code, output = patch_as_operator(cluster, change)
    assert code != 0, output
    assert POLICY in output and named in output, output
    after = cluster.get("deployment", victim, NS)
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]


def test_the_operator_token_may_set_and_clear_the_violations_annotation(
    cluster: Cluster, victim: str
) -> None:
    # The object as the patch stored it (`-o json`): the running operator's audit may clear
    # the annotation from this GPU-less Deployment right after, so a later read could race.
    key = conventions.VIOLATIONS_ANNOTATION
    set_it = {"metadata": {"annotations": {key: "[]"}}}
    code, output = patch_as_operator(cluster, set_it, "-o", "json")
    assert code == 0, output
    assert json.loads(output)["metadata"]["annotations"][key] == "[]"
    code, output = patch_as_operator(
        cluster, {"metadata": {"annotations": {key: None}}}, "-o", "json"
    )
    assert code == 0, output
    assert key not in (json.loads(output)["metadata"].get("annotations") or {})


def test_others_are_not_bound_by_it_and_the_operator_cannot_remove_it(
    cluster: Cluster, victim: str
) -> None:
    change = {"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "ok:2"}]}}}}
    cluster.kubectl("-n", NS, "patch", "deployment", victim, "--type", "merge",
                    "-p", json.dumps(change))  # fmt: skip
    for resource in ("validatingadmissionpolicy", "validatingadmissionpolicybinding"):
        proc = cluster.kubectl("--as", OPERATOR_USER, "delete", resource, POLICY, check=False)
        assert proc.returncode != 0 and "forbidden" in proc.stderr.lower(), proc.stderr
        assert cluster.exists(resource, POLICY)
