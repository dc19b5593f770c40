"""The PromQL of self-hosted inference: vLLM's tokens and the GPU hours of its pods.

vLLM exports `vllm:prompt_tokens_total` and `vllm:generation_tokens_total`, counters
labelled `model_name` (docs.vllm.ai, "Production Metrics"); the serving pod's
`namespace` and `pod` are the scrape target's labels (a PodMonitor or a
ServiceMonitor adds them). Two queries per evaluation, built like `cost_queries`
(same windows, same integration of the operator's allocation series):

- **GPU hours of the serving pods**, by served model, namespace, GPU model and the
  five cost labels: each pod's GPU hours (`cost_queries.pod_gpu_hours`) joined on
  `(namespace, pod)` with the models its vLLM series named in the window. A pod
  serves one model (vLLM's `--served-model-name`); a pod without vLLM series is not
  a serving pod.
- **Tokens** by served model, namespace and direction (`prompt`, `generation`), with
  `increase` (handles restarts); every replica counts its own requests, so summed.

Both keep the cluster label first and read only `names.cluster_name`'s series when
it is set, as `cost_queries` does (`QueryNames.labels`, `QueryNames.select`): two
clusters' serving pods of the same name never join each other's vLLM series, and an
HA pair read without deduplication counts vLLM's tokens once (`max without` the
replica labels before the sum, docs/multi-cluster.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from finops_operator.domain.config import SelfHostedModelsConfig
from finops_operator.domain.costs.cost_queries import (
    GPU_USAGE_LABELS,
    QueryNames,
    by,
    duration_ms,
    on,
    pod_gpu_hours,
)
from finops_operator.domain.promql import check_expression, string_literal, without_replicas

SERVED_MODEL: Final = "served_model"
SERVING_GPU_LABELS: Final = (SERVED_MODEL, "namespace", *GPU_USAGE_LABELS)
SERVING_TOKEN_LABELS: Final = (SERVED_MODEL, "namespace", "direction")
PROMPT: Final = "prompt"
GENERATION: Final = "generation"


@dataclass(frozen=True)
class ServingNames:
    """Where vLLM's counters are (config `selfHostedModels`)."""

    prompt_tokens: str = "vllm:prompt_tokens_total"
    generation_tokens: str = "vllm:generation_tokens_total"
    model_label: str = "model_name"

    @classmethod
    def from_config(cls, config: SelfHostedModelsConfig) -> ServingNames:
        return cls(
            prompt_tokens=config.prompt_tokens_metric,
            generation_tokens=config.generation_tokens_metric,
            model_label=config.model_label,
        )


def _as_served_model(expr: str, serving: ServingNames) -> str:
    label = string_literal(serving.model_label)
    return f'label_replace({expr}, "{SERVED_MODEL}", "$1", {label}, "(.*)")'


def serving_gpu_hours_query(
    window_ms: int, names: QueryNames, serving: ServingNames = ServingNames()
) -> str:
    """GPU hours of the pods serving each model, by cluster, model, namespace, GPU model
    and labels."""
    window = duration_ms(window_ms)
    served = _as_served_model(
        f"present_over_time({names.select(serving.prompt_tokens)}[{window}])", serving
    )
    pod = names.labels(("namespace", "pod"))
    inner = pod_gpu_hours(window_ms, names).replace("\n", "\n    ")
    expr = (
        f"sum {by(names.labels(SERVING_GPU_LABELS))} (\n"
        f"    {inner}\n"
        f"  * {on(pod)} group_left ({SERVED_MODEL})\n"
        f"    max {by((*pod, SERVED_MODEL))} (\n"
        f"      {served}\n"
        f"    )\n"
        f")"
    )
    check_expression(expr)
    return expr


def serving_tokens_query(
    window_ms: int, names: QueryNames, serving: ServingNames = ServingNames()
) -> str:
    """Prompt and generation tokens of each served model, by cluster, model and namespace."""
    window = duration_ms(window_ms)
    parts = []
    for direction, metric in (
        (PROMPT, serving.prompt_tokens),
        (GENERATION, serving.generation_tokens),
    ):
        counted = without_replicas(
            f"increase({names.select(metric)}[{window}])", names.replica_labels
        )
        parts.append(
            f"label_replace({_as_served_model(counted, serving)}, "
            f'"direction", "{direction}", "", "")'
        )
    joined = "\n  or\n  ".join(parts)
    expr = f"sum {by(names.labels(SERVING_TOKEN_LABELS))} (\n  {joined}\n)"
    check_expression(expr)
    return expr
