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
# The apiVersion of the operator's own resources (CostPolicy, CostReport).
API_GROUP_VERSION: Final = f"{API_GROUP}/{API_VERSION}"

EXEMPT_ANNOTATION: Final = "finops.resilio.tech/exempt"
# The one value of EXEMPT_ANNOTATION that exempts; the reason goes in EXEMPT_REASON_ANNOTATION.
EXEMPT_VALUE: Final = "true"
EXEMPT_REASON_ANNOTATION: Final = "finops.resilio.tech/exempt-reason"
VIOLATIONS_ANNOTATION: Final = "finops.resilio.tech/violations"
INHERITED_ANNOTATION: Final = "finops.resilio.tech/inherited-labels"
MODE_NAMESPACE_LABEL: Final = "finops.resilio.tech/mode"

OPERATOR_NAMESPACE: Final = "finops-system"
CONFIG_MAP: Final = "finops-operator-config"  # the install's ConfigMap, in OPERATOR_NAMESPACE
CONFIGMAP_KEY: Final = "config.yaml"  # its key the Deployment mounts as the --config file
DEFAULT_EXEMPT_NAMESPACES: Final = ("kube-system", OPERATOR_NAMESPACE)

# Dynamic Resource Allocation drivers whose devices are GPUs (NVIDIA's k8s-dra-driver-gpu).
DEFAULT_DRA_DRIVERS: Final = ("gpu.nvidia.com",)
DEFAULT_GPU_RESOURCES: Final = (
    "nvidia.com/gpu",
    "nvidia.com/gpu.shared",
    "nvidia.com/mig-*",
    "amd.com/gpu",
    "gpu.intel.com/i915",
    "gpu.intel.com/xe",
)

# The paths the admission server answers on; manifests/ registers the same.
VALIDATE_PATH: Final = "/validate"
MUTATE_PATH: Final = "/mutate"
# The webhooks' names in manifests/base/webhooks.yaml (kubectl quotes them in a denial).
VALIDATING_WEBHOOK: Final = "labels.finops.resilio.tech"
MUTATING_WEBHOOK: Final = "defaults.finops.resilio.tech"

# Reasons of the Events the operator posts.
EVENT_REASON_VIOLATION: Final = "MissingCostLabels"
EVENT_REASON_FIXED: Final = "CostLabelsCompliant"
EVENT_REASON_EXEMPTED: Final = "CostLabelsExempted"  # a GPU workload exempt by annotation

# Metrics the operator exports.
METRIC_VIOLATIONS: Final = "finops_label_violations"
METRIC_EXEMPTIONS: Final = "finops_label_exemptions"  # {namespace, kind}
METRIC_ADMISSION_REQUESTS: Final = "finops_admission_requests_total"
METRIC_ADMISSION_DURATION: Final = "finops_admission_duration_seconds"
METRIC_POD_GPU_ALLOCATION: Final = "finops_pod_gpu_allocation"
METRIC_NODE_GPU_CAPACITY: Final = "finops_node_gpu_capacity"
METRIC_GPU_HOURLY_PRICE: Final = "finops_gpu_hourly_price"
METRIC_TOKEN_PRICE: Final = "finops_token_price_per_1k"  # {model, direction}
# 1 per pod reserving a DRA claim with GPU devices: {dra_claim_namespace, dra_claim_name,
# namespace, pod}, so that dcgm-exporter's `dra_claim_*` labels lead to every sharing pod.
METRIC_DRA_CLAIM_PODS: Final = "finops_dra_claim_pods"

# CostPolicy and the PrometheusRules it becomes (DESIGN.md, "Recording rules and alerts").
COSTPOLICY_KIND: Final = "CostPolicy"
COSTPOLICY_PLURAL: Final = "costpolicies"
PROMETHEUS_RULE_API_VERSION: Final = "monitoring.coreos.com/v1"
PROMETHEUS_RULE_KIND: Final = "PrometheusRule"
MANAGED_BY_LABEL: Final = "app.kubernetes.io/managed-by"
MANAGED_BY: Final = "finops-operator"
COSTPOLICY_RULE_LABEL: Final = "finops.resilio.tech/costpolicy"
RECORDING_RULES_NAME: Final = "finops-recording-rules"
RECORDING_RULE_GROUP: Final = "finops-recording-rules"
RECORDING_RULE_MONTHLY_GROUP: Final = "finops-recording-rules-monthly"
COSTPOLICY_RULE_PREFIX: Final = "costpolicy-"
COSTPOLICY_GROUP_PREFIX: Final = "finops-costpolicy"

# Recording rules: shared by every policy's alerts and by dashboards.
RULE_HEARTBEAT: Final = "finops:rule_evaluation:heartbeat"
RULE_GPU_ALLOCATION: Final = "finops:gpu_allocation:sum"
RULE_GPU_COST_HOURLY: Final = "finops:gpu_cost_hourly:sum"
RULE_GPU_COST_LAST_HOUR: Final = "finops:gpu_cost_hourly:avg1h"
RULE_GPU_COST_LAST_DAY: Final = "finops:gpu_cost_hourly:avg24h"
RULE_GPU_COST_MONTH_TO_DATE: Final = "finops:gpu_cost_month_to_date:sum"
# Token spend through the LLM gateway, by team only (the gateway knows no other cost label).
RULE_TOKEN_COST_HOURLY: Final = "finops:token_cost_hourly:sum"
RULE_TOKEN_COST_LAST_HOUR: Final = "finops:token_cost_hourly:avg1h"
RULE_TOKEN_COST_LAST_DAY: Final = "finops:token_cost_hourly:avg24h"
RULE_TOKEN_COST_MONTH_TO_DATE: Final = "finops:token_cost_month_to_date:sum"
# gpu_model value whose price applies to GPU models without a price of their own.
DEFAULT_PRICE_MODEL: Final = "default"

ALERT_SPEND_ANOMALY: Final = "FinOpsSpendAnomaly"
ALERT_BUDGET_THRESHOLD: Final = "FinOpsBudgetThreshold"
ALERT_BUDGET_FORECAST: Final = "FinOpsBudgetForecast"
ALERT_GPU_IDLE: Final = "FinOpsGpuIdle"
ALERT_GPU_RETRY_LOOP: Final = "FinOpsGpuRetryLoop"

# Labels every generated alert carries, besides the policy's alerting.labels.
ALERT_LABEL_TEAM: Final = "team"
ALERT_LABEL_COSTPOLICY: Final = "costpolicy"
ALERT_LABEL_SEVERITY: Final = "severity"
ALERT_LABEL_THRESHOLD: Final = "threshold"
ALERT_LABEL_REASON: Final = "reason"

# CostPolicy condition saying whether Prometheus evaluates the shared recording rules.
CONDITION_RULES_EVALUATING: Final = "RulesEvaluating"

# Series read from other exporters (defaults; DESIGN.md "Metrics").
METRIC_GPU_UTILIZATION: Final = "DCGM_FI_DEV_GPU_UTIL"
# What DCGM reports per MIG instance (0-1), where the device metric reads 0 or nothing.
METRIC_MIG_ENGINE_ACTIVE: Final = "DCGM_FI_PROF_GR_ENGINE_ACTIVE"
METRIC_CONTAINER_RESTARTS: Final = "kube_pod_container_status_restarts_total"
METRIC_JOB_FAILED: Final = "kube_job_status_failed"
METRIC_POD_OWNER: Final = "kube_pod_owner"
