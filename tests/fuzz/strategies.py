"""Hypothesis strategies: AdmissionReviews, workloads, CostPolicies and configurations.

The workloads start from the realistic shapes of src/finops_devtools/devcluster/reviews.py and the
hostile values of tests/domain/policies/workload_corpus.py, then vary what an
attacker controls: quantities (huge, tiny, not numbers), labels, the exempt
annotation, owner references, DRA claims, and, now and then, any subtree of the
object replaced by arbitrary JSON.
"""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import strategies as st

from finops_devtools.devcluster.reviews import COMPLETE_LABELS, review, workload
from finops_operator.domain.workloads import WORKLOAD_KINDS, pod_template
from tests.domain.policies.workload_corpus import BAD_VALUES

KINDS = sorted(WORKLOAD_KINDS)
GPU_RESOURCES = [
    "nvidia.com/gpu",
    "nvidia.com/mig-1g.10gb",
    "amd.com/gpu",
    "gpu.intel.com/i915",
    "gpu.intel.com/xe",
    "example.com/fpga",
]
HOSTILE_QUANTITIES = [
    "1",
    "0",
    "500m",
    "1e999999999999",
    "-1e999999999999",
    "1e-999999999999",
    "16Ei",
    "9" * 400,
    "lots",
    "1.2.3",
    "",
    " 2 ",
    "NaN",
    "Infinity",
]

json_leaf = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20)
)
any_json = st.recursive(
    json_leaf,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=12,
)

quantities = (
    st.sampled_from(HOSTILE_QUANTITIES)
    | st.integers(min_value=-(10**25), max_value=10**25)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.from_regex(
        r"[+-]?[0-9]{1,4}(\.[0-9]{0,3})?([eE][+-]?[0-9]{1,15})?(m|k|Ki|Mi|Ei|E)?", fullmatch=True
    )
    | json_leaf
)


@st.composite
def labels(draw: st.DrawFn) -> dict[str, Any]:
    made: dict[str, Any] = {}
    for key, good in COMPLETE_LABELS.items():
        choice = draw(st.integers(0, 3))
        if choice < 2:
            made[key] = good
        elif choice == 2:
            made[key] = draw(st.sampled_from(BAD_VALUES[key]) | json_leaf)
    return made


OWNERS = [
    ("apps/v1", "ReplicaSet"),
    ("apps/v1", "StatefulSet"),
    ("apps/v1", "DaemonSet"),
    ("batch/v1", "Job"),
    ("apps/v1", "Deployment"),
    ("batch/v1", "CronJob"),
    ("v1", "ReplicaSet"),
    ("v1", "ConfigMap"),
    ("ray.io/v1", "RayCluster"),
]


def _havoc(obj: dict[str, Any], path: list[str], value: Any) -> None:
    node: Any = obj
    for step in path[:-1]:
        if not isinstance(node, dict) or not isinstance(node.get(step), dict):
            return
        node = node[step]
    if isinstance(node, dict):
        node[path[-1]] = value


HAVOC_PATHS = [
    ["metadata"],
    ["metadata", "labels"],
    ["metadata", "annotations"],
    ["metadata", "ownerReferences"],
    ["spec"],
    ["spec", "template"],
    ["spec", "template", "metadata"],
    ["spec", "template", "metadata", "labels"],
    ["spec", "template", "spec"],
    ["spec", "containers"],
    ["spec", "resourceClaims"],
    ["apiVersion"],
    ["kind"],
]


@st.composite
def workloads(draw: st.DrawFn, kind: str | None = None) -> dict[str, Any]:
    """A workload of one of the seven kinds, varied where users and attackers write."""
    kind = kind or draw(st.sampled_from(KINDS))
    namespace = draw(st.sampled_from(["team-a", "team-b", "kube-system"]))
    obj = workload(
        kind,
        namespace=namespace,
        labels=draw(labels()),
        gpus=draw(quantities),
        resource=draw(st.sampled_from(GPU_RESOURCES)),
    )
    template = pod_template(obj)
    if draw(st.booleans()):
        where = obj["metadata"] if draw(st.booleans()) else template["metadata"]
        value = draw(st.sampled_from(["true", "false", "", "True", "burn-in"]) | json_leaf)
        where.setdefault("annotations", {})["finops.resilio.tech/exempt"] = value
    if draw(st.booleans()):
        api_version, owner = draw(st.sampled_from(OWNERS))
        ref = {"apiVersion": api_version, "kind": owner, "name": "o", "uid": "u"}
        ref["controller"] = draw(st.sampled_from([True, False, "true", None]))
        obj["metadata"]["ownerReferences"] = [ref]
    if draw(st.integers(0, 4)) == 0:
        claim = draw(
            st.sampled_from(
                [
                    {"name": "gpu", "resourceClaimTemplateName": "single-gpu"},
                    {"name": "gpu", "resourceClaimName": "shared"},
                    {"name": "gpu"},
                    {"name": "gpu", "resourceClaimTemplateName": ""},
                ]
            )
        )
        template["spec"]["resourceClaims"] = [claim]
    if draw(st.integers(0, 3)) == 0:
        _havoc(obj, draw(st.sampled_from(HAVOC_PATHS)), draw(any_json))
    return obj


def as_review(
    obj: dict[str, Any],
    operation: str = "CREATE",
    old: dict[str, Any] | None = None,
    sub_resource: str | None = None,
    kind: str = "Pod",
) -> dict[str, Any]:
    """`review()` for objects whose metadata may be anything: the request as sent."""

    def named(o: dict[str, Any]) -> dict[str, Any]:
        return o if isinstance(o.get("metadata"), dict) else {**o, "metadata": {}}

    body = review(
        named(obj), operation, named(old) if old else None, sub_resource=sub_resource, kind=kind
    )
    body["request"]["object"] = copy.deepcopy(obj)
    body["request"]["oldObject"] = copy.deepcopy(old)
    return body


namespace_labels = st.fixed_dictionaries(
    {},
    optional={
        "finops.resilio.tech/mode": st.sampled_from(["enforce", "audit", "off", "lax", ""]),
        "resilio.tech/team": st.sampled_from(["search-platform", "BAD TEAM"]),
        "resilio.tech/cost-center": st.just("cc-1042"),
        "resilio.tech/environment": st.sampled_from(["production", "prod"]),
    },
)


@st.composite
def reviews(draw: st.DrawFn) -> dict[str, Any]:
    """An AdmissionReview: mostly well-formed, sometimes broken anywhere."""
    obj = draw(workloads())
    operation = draw(st.sampled_from(["CREATE", "UPDATE", "UPDATE", "DELETE", "CONNECT"]))
    # `kind` may have been broken on purpose (`workloads` corrupts it sometimes)
    kind = obj["kind"] if isinstance(obj.get("kind"), str) and obj["kind"] in KINDS else "Pod"
    old = draw(workloads(kind=kind)) if operation == "UPDATE" else None
    sub = draw(st.sampled_from([None, None, None, "status", "scale"]))
    body = as_review(obj, operation, old=old, sub_resource=sub, kind=kind)
    if draw(st.integers(0, 5)) == 0:
        target = draw(st.sampled_from(["top", "request"]))
        node = body if target == "top" else body["request"]
        key = draw(st.sampled_from(sorted(node)))
        node[key] = draw(any_json)
    return copy.deepcopy(body)


# --- CostPolicies ------------------------------------------------------------------------

numbers = (
    st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.sampled_from([0, 1, 50, 100, 1000, 10**12, 10**12 + 1, 1e26, 10**400])
    | json_leaf
)
durations = st.sampled_from(["15m", "2h", "7d", "1h30m", "0s", "99999999d", "x", ""]) | json_leaf
selector_values = st.sampled_from(
    ["search", "__untagged__", "production", "cc-1", "UPPER", 'a"} or 1', ""]
) | st.text(max_size=70)


@st.composite
def cost_policies(draw: st.DrawFn) -> Any:
    spec: dict[str, Any] = {}
    selector = draw(
        st.dictionaries(
            st.sampled_from(["team", "feature", "environment", "workloadType", "costCenter", "x"]),
            selector_values,
            max_size=3,
        )
    )
    if selector:
        spec["selector"] = selector
    if draw(st.booleans()):
        spec["anomaly"] = {
            "threshold": draw(numbers),
            **draw(
                st.fixed_dictionaries(
                    {},
                    optional={
                        "baseline": durations,
                        "for": durations,
                        "minHourlyCost": numbers,
                        "minHistory": durations,
                    },
                )
            ),
        }
    if draw(st.booleans()):
        spec["budget"] = {
            "monthly": draw(numbers),
            **draw(
                st.fixed_dictionaries(
                    {},
                    optional={
                        "currency": st.sampled_from(["USD", "EUR", "usd"]),
                        "thresholds": st.lists(numbers, max_size=12),
                        "forecast": st.booleans() | json_leaf,
                    },
                )
            ),
        }
    if draw(st.booleans()):
        spec["idle"] = {"maxUtilization": draw(numbers), "for": draw(durations)}
    if draw(st.booleans()):
        spec["retries"] = {"maxRestartsPerHour": draw(numbers)}
    if draw(st.booleans()):
        spec["alerting"] = {
            "severity": draw(st.sampled_from(["warning", "critical", "page"])),
            "labels": draw(st.dictionaries(st.text(max_size=10), st.text(max_size=10), max_size=3)),
            "ruleLabels": draw(
                st.dictionaries(st.text(max_size=10), st.text(max_size=10), max_size=3)
            ),
        }
    name = draw(st.sampled_from(["p", "search-budget", "x" * 80, "a-deadbeef", "", "Bad_Name"]))
    policy: dict[str, Any] = {
        "apiVersion": "finops.resilio.tech/v1alpha1",
        "kind": "CostPolicy",
        "metadata": {"name": name, "namespace": "finops", "uid": "u-1"},
        "spec": spec,
    }
    if draw(st.integers(0, 4)) == 0:
        _havoc(
            policy,
            draw(st.sampled_from([["spec"], ["metadata"], ["spec", "selector"]])),
            draw(any_json),
        )
    return policy


# --- configurations ----------------------------------------------------------------------

money = (
    st.sampled_from(["2.50", "0", "-1", "1e400", "1e12", "1000000000001", "NaN", "Infinity", "x"])
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=True, allow_infinity=True)
    | json_leaf
)


@st.composite
def configs(draw: st.DrawFn) -> Any:
    if draw(st.integers(0, 9)) == 0:
        return draw(any_json)
    return draw(
        st.fixed_dictionaries(
            {},
            optional={
                "mode": st.sampled_from(["enforce", "audit", "off", "lax"]) | json_leaf,
                "exemptNamespaces": st.lists(st.text(max_size=12), max_size=3) | json_leaf,
                "labels": st.dictionaries(
                    st.sampled_from(["resilio.tech/team", "bad key", "a/b/c", "x"]),
                    st.none()
                    | st.fixed_dictionaries(
                        {},
                        optional={
                            "pattern": st.sampled_from(["^a$", "(", "[a-"]),
                            "values": st.lists(st.text(max_size=5), max_size=2),
                        },
                    )
                    | json_leaf,
                    max_size=3,
                ),
                "gpuResources": st.lists(st.text(max_size=15), max_size=3) | json_leaf,
                "prometheus": st.fixed_dictionaries(
                    {},
                    optional={"url": st.sampled_from(["http://p:9090", "ftp://x", ""]) | json_leaf},
                ),
                "pricing": st.fixed_dictionaries(
                    {},
                    optional={
                        "currency": st.sampled_from(["USD", "usd", "EURO"]) | json_leaf,
                        "gpuHourly": st.dictionaries(
                            st.sampled_from(["default", "H100"]), money, max_size=2
                        )
                        | json_leaf,
                        "tokensPer1k": st.dictionaries(
                            st.sampled_from(["default", "gpt"]), money, max_size=2
                        ),
                        "sharedMonthly": money,
                        "sharedSplit": st.sampled_from(["proportional", "even", "odd"]),
                    },
                ),
                "reports": st.fixed_dictionaries({}, optional={"intervalSeconds": numbers}),
                "unknownKey": json_leaf,
            },
        )
    )
