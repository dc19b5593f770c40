"""Wrapping rule groups into `monitoring.coreos.com/v1` PrometheusRule objects.

The last step of rendering: validate -> recording rules / alerts -> wrap. Two
objects come out of here: one per CostPolicy (in the policy's namespace,
labelled with its `alerting.ruleLabels` so a kube-prometheus-stack
`ruleSelector` picks it up), and one operator-owned object holding the shared
recording rules. Both are plain dicts, ready for the Kubernetes API or YAML.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from finops_operator.domain import conventions, names
from finops_operator.domain.config import DEFAULT_RULE_LABELS, LabelRule, LlmGatewayConfig
from finops_operator.domain.rules.alert_rules import AlertOptions, render_alert_groups
from finops_operator.domain.rules.cost_policy import CostPolicy, parse_cost_policy
from finops_operator.domain.rules.recording_rules import CLUSTER_LABEL, render_recording_rules

MAX_NAME_LENGTH = 63


def rule_name_for(policy_name: str) -> str:
    """The PrometheusRule name of a policy: `costpolicy-<name>`, or with a hash when needed.

    Names are collision-free: a name that ends in `-` and 8 hex digits is always a
    shortened one, `costpolicy-<start of the name>-<sha256 of the whole name>`, so
    a policy whose own name ends like a hash (`team-2a0f9c1e`, `budget-20250101`)
    gets the hashed form too, and can never take another policy's rule name.
    """
    name = conventions.COSTPOLICY_RULE_PREFIX + policy_name
    if len(name) <= MAX_NAME_LENGTH and not names.ends_like_hash(name):
        return name
    return names.hashed_name(name, policy_name, MAX_NAME_LENGTH)


def legacy_rule_names(policy_name: str) -> tuple[str, ...]:
    """Names earlier releases gave this policy's rule, other than today's (to clean up)."""
    earlier = conventions.COSTPOLICY_RULE_PREFIX + policy_name
    if len(earlier) <= MAX_NAME_LENGTH and earlier != rule_name_for(policy_name):
        return (earlier,)
    return ()


def rule_conflict(current: Mapping[str, Any], desired: Mapping[str, Any]) -> str | None:
    """Why a stored PrometheusRule with the desired name is not this policy's; None if it is.

    It is this policy's when its controller owner is this policy (by name: a policy
    deleted and created again keeps its rule), or, with no controller owner, when
    the operator made it for this policy (its managed-by and costpolicy labels).
    Anything else (another policy's rule, a rule someone wrote by hand) is never
    taken over.
    """
    meta = current.get("metadata") or {}
    want = desired["metadata"]
    where = f"PrometheusRule {want.get('namespace')}/{want['name']}"
    owners = [
        ref
        for ref in meta.get("ownerReferences") or []
        if isinstance(ref, Mapping) and ref.get("controller") is True
    ]
    wanted_owners = want.get("ownerReferences") or []
    mine = wanted_owners[0].get("name") if wanted_owners else None
    if owners:
        owner = owners[0]
        if owner.get("kind") == conventions.COSTPOLICY_KIND and (
            mine is None or owner.get("name") == mine
        ):
            return None
        return f"{where} belongs to {owner.get('kind')} {owner.get('name')}; not taken over"
    labels = meta.get("labels") or {}
    wanted = want.get("labels") or {}
    if labels.get(conventions.MANAGED_BY_LABEL) == conventions.MANAGED_BY and labels.get(
        conventions.COSTPOLICY_RULE_LABEL
    ) == wanted.get(conventions.COSTPOLICY_RULE_LABEL):
        return None
    return f"{where} exists and was not made for this policy; not taken over"


def _prometheus_rule(
    name: str, namespace: str, labels: Mapping[str, str], groups: list[dict[str, Any]]
) -> dict[str, Any]:
    return {
        "apiVersion": conventions.PROMETHEUS_RULE_API_VERSION,
        "kind": conventions.PROMETHEUS_RULE_KIND,
        "metadata": {"name": name, "namespace": namespace, "labels": dict(labels)},
        "spec": {"groups": groups},
    }


def policy_prometheus_rule(
    policy: CostPolicy, options: AlertOptions | None = None
) -> dict[str, Any]:
    """The PrometheusRule one validated CostPolicy becomes.

    Its labels are the configured `ruleLabels` with the policy's own
    `alerting.ruleLabels` over them, so the Prometheus ruleSelector loads it.

    When the policy carries a uid (it came from the API server), the object is
    owned by the policy (`controller: true`), so it goes when the policy goes.
    """
    options = options or AlertOptions()
    # A fleet policy is for Thanos Ruler, not for this cluster's Prometheus.
    base = options.fleet_rule_labels if policy.spec.clusters == "all" else options.rule_labels
    labels = dict(sorted({**base, **policy.spec.alerting.rule_labels}.items()))
    labels[conventions.MANAGED_BY_LABEL] = conventions.MANAGED_BY
    labels[conventions.COSTPOLICY_RULE_LABEL] = policy.name[:63].rstrip("-.")
    rule = _prometheus_rule(
        rule_name_for(policy.name),
        policy.namespace,
        labels,
        render_alert_groups(policy, options),
    )
    if policy.uid:
        rule["metadata"]["ownerReferences"] = [
            {
                "apiVersion": conventions.API_GROUP_VERSION,
                "kind": conventions.COSTPOLICY_KIND,
                "name": policy.name,
                "uid": policy.uid,
                "controller": True,
            }
        ]
    return rule


def recording_rules_prometheus_rule(
    namespace: str = conventions.OPERATOR_NAMESPACE,
    labels: Mapping[str, str] | None = None,
    gateway: LlmGatewayConfig | None = None,
    cluster_label: str = CLUSTER_LABEL,
) -> dict[str, Any]:
    """The operator-owned PrometheusRule with the shared recording rules.

    `labels` are the configured `ruleLabels` (default `release: kube-prometheus-stack`);
    `cluster_label` is config `cluster.label`.
    """
    merged = dict(sorted((DEFAULT_RULE_LABELS if labels is None else labels).items()))
    merged[conventions.MANAGED_BY_LABEL] = conventions.MANAGED_BY
    return _prometheus_rule(
        conventions.RECORDING_RULES_NAME,
        namespace,
        merged,
        render_recording_rules(gateway, cluster_label),
    )


def render_policy(
    obj: Any,
    options: AlertOptions | None = None,
    *,
    label_rules: Mapping[str, LabelRule] | None = None,
    default_namespace: str = "default",
    source: str = "",
) -> dict[str, Any]:
    """A CostPolicy object (as read from YAML or the API) to its PrometheusRule.

    Raises cost_policy.CostPolicyError, naming each bad field, for a policy that
    cannot become rules.
    """
    options = options or AlertOptions()
    policy = parse_cost_policy(
        obj,
        label_rules=label_rules,
        currency=options.currency,
        default_namespace=default_namespace,
        source=source,
    )
    return policy_prometheus_rule(policy, options)


def rule_count(prometheus_rule: Mapping[str, Any]) -> int:
    """How many rules (recording and alerting) a PrometheusRule holds, for status."""
    groups = prometheus_rule.get("spec", {}).get("groups", [])
    return sum(len(group.get("rules", [])) for group in groups)


def rule_groups_file(prometheus_rule: Mapping[str, Any]) -> dict[str, Any]:
    """The `groups:` document Prometheus and promtool read, from a PrometheusRule."""
    return {"groups": prometheus_rule["spec"]["groups"]}
