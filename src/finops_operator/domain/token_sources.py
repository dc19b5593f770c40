"""The token series of the configured LLM gateway, in one place for every reader.

The recording rules (token spend alerts, dashboards), the CostReports and `report`
all read tokens by team, model and direction. Where those come from depends on the
gateway (config `llmGateway.preset`), so the PromQL of one direction's token counter,
with `team` and `model` labels set, is rendered here and nowhere else:

- `litellm`: LiteLLM's counters `litellm_input_tokens_metric_total` and
  `litellm_output_tokens_metric_total` (litellm/integrations/prometheus.py), the
  model in `model`, the team in `team_alias` or `team`.
- `otel-genai`: the OpenTelemetry GenAI semantic conventions' histogram
  `gen_ai.client.token.usage` (unit `{token}`, one observation per request), whose
  `_sum` series is a counter of tokens. Prometheus stores the attributes
  `gen_ai.token.type` (`input`, `output`), `gen_ai.request.model` and
  `gen_ai.provider.name` (called `gen_ai.system` before semconv 1.37) as
  `gen_ai_token_type`, `gen_ai_request_model` and `gen_ai_provider_name`. The team
  is the configured label: the gateway's own attribute for the caller.

Every expression keeps the series' other labels (target labels, gateway replicas),
so callers sum: each gateway replica counts its own requests.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from finops_operator.domain.config import LlmGatewayConfig, TokenDirection, TokenPreset
from finops_operator.domain.promql import string_literal, without_replicas

# The attributes of gen_ai.client.token.usage as Prometheus names them.
OTEL_TOKEN_TYPE_LABEL: Final = "gen_ai_token_type"
OTEL_MODEL_LABEL: Final = "gen_ai_request_model"
OTEL_PROVIDER_LABEL: Final = "gen_ai_provider_name"
LITELLM_MODEL_LABEL: Final = "model"


@dataclass(frozen=True)
class TokenSource:
    """Which series hold one direction's tokens, and which labels name team and model.

    `type_label` is None when each direction has its own counter (LiteLLM), else the
    label whose value is the direction (`gen_ai_token_type`).
    """

    preset: TokenPreset
    input_metric: str
    output_metric: str
    team_label: str
    model_label: str
    type_label: str | None = None

    @classmethod
    def of(cls, gateway: LlmGatewayConfig) -> TokenSource:
        if gateway.preset == "otel-genai":
            return cls(
                preset="otel-genai",
                input_metric=gateway.token_usage_metric,
                output_metric=gateway.token_usage_metric,
                team_label=gateway.team,
                model_label=OTEL_MODEL_LABEL,
                type_label=OTEL_TOKEN_TYPE_LABEL,
            )
        return cls(
            preset="litellm",
            input_metric=gateway.input_tokens_metric,
            output_metric=gateway.output_tokens_metric,
            team_label=gateway.team,
            model_label=LITELLM_MODEL_LABEL,
        )

    def selector(self, direction: TokenDirection, matchers: Sequence[str] = ()) -> str:
        """The series selector of one direction's token counter, with `matchers` more
        (such as one cluster's: docs/multi-cluster.md)."""
        metric = self.input_metric if direction == "input" else self.output_metric
        every = list(matchers)
        if self.type_label is not None:
            every.append(f"{self.type_label}={string_literal(direction)}")
        return metric + ("{" + ", ".join(every) + "}" if every else "")

    @property
    def described(self) -> str:
        """The token series, as messages name them."""
        if self.type_label is None:
            return f"{self.input_metric} / {self.output_metric}"
        return f'{self.input_metric}{{{self.type_label}=~"input|output"}}'


DEFAULT_SOURCE: Final = TokenSource.of(LlmGatewayConfig())


def token_series(
    source: TokenSource,
    direction: TokenDirection,
    function: str,
    window: str,
    *,
    matchers: Sequence[str] = (),
    replica_labels: Sequence[str] = (),
) -> str:
    """`function(counter[window])` of one direction, with `team` and `model` labels set.

    `function` is a counter function (`rate`, `increase`): both handle resets. The
    configured team label is copied to `team` and the model label to `model` (where
    they are named otherwise); a series without one keeps an empty `team`, which the
    callers read as `__untagged__`. `matchers` narrow the counter (one cluster); with
    `replica_labels`, the copies of an HA Prometheus pair read without deduplication
    count once (`max without` them, before anything is summed).
    """
    series = f"{function}({source.selector(direction, matchers)}[{window}])"
    series = without_replicas(series, replica_labels)
    if source.team_label != "team":
        series = (
            f'label_replace({series}, "team", "$1", {string_literal(source.team_label)}, "(.+)")'
        )
    if source.model_label != "model":
        series = (
            f'label_replace({series}, "model", "$1", {string_literal(source.model_label)}, "(.+)")'
        )
    return series
