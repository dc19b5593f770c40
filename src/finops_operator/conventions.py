"""Fixed names that other tools and users rely on.

Label keys, annotations, API groups, metric names and rule-group prefixes live
here and nowhere else, so that renaming one is a deliberate, reviewable change
(see the "Contracts" section of DESIGN.md).
"""

from __future__ import annotations

from typing import Final

LABEL_PREFIX: Final = "resilio.tech/"

TEAM_LABEL: Final = "resilio.tech/team"
FEATURE_LABEL: Final = "resilio.tech/feature"
ENVIRONMENT_LABEL: Final = "resilio.tech/environment"
WORKLOAD_TYPE_LABEL: Final = "resilio.tech/workload-type"
COST_CENTER_LABEL: Final = "resilio.tech/cost-center"

COST_LABELS: Final = (
    TEAM_LABEL,
    FEATURE_LABEL,
    ENVIRONMENT_LABEL,
    WORKLOAD_TYPE_LABEL,
    COST_CENTER_LABEL,
)

# Cost label key -> the Prometheus label name it is exported as.
METRIC_LABEL_FOR: Final = {
    TEAM_LABEL: "team",
    FEATURE_LABEL: "feature",
    ENVIRONMENT_LABEL: "environment",
    WORKLOAD_TYPE_LABEL: "workload_type",
    COST_CENTER_LABEL: "cost_center",
}
# The short names a CostPolicy selector uses, and the label key each stands for.
SHORT_NAME_FOR: Final = {
    "team": TEAM_LABEL,
    "feature": FEATURE_LABEL,
    "environment": ENVIRONMENT_LABEL,
    "workloadType": WORKLOAD_TYPE_LABEL,
    "costCenter": COST_CENTER_LABEL,
}
UNTAGGED: Final = "__untagged__"

API_GROUP: Final = "finops.resilio.tech"
API_VERSION: Final = "v1alpha1"

EXEMPT_ANNOTATION: Final = "finops.resilio.tech/exempt"
VIOLATIONS_ANNOTATION: Final = "finops.resilio.tech/violations"
INHERITED_ANNOTATION: Final = "finops.resilio.tech/inherited-labels"
MODE_NAMESPACE_LABEL: Final = "finops.resilio.tech/mode"

OPERATOR_NAMESPACE: Final = "finops-system"
DEFAULT_EXEMPT_NAMESPACES: Final = ("kube-system", OPERATOR_NAMESPACE)

DEFAULT_GPU_RESOURCES: Final = (
    "nvidia.com/gpu",
    "nvidia.com/gpu.shared",
    "nvidia.com/mig-*",
    "amd.com/gpu",
)

# The paths the admission server answers on; manifests/ registers the same.
VALIDATE_PATH: Final = "/validate"
MUTATE_PATH: Final = "/mutate"

# Reasons of the Events the operator posts.
EVENT_REASON_VIOLATION: Final = "MissingCostLabels"
EVENT_REASON_FIXED: Final = "CostLabelsCompliant"

# Metrics the operator exports.
METRIC_VIOLATIONS: Final = "finops_label_violations"
METRIC_ADMISSION_REQUESTS: Final = "finops_admission_requests_total"
METRIC_ADMISSION_DURATION: Final = "finops_admission_duration_seconds"
METRIC_POD_GPU_ALLOCATION: Final = "finops_pod_gpu_allocation"
METRIC_NODE_GPU_CAPACITY: Final = "finops_node_gpu_capacity"
METRIC_GPU_HOURLY_PRICE: Final = "finops_gpu_hourly_price"
