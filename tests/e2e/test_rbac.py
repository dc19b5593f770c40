"""The operator's RBAC, judged by the real authorizer over the whole session.

Runs last (see conftest's module order), so it sees every request the other
tests made the operator send. The API server's audit log (scripts/e2e-cluster.sh
records the operator's ServiceAccount at Metadata level) says what the operator
did; the installed ClusterRole and Roles say what it may do.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from finops_operator.domain.workloads import WORKLOAD_KINDS

from .conftest import OPERATOR_USER, TEAM, Cluster, wait_until

# Rules the suite cannot make the operator use, and why. Anything else unused fails.
NOT_EXERCISED: dict[tuple[str, str, str], str] = {
    # Never a request: the OwnerReferencesPermissionEnforcement admission plugin
    # checks it when the operator sets blockOwnerDeletion (see the test below).
    ("finops.resilio.tech", "costpolicies/finalizers", "update"): "checked, not called",
    # The audit reads a workload back only before retrying a write whose outcome is
    # unknown, or one a standby decided (tests/controllers/test_audit_writer.py).
    **{
        (group, plural, "get"): "read back only after an unknown outcome"
        for group, plural, _ in WORKLOAD_KINDS.values()
    },
}


def audit_entries(cluster: Cluster) -> list[dict[str, Any]]:
    lines = cluster.audit_log.read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def operator_logs(cluster: Cluster) -> dict[str, str]:
    return {
        p.name: p.read_text(errors="replace")
        for p in Path(cluster.info["logs"]).glob("operator*.log")
    }


def granted(cluster: Cluster) -> set[tuple[str, str, str]]:
    """(apiGroup, resource[/subresource], verb) the operator's (Cluster)Roles grant."""
    out: set[tuple[str, str, str]] = set()
    bindings = (
        cluster.get("clusterrolebindings")["items"]
        + cluster.get("rolebindings", None, None, "-A")["items"]
    )
    for binding in bindings:
        subjects = binding.get("subjects") or []
        if not any(
            s.get("kind") == "ServiceAccount"
            and s.get("name") == "finops-operator"
            and s.get("namespace") == "finops-system"
            for s in subjects
        ):
            continue
        ref = binding["roleRef"]
        if ref["kind"] == "ClusterRole":
            role = cluster.get("clusterrole", ref["name"])
        else:
            role = cluster.get("role", ref["name"], binding["metadata"]["namespace"])
        for rule in role.get("rules") or []:
            for group in rule.get("apiGroups") or []:
                for resource in rule.get("resources") or []:
                    for verb in rule.get("verbs") or []:
                        out.add((group, resource, verb))
    return out


def used(cluster: Cluster) -> set[tuple[str, str, str]]:
    out = set()
    for e in audit_entries(cluster):
        ref = e.get("objectRef") or {}
        if e["user"]["username"] != OPERATOR_USER or not ref.get("resource"):
            continue
        resource = ref["resource"] + (f"/{ref['subresource']}" if ref.get("subresource") else "")
        out.add((ref.get("apiGroup", ""), resource, e["verb"]))
    return out


FORBIDDEN_IN_LOG = re.compile(r"(?<![\d,.:])403(?![\d])|Forbidden", re.IGNORECASE)


def test_no_request_of_the_operator_was_forbidden(cluster: Cluster) -> None:
    refused = [
        f"{e['verb']} {e.get('requestURI')}: {e['responseStatus'].get('code')}"
        for e in audit_entries(cluster)
        if e["user"]["username"] == OPERATOR_USER
        and (e.get("responseStatus") or {}).get("code") == 403
    ]
    assert refused == [], refused
    for name, text in operator_logs(cluster).items():
        # 403 as a number of its own, not the milliseconds of a log line's timestamp
        bad = [line for line in text.splitlines() if FORBIDDEN_IN_LOG.search(line)]
        assert bad == [], f"{name}:\n" + "\n".join(bad[:20])


def test_the_operator_used_only_what_it_is_granted_and_all_of_it(cluster: Cluster) -> None:
    grants = granted(cluster)
    uses = used(cluster)
    assert grants, "no Role or ClusterRole bound to finops-system/finops-operator"
    unused = sorted(g for g in grants if g not in uses and g not in NOT_EXERCISED)
    assert unused == [], f"granted but never used in the whole e2e session: {unused}"
    # Requests the authorizer allowed that no rule of ours names would mean a
    # broader grant from elsewhere (e.g. system:basic-user's selfsubjectreviews).
    extra = sorted(u for u in uses if u not in grants and not u[1].startswith("selfsubject"))
    assert extra == [], f"used without a rule of the manifests: {extra}"


def test_the_operator_may_block_its_policies_deletion(cluster: Cluster) -> None:
    """A PrometheusRule with blockOwnerDeletion needs `update` on costpolicies/finalizers.

    Clusters with the OwnerReferencesPermissionEnforcement admission plugin (on by
    default in OpenShift) check it. Without it the real API server refuses every
    PrometheusRule
    (E2E_APISERVER_FLAGS=--enable-admission-plugins=OwnerReferencesPermissionEnforcement):
    403 prometheusrules.monitoring.coreos.com "costpolicy-search" is forbidden:
    cannot set blockOwnerDeletion if an ownerReference refers to a resource you
    can't set finalizers on
    """
    cluster.namespace("e2e-rbac", {TEAM: "t"})  # the policy's lane: team t
    cluster.apply(
        {
            "apiVersion": "finops.resilio.tech/v1alpha1",
            "kind": "CostPolicy",
            "metadata": {"name": "owner", "namespace": "e2e-rbac"},
            "spec": {"selector": {"team": "t"}, "budget": {"monthly": 10, "currency": "USD"}},
        }
    )

    def owned_rule() -> dict[str, Any] | None:
        for item in cluster.get("prometheusrules", None, "e2e-rbac")["items"]:
            refs = item["metadata"].get("ownerReferences") or []
            if any(r.get("kind") == "CostPolicy" for r in refs):
                return dict(item)
        return None

    rule = wait_until(owned_rule, timeout=60, what="the policy's PrometheusRule")
    blocks = any(r.get("blockOwnerDeletion") for r in rule["metadata"]["ownerReferences"])
    proc = cluster.kubectl(
        "auth",
        "can-i",
        "update",
        "costpolicies.finops.resilio.tech",
        "--subresource=finalizers",
        "-n",
        "e2e-rbac",
        "--as",
        OPERATOR_USER,
        check=False,
    )
    allowed = proc.stdout.strip() == "yes"
    assert allowed or not blocks, (
        "the PrometheusRule sets blockOwnerDeletion but the operator cannot update "
        "costpolicies/finalizers: with OwnerReferencesPermissionEnforcement every "
        "PrometheusRule is refused"
    )
