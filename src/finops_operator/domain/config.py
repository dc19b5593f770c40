"""The operator's configuration: its schema, its defaults, and its errors.

Reading the file is `finops_operator.adapters.config_file`; this module validates
what was read.

The format is the contract in DESIGN.md ("Configuration file"). Every key is
optional. A bad file is refused with a message that names the bad key, so a
typo never silently falls back to a default. docs/configuration.md is generated
from the models below (scripts/gen_config_docs.py), so the descriptions here are
the reference users read.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Annotated, Any, Final, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    GetJsonSchemaHandler,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

from finops_operator.domain import conventions, names
from finops_operator.domain.conventions import COSTPOLICY_RULE_LABEL, MANAGED_BY_LABEL
from finops_operator.domain.money import MAX_MONEY
from finops_operator.domain.promql import LABEL_NAME_PATTERN, is_label_name
from finops_operator.domain.re2 import re2_problem
from finops_operator.errors import ConfigError


@dataclass(frozen=True)
class GpuUtilization:
    """The utilization series as the scrape stores them: metric, scale, pod labels, MIG.

    What `gpuMetrics` says (`GpuMetricsConfig.source`); `gpus/utilization.py` turns
    it into the one PromQL fragment every reader uses.
    """

    metric: str = conventions.METRIC_GPU_UTILIZATION
    scale: Decimal = Decimal(100)  # what `metric` reads at 100 % busy
    namespace_label: str = "exported_namespace"
    pod_label: str = "exported_pod"
    mig_metric: str | None = conventions.METRIC_MIG_ENGINE_ACTIVE
    mig_scale: Decimal = Decimal(1)


# The GPU Operator's defaults (what `gpuMetrics.preset: gpu-operator` gives).
GPU_OPERATOR: Final = GpuUtilization()
# A dcgm-exporter scraped with honorLabels: true (its own Helm chart's ServiceMonitor).
DCGM_EXPORTER: Final = GpuUtilization(namespace_label="namespace", pod_label="pod")


ANY_TEAM: Final = "*"  # in `costPolicies.allowedTeams`: every team


class Mode(StrEnum):
    """What label governance does: the cluster default, or a namespace's override."""

    ENFORCE = "enforce"  # deny non-compliant GPU workloads
    AUDIT = "audit"  # admit them with warnings, annotations and Events
    OFF = "off"  # do nothing

    @classmethod
    def parse(cls, value: Any) -> Mode | None:
        """The mode `value` names, or None when it names none (e.g. a namespace label typo)."""
        return cls(value) if isinstance(value, str) and value in cls._value2member_map_ else None


class ReportApi(StrEnum):
    """Which report API the background audit writes its results to, or none."""

    WGPOLICY = "wgpolicyk8s.io/v1alpha2"  # PolicyReport: Policy Reporter, Kyverno, Trivy
    OPENREPORTS = "openreports.io/v1alpha1"  # Report: the successor API
    OFF = "off"

    @property
    def group(self) -> str:
        return self.value.partition("/")[0]

    @property
    def version(self) -> str:
        return self.value.partition("/")[2]

    @property
    def plural(self) -> str:
        return "reports" if self is ReportApi.OPENREPORTS else "policyreports"

    @property
    def kind(self) -> str:
        return "Report" if self is ReportApi.OPENREPORTS else "PolicyReport"

    @property
    def resource(self) -> tuple[str, str, str]:
        return (self.group, self.version, self.plural)


# Passed as validation context when a file is read: the file has one spelling per key.
_FROM_FILE: Final = "from_file"


def _shown(value: Any) -> str:
    """A value for a message, cut short: a hostile file may hold a number of 10,000 digits."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10**40:
        return "a number of more than 40 digits"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _parse_money(value: Any) -> Decimal:
    if isinstance(value, float):
        raise ValueError(
            f"money must be written as a string, e.g. '{value}' in quotes, so that no "
            "precision is lost"
        )
    amount = Decimal("NaN")
    if isinstance(value, Decimal):
        amount = value
    elif isinstance(value, int) and not isinstance(value, bool):
        amount = Decimal(value)
    elif isinstance(value, str) and len(value) <= 100:
        with contextlib.suppress(InvalidOperation):
            amount = Decimal(value.strip())
    shown = _shown(value)
    if amount.is_nan():
        raise ValueError(f"{shown} is not an amount of money (write it like '2.50')")
    if not amount.is_finite() or not 0 <= amount <= MAX_MONEY:
        raise ValueError(f"{shown} must be a finite amount from 0 to {MAX_MONEY:f}")
    return amount


# The JSON Schema of an amount as the file may write it (the chart's values.schema.json
# is generated from these models): a decimal string or a whole number, never a float.
MONEY_PATTERN: Final = r"^\s*[+]?([0-9]+([.][0-9]*)?|[.][0-9]+)\s*$"
Money = Annotated[
    Decimal,
    BeforeValidator(_parse_money),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "pattern": MONEY_PATTERN},
                {"type": "integer", "minimum": 0},
            ],
            "description": 'An amount of money: a string such as "2.50" or a whole number.',
        }
    ),
]


def _parse_scale(value: Any) -> Decimal:
    shown = _shown(value)
    scale = Decimal("NaN")
    if isinstance(value, int | Decimal) and not isinstance(value, bool):
        scale = Decimal(value)
    elif isinstance(value, str) and len(value) <= 100:
        with contextlib.suppress(InvalidOperation):
            scale = Decimal(value.strip())
    if scale.is_nan():
        raise ValueError(f"{shown} is not a number such as 100 (percent) or 1 (ratio)")
    if not scale.is_finite() or not 0 < scale <= 10**6:
        raise ValueError(f"{shown} must be above 0: 100 for a percentage, 1 for a ratio")
    return scale


# A positive number (what a utilization metric reads at 100 % busy).
Scale = Annotated[
    Decimal,
    BeforeValidator(_parse_scale),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "pattern": MONEY_PATTERN},
                {"type": "integer", "exclusiveMinimum": 0},
            ]
        }
    ),
]

_METRIC_NAME: Final = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
DEFAULT_RULE_LABELS: Final[Mapping[str, str]] = {"release": "kube-prometheus-stack"}
# The labels the cost queries group and join by (cost_queries, serving_queries): a
# cluster label or a replica label of one of these names would merge what they tell
# apart (e.g. `max without (instance)` would drop all but one gateway replica's tokens).
QUERY_LABELS: Final = frozenset(
    {
        *conventions.METRIC_LABEL_FOR.values(),
        *("namespace", "pod", "node", "resource", "gpu_model", "model", "direction"),
        *("served_model", "owner_name", "job", "instance", "dra_claim_namespace", "dra_claim_name"),
    }
)
# What a ThanosRuler's `ruleSelector` matches: fleet policies' PrometheusRules.
DEFAULT_FLEET_RULE_LABELS: Final[Mapping[str, str]] = {
    f"{conventions.API_GROUP}/rule-evaluator": "thanos-ruler"
}


def _metric_name(name: str) -> str:
    if not re.fullmatch(_METRIC_NAME, name):
        raise ValueError(f"{_shown(name)} is not a Prometheus metric name")
    return name


def _label_name(name: str) -> str:
    if not is_label_name(name):
        raise ValueError(f"{_shown(name)} is not a Prometheus label name")
    return name


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _file_spelling(cls, data: Any, info: ValidationInfo) -> Any:
        # `key: null` (or a key with nothing after the colon) means "the default".
        if not isinstance(data, Mapping):
            return data
        if isinstance(info.context, Mapping) and info.context.get(_FROM_FILE):
            for name, field in cls.model_fields.items():
                if field.alias and field.alias != name and name in data:
                    raise ValueError(
                        f"unknown key {name!r}: in the file it is spelled {field.alias!r}"
                    )
        return {key: value for key, value in data.items() if value is not None}


class LabelRule(_Model):
    """What a cost label's value must look like: a pattern, a list of values, or both."""

    pattern: str | None = Field(
        default=None,
        description="Regular expression (Python syntax) the whole value must match.",
    )
    values: tuple[str, ...] | None = Field(
        default=None,
        description="The only values allowed. With `pattern` too, a value must satisfy both.",
    )

    @field_validator("pattern")
    @classmethod
    def _pattern_compiles(cls, pattern: str | None) -> str | None:
        if pattern is not None:
            try:
                re.compile(pattern)
            except re.error as err:
                raise ValueError(f"invalid regular expression {pattern!r}: {err}") from None
        return pattern

    @field_validator("values")
    @classmethod
    def _values_not_empty(cls, values: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if values is not None and not values:
            raise ValueError("an empty list of values admits nothing; leave 'values' out instead")
        return values

    def accepts(self, value: str) -> bool:
        if self.values is not None and value not in self.values:
            return False
        return self.pattern is None or re.fullmatch(self.pattern, value) is not None

    def describe(self) -> str:
        """The rule in words, for messages: 'must be one of a, b' or 'must match ^x$'."""
        parts = []
        if self.values is not None:
            parts.append("must be one of " + ", ".join(self.values))
        if self.pattern is not None:
            parts.append(f"must match {self.pattern}")
        return " and ".join(parts) or "must not be empty"


DEFAULT_LABEL_RULES: Final[Mapping[str, LabelRule]] = {
    conventions.TEAM_LABEL: LabelRule(pattern=names.DNS_LABEL),
    conventions.FEATURE_LABEL: LabelRule(pattern=names.DNS_LABEL),
    conventions.ENVIRONMENT_LABEL: LabelRule(values=("production", "staging", "development")),
    conventions.WORKLOAD_TYPE_LABEL: LabelRule(
        values=("training", "inference", "batch", "notebook")
    ),
    conventions.COST_CENTER_LABEL: LabelRule(pattern=r"^cc-[0-9]+$"),
}
DEFAULT_GPU_HOURLY: Final = Decimal("2.00")
DEFAULT_TOKENS_PER_1K: Final = Decimal("0.002")


class PrometheusConfig(_Model):
    """Where the operator reads metrics: Prometheus, Thanos Query, Mimir or Cortex."""

    url: str = Field(
        default="http://prometheus-operated.monitoring.svc:9090",
        description="Base URL of the PromQL API; may carry a path prefix, e.g. "
        "`https://mimir.example/prometheus`. A trailing `/` is dropped.",
    )
    headers: dict[str, str] = Field(
        default_factory=dict,
        description="Extra HTTP headers sent with every query, e.g. `X-Scope-OrgID` for Mimir.",
    )
    bearer_token_file: str | None = Field(
        default=None,
        alias="bearerTokenFile",
        description="File holding a bearer token sent in the `Authorization` header.",
    )
    ca_file: str | None = Field(
        default=None,
        alias="caFile",
        description="PEM bundle of the CAs that sign the server's certificate.",
    )
    rules_check_seconds: int = Field(
        default=60,
        alias="rulesCheckSeconds",
        ge=1,
        le=3600,
        description="Seconds between two checks that Prometheus evaluates the shared "
        "recording rules (their heartbeat series), shown as each CostPolicy's "
        "`RulesEvaluating` condition.",
    )

    @field_validator("url")
    @classmethod
    def _url_is_http(cls, url: str) -> str:
        if not re.match(r"^https?://[^/\s]+", url):
            raise ValueError(f"{url!r} is not an http:// or https:// URL")
        return url.rstrip("/")


def _with_default(prices: Any, default: Any) -> Any:
    if isinstance(prices, Mapping) and "default" not in prices:
        return {"default": default, **prices}
    return prices


TokenDirection = Literal["input", "output"]
TOKEN_DIRECTIONS: Final[tuple[TokenDirection, ...]] = ("input", "output")


class TokenPrice(_Model):
    """A model's price per 1,000 tokens, separately for input (prompt) and output tokens.

    In the file either `{input: "0.0025", output: "0.01"}` or one amount, which
    prices both directions alike (the form earlier releases read).
    """

    input: Money = Field(description="Price of 1,000 input (prompt) tokens.")
    output: Money = Field(description="Price of 1,000 output (completion) tokens.")

    @model_validator(mode="before")
    @classmethod
    def _one_amount_is_both(cls, data: Any) -> Any:
        if isinstance(data, Mapping) or data is None:
            return data
        return {"input": data, "output": data}

    @classmethod
    def __get_pydantic_json_schema__(
        cls, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        # One amount is a price too (see _one_amount_is_both).
        money = TypeAdapter(Money).json_schema()
        return {"anyOf": [{"anyOf": money["anyOf"]}, handler(core_schema)]}

    def of(self, direction: TokenDirection) -> Decimal:
        return self.input if direction == "input" else self.output


class PricingConfig(_Model):
    """Prices, in one currency; amounts are strings such as `"2.50"`, from 0 to 1e12."""

    currency: Annotated[str, AfterValidator(names.currency_code)] = Field(
        default="USD", description="ISO 4217 code of every amount."
    )
    gpu_hourly: dict[str, Money] = Field(
        default_factory=lambda: {"default": DEFAULT_GPU_HOURLY},
        alias="gpuHourly",
        description="Price of one GPU for one hour, by GPU model (the node's "
        "`nvidia.com/gpu.product` label). `default` prices every model not listed; when "
        "left out it stays 2.00.",
    )
    tokens_per_1k: dict[str, TokenPrice] = Field(
        default_factory=lambda: {
            "default": TokenPrice(input=DEFAULT_TOKENS_PER_1K, output=DEFAULT_TOKENS_PER_1K)
        },
        alias="tokensPer1k",
        description="Price of 1,000 LLM tokens, by model name as the gateway reports it "
        "(LiteLLM's `model` label): one amount for both directions (`gpt-4o-mini: "
        '"0.0006"`) or `{input: "0.0025", output: "0.01"}`. `default` prices every '
        "model not listed; when left out it stays 0.002 both ways. Used when "
        "`llmGateway.costSource` is `token_prices`; exported as "
        "`finops_token_price_per_1k{model,direction}` for dashboards.",
    )
    shared_monthly: Money = Field(
        default=Decimal("0"),
        alias="sharedMonthly",
        description="Monthly platform cost (cluster overhead, observability) spread over teams.",
    )
    shared_split: Literal["proportional", "even"] = Field(
        default="proportional",
        alias="sharedSplit",
        description="How shared cost is spread: in proportion to each team's GPU cost, or evenly.",
    )
    shared_proration: Literal["period", "data"] = Field(
        default="period",
        alias="sharedProration",
        description="What the monthly platform cost is prorated to: the whole period "
        "(`period`: a calendar month costs the whole fee, even when its data starts "
        "mid-month) or the data's window (`data`: from the first day with figures, so the "
        "month the operator was installed pays only for the days measured).",
    )

    @field_validator("gpu_hourly", mode="before")
    @classmethod
    def _gpu_default(cls, prices: Any) -> Any:
        return _with_default(prices, DEFAULT_GPU_HOURLY)

    @field_validator("tokens_per_1k", mode="before")
    @classmethod
    def _tokens_default(cls, prices: Any) -> Any:
        return _with_default(prices, DEFAULT_TOKENS_PER_1K)

    def as_file(self) -> dict[str, Any]:
        """This pricing as the configuration file writes it (money as strings)."""
        written: dict[str, Any] = self.model_dump(by_alias=True, mode="json")
        return written

    def gpu_price(self, gpu_model: str) -> Decimal:
        return self.gpu_hourly.get(gpu_model, self.gpu_hourly["default"])

    def token_price(self, model: str, direction: TokenDirection = "input") -> Decimal:
        """Price of 1,000 tokens of `model` in `direction` (`default` for unlisted models)."""
        return self.tokens_per_1k.get(model, self.tokens_per_1k["default"]).of(direction)


class ReportsConfig(_Model):
    """How the operator keeps CostReports up to date."""

    interval_seconds: int = Field(
        default=600,
        alias="intervalSeconds",
        ge=5,
        description="Seconds between two refreshes of the current and previous month's "
        "CostReports. After a failed read of Prometheus the operator retries sooner, "
        "backing off from 5 seconds up to this interval.",
    )


class AdmissionPoliciesConfig(_Model):
    """Admission policies the API server evaluates itself (docs/admission.md)."""

    enabled: bool = Field(
        default=False,
        description="The operator (the leader) keeps a ValidatingAdmissionPolicy pair and its "
        "bindings, generated from `labels`, `gpuResources`, `exemptNamespaces` and `mode`, in "
        "step with this configuration: label governance that holds while the operator is down. "
        "Needs Kubernetes 1.30 or newer. With the webhooks installed too, both decide alike. "
        "When false, policies the operator wrote earlier are deleted.",
    )
    mutating: bool = Field(
        default=True,
        description="With `enabled`, also a MutatingAdmissionPolicy that fills missing cost "
        "labels from the namespace's labels, when the API server serves "
        "`mutatingadmissionpolicies` (v1, or v1beta1 from 1.34 with the feature gate "
        "`MutatingAdmissionPolicy`); skipped with a log line otherwise.",
    )


# Groups every user (or every ServiceAccount) belongs to: allowing one lets anyone exempt.
EVERYONE_GROUPS: Final = frozenset(
    {"system:authenticated", "system:unauthenticated", "system:serviceaccounts"}
)
SERVICE_ACCOUNT_PREFIX: Final = "system:serviceaccount:"
DEFAULT_EXEMPTION_GROUPS: Final = ("system:masters",)


class CostPoliciesConfig(_Model):
    """Which teams the CostPolicies of a namespace may act on (docs/costpolicy.md, lanes)."""

    allowed_teams: dict[str, tuple[str, ...]] = Field(
        default_factory=dict,
        alias="allowedTeams",
        description="Namespace -> the teams its CostPolicies may select besides the "
        f"namespace's own (its `{conventions.TEAM_LABEL}` label); `'*'` allows every team "
        "and a policy without `selector.team`. A policy outside its lane is `Ready=False`, "
        "reason `OutOfLane`, and renders no rule. The operator's own namespace (a cluster "
        "admin's, `finops-system` by default) may always act on every team.",
    )

    @field_validator("allowed_teams")
    @classmethod
    def _allowed(cls, allowed: dict[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
        for namespace, teams in allowed.items():
            if not names.is_dns_label(namespace):
                raise ValueError(f"{_shown(namespace)} is not a namespace name")
            for team in teams:
                if team != ANY_TEAM and not names.is_label_value(team):
                    raise ValueError(f"{_shown(team)} is neither a team (label value) nor '*'")
        return allowed


class ExemptionsConfig(_Model):
    """Who may exempt a GPU workload with `finops.resilio.tech/exempt` (docs/admission.md)."""

    allowed_groups: tuple[str, ...] = Field(
        default=DEFAULT_EXEMPTION_GROUPS,
        alias="allowedGroups",
        description="Groups (`request.userInfo.groups`) whose members may exempt a workload. "
        "An exempt annotation added or changed by anyone else is not honoured: the object "
        "is judged as if it had none (denied in `enforce`, warned in `audit`). Replaces the "
        "default; `system:authenticated`, `system:unauthenticated` and "
        "`system:serviceaccounts` are refused (they would let anyone exempt).",
    )
    allowed_users: tuple[str, ...] = Field(
        default=(),
        alias="allowedUsers",
        description="User names (`request.userInfo.username`) that may exempt a workload, "
        "e.g. `alice@example.com` or a ServiceAccount as "
        "`system:serviceaccount:<namespace>:<name>` (a GitOps controller).",
    )

    @field_validator("allowed_groups")
    @classmethod
    def _groups(cls, groups: tuple[str, ...]) -> tuple[str, ...]:
        for group in groups:
            _user_or_group_problem(group, "group")
            if group in EVERYONE_GROUPS:
                raise ValueError(f"{group!r} would let anyone exempt; list the groups that may")
        return groups

    @field_validator("allowed_users")
    @classmethod
    def _users(cls, users: tuple[str, ...]) -> tuple[str, ...]:
        for user in users:
            _user_or_group_problem(user, "user name")
            if user.startswith(SERVICE_ACCOUNT_PREFIX):
                namespace, colon, name = user.removeprefix(SERVICE_ACCOUNT_PREFIX).partition(":")
                if not (colon and names.is_dns_label(namespace) and names.is_dns_subdomain(name)):
                    raise ValueError(
                        f"{_shown(user)} is not a ServiceAccount user name: write "
                        "system:serviceaccount:<namespace>:<name>"
                    )
        return users

    def allows(self, username: str, groups: tuple[str, ...]) -> bool:
        """True when the user may exempt: named in `allowedUsers` or in an allowed group."""
        return username in self.allowed_users or any(g in self.allowed_groups for g in groups)

    @property
    def who_may(self) -> str:
        """The allowed users and groups in words, naming the configuration keys."""
        return (
            f"exemptions.allowedGroups [{', '.join(self.allowed_groups)}] and "
            f"exemptions.allowedUsers [{', '.join(self.allowed_users)}]"
        )


def _user_or_group_problem(value: str, what: str) -> None:
    if not value or value != value.strip() or any(c.isspace() or ord(c) < 32 for c in value):
        raise ValueError(f"{_shown(value)} is not a {what}")


class PolicyReportsConfig(_Model):
    """Where the background audit publishes its results, one report per namespace."""

    api: ReportApi = Field(
        default=ReportApi.WGPOLICY,
        description="`wgpolicyk8s.io/v1alpha2` writes a `PolicyReport` per namespace (read by "
        "Policy Reporter, Kyverno and Trivy Operator), `openreports.io/v1alpha1` a `Report` "
        "(the OpenReports successor API), `off` writes none. The CRD of the chosen API must "
        "be installed; until it is, the operator logs it once, sets the metric "
        "`finops_policy_reports_available` to 0 and tries again every 30 seconds.",
    )
    debounce_seconds: float = Field(
        default=2.0,
        alias="debounceSeconds",
        ge=0.1,
        le=60,
        description="A namespace's report is written once its results have not changed for "
        "this long (at the latest 15 times this long after the first change), so a burst "
        "of thousands of workloads makes one write per namespace.",
    )


class MetricsConfig(_Model):
    """The operator's own `/metrics` (port 8080): who may read it, and how much it tells."""

    secure: bool = Field(
        default=False,
        description="Serve `/metrics` over HTTPS (the webhook's serving certificate) and only "
        "to a bearer token the API server accepts (TokenReview) whose user may `get` the "
        "URL `/metrics` (SubjectAccessReview), as kube-rbac-proxy does; 401, 403, or 503 "
        "while the API server cannot answer. `/healthz` and `/readyz` stay open (the "
        "probes then use HTTPS). Needs `create` on `tokenreviews` and "
        '`subjectaccessreviews` (granted by the manifests). docs/install.md, "Scraping a '
        'secure /metrics".',
    )
    pod_series: bool = Field(
        default=True,
        alias="podSeries",
        description="One `finops_pod_gpu_allocation` series per GPU pod, with its name. "
        "`false`: summed over the pods of each namespace, node, GPU model and cost labels "
        "(no `pod` label): team and feature costs, budgets and reports stay, but the "
        "per-pod alerts of CostPolicies (idle GPUs, restart loops) cannot fire and pod "
        "names are not published.",
    )


class GpuMetricsConfig(_Model):
    """Where GPU utilization is read: the idle alert, idle cost, dashboards and reports."""

    preset: Literal["gpu-operator", "dcgm-exporter"] = Field(
        default="gpu-operator",
        description="`gpu-operator`: dcgm-exporter as the NVIDIA GPU Operator deploys it; "
        "its ServiceMonitor has `honorLabels: false`, so the pod's labels arrive as "
        "`exported_namespace` and `exported_pod`. `dcgm-exporter`: its own Helm chart "
        "(`honorLabels: true`), labels `namespace` and `pod`. The keys below override "
        "the preset one by one.",
    )
    utilization_metric: str | None = Field(
        default=None,
        alias="utilizationMetric",
        description="Device utilization series; the preset gives `DCGM_FI_DEV_GPU_UTIL`.",
    )
    utilization_scale: Scale | None = Field(
        default=None,
        alias="utilizationScale",
        description="What `utilizationMetric` reads when the GPU is fully busy: 100 for "
        "a percentage (the preset, for `DCGM_FI_DEV_GPU_UTIL`), 1 for a ratio.",
    )
    namespace_label: str | None = Field(
        default=None,
        alias="namespaceLabel",
        description="Label holding the GPU pod's namespace on utilization series "
        "(`exported_namespace` or `namespace` by preset).",
    )
    pod_label: str | None = Field(
        default=None,
        alias="podLabel",
        description="Label holding the GPU pod's name (`exported_pod` or `pod` by preset).",
    )
    mig_utilization_metric: str | None = Field(
        default=None,
        alias="migUtilizationMetric",
        description=f"Read instead for pods on MIG slices (series with a `GPU_I_ID`), "
        f"where `DCGM_FI_DEV_GPU_UTIL` reads 0 or is missing; default "
        f'`{conventions.METRIC_MIG_ENGINE_ACTIVE}` (a ratio, scale 1). `""` turns it off.',
    )
    mig_utilization_scale: Scale | None = Field(
        default=None,
        alias="migUtilizationScale",
        description="What `migUtilizationMetric` reads when fully busy; default 1.",
    )

    @field_validator("utilization_metric", "mig_utilization_metric")
    @classmethod
    def _metric_name(cls, name: str | None, info: ValidationInfo) -> str | None:
        allow_empty = info.field_name == "mig_utilization_metric"
        if name is None or (allow_empty and name == ""):
            return name
        return _metric_name(name)

    @field_validator("namespace_label", "pod_label")
    @classmethod
    def _label_name(cls, name: str | None) -> str | None:
        return None if name is None else _label_name(name)

    def source(self) -> GpuUtilization:
        """The preset with the explicit keys laid over it."""
        base = GPU_OPERATOR if self.preset == "gpu-operator" else DCGM_EXPORTER
        return GpuUtilization(
            metric=self.utilization_metric or base.metric,
            scale=self.utilization_scale if self.utilization_scale is not None else base.scale,
            namespace_label=self.namespace_label or base.namespace_label,
            pod_label=self.pod_label or base.pod_label,
            mig_metric=(
                base.mig_metric
                if self.mig_utilization_metric is None
                else self.mig_utilization_metric or None
            ),
            mig_scale=(
                self.mig_utilization_scale
                if self.mig_utilization_scale is not None
                else base.mig_scale
            ),
        )


TokenPreset = Literal["litellm", "otel-genai"]
# The team label of each preset when `llmGateway.teamLabel` is not set.
DEFAULT_TEAM_LABEL: Final[Mapping[str, str]] = {"litellm": "team_alias", "otel-genai": "team"}
LITELLM_TEAM_LABELS: Final = ("team_alias", "team")


class LlmGatewayConfig(_Model):
    """How token spend is read from the LLM gateway: LiteLLM's Prometheus metrics, or the
    OpenTelemetry GenAI metric `gen_ai.client.token.usage` any instrumented gateway or
    client reports (Envoy AI Gateway, agentgateway, OpenTelemetry SDKs)."""

    preset: TokenPreset = Field(
        default="litellm",
        description="Where tokens come from. `litellm`: LiteLLM's input and output token "
        "counters, the model in `model`. `otel-genai`: the OpenTelemetry GenAI histogram "
        "`gen_ai.client.token.usage` as Prometheus stores it (`tokenUsageMetric`, its "
        "`_sum` series), input and output told apart by `gen_ai_token_type`, the model in "
        '`gen_ai_request_model` (docs/cost-model.md, "Token sources").',
    )
    team_label: str | None = Field(
        default=None,
        alias="teamLabel",
        validate_default=True,
        description="Label that names the team. With `litellm`: `team_alias` (the "
        "default; the team's name) or `team` (the team_id, a UUID unless you set one); "
        "with `team_alias`, requests of a team without an alias count under its team_id. "
        "With `otel-genai`: any label name, `team` by default: the metric attribute (or "
        "promoted resource attribute) your gateway sets from the caller, e.g. a request "
        "header.",
    )
    cost_source: Literal["token_prices", "spend_metric"] = Field(
        default="token_prices",
        alias="costSource",
        description="`token_prices`: input and output tokens x `pricing.tokensPer1k`. "
        "`spend_metric`: LiteLLM's own `litellm_spend_metric`, priced by LiteLLM from its "
        "model cost map in USD, so it needs `pricing.currency: USD`.",
    )
    input_tokens_metric: str = Field(
        default="litellm_input_tokens_metric_total",
        alias="inputTokensMetric",
        description="Counter of input tokens (LiteLLM's `litellm_input_tokens_metric`).",
    )
    output_tokens_metric: str = Field(
        default="litellm_output_tokens_metric_total",
        alias="outputTokensMetric",
        description="Counter of output tokens (LiteLLM's `litellm_output_tokens_metric`).",
    )
    spend_metric: str = Field(
        default="litellm_spend_metric_total",
        alias="spendMetric",
        description="Counter of spend (LiteLLM's `litellm_spend_metric`).",
    )
    token_usage_metric: str = Field(
        default="gen_ai_client_token_usage_sum",
        alias="tokenUsageMetric",
        description="With `otel-genai`: the `_sum` series of `gen_ai.client.token.usage` "
        "(a cumulative histogram of tokens per request). Prometheus' OTLP receiver with "
        "the default `translation_strategy` (`UnderscoreEscapingWithSuffixes`) and the "
        "OpenTelemetry Prometheus exporters drop the unit `{token}` and write "
        "`gen_ai_client_token_usage_sum`; agentgateway prefixes its metrics "
        "(`agentgateway_gen_ai_client_token_usage_sum`).",
    )

    @field_validator(
        "input_tokens_metric", "output_tokens_metric", "spend_metric", "token_usage_metric"
    )
    @classmethod
    def _metric_name(cls, name: str) -> str:
        return _metric_name(name)

    @field_validator("team_label")
    @classmethod
    def _team_label(cls, label: str | None, info: ValidationInfo) -> str:
        preset = info.data.get("preset", "litellm")
        if label is None:
            return DEFAULT_TEAM_LABEL[preset]
        if preset == "litellm" and label not in LITELLM_TEAM_LABELS:
            raise ValueError(
                f"{_shown(label)} is not a LiteLLM team label; with preset litellm use "
                + " or ".join(LITELLM_TEAM_LABELS)
            )
        return _label_name(label)

    @model_validator(mode="after")
    def _spend_metric_is_litellm(self) -> LlmGatewayConfig:
        if self.preset != "litellm" and self.cost_source == "spend_metric":
            raise ValueError(
                "costSource: spend_metric is LiteLLM's own spend; the otel-genai preset "
                "reports tokens only, so use token_prices"
            )
        return self

    @property
    def team(self) -> str:
        """The team label, the preset's default resolved."""
        return self.team_label or DEFAULT_TEAM_LABEL[self.preset]

    def tokens_metric(self, direction: TokenDirection) -> str:
        return self.input_tokens_metric if direction == "input" else self.output_tokens_metric


class SelfHostedModelsConfig(_Model):
    """Models served on the cluster's own GPUs (vLLM): their cost per million tokens."""

    enabled: bool = Field(
        default=True,
        description="Read vLLM's token counters and the GPU cost of the pods that serve "
        "each model: `report` shows `selfHostedModels` (two more queries per period).",
    )
    prompt_tokens_metric: str = Field(
        default="vllm:prompt_tokens_total",
        alias="promptTokensMetric",
        description="Counter of prompt tokens per served model (vLLM's "
        "`vllm:prompt_tokens_total`), with the serving pod's `namespace` and `pod` "
        "target labels.",
    )
    generation_tokens_metric: str = Field(
        default="vllm:generation_tokens_total",
        alias="generationTokensMetric",
        description="Counter of generated tokens per served model (vLLM's "
        "`vllm:generation_tokens_total`).",
    )
    model_label: str = Field(
        default="model_name",
        alias="modelLabel",
        description="Label of the served model's name (vLLM's `model_name`, the "
        "`--served-model-name`).",
    )
    comparable: dict[str, str] = Field(
        default_factory=dict,
        description="Self-hosted model -> the API model it stands in for, priced by "
        "`pricing.tokensPer1k` (its input price for prompt tokens, output price for "
        "generated ones): the report shows what the same tokens would have cost there. "
        'E.g. `{"llama-3.1-70b": "gpt-4o-mini"}`.',
    )
    charge_consumers: bool = Field(
        default=False,
        alias="chargeConsumers",
        description="Charge the teams whose gateway tokens went to a self-hosted model "
        "(the gateway's model name equals the served model's name) at its cost per "
        "token instead of an API price: that part of the serving pods' GPU hours moves "
        "from the serving team to those teams, so nothing is counted twice "
        '(docs/cost-model.md, "Self-hosted models").',
    )

    @field_validator("prompt_tokens_metric", "generation_tokens_metric")
    @classmethod
    def _metric_name(cls, name: str) -> str:
        return _metric_name(name)

    @field_validator("model_label")
    @classmethod
    def _label_name(cls, name: str) -> str:
        return _label_name(name)


def _rule_labels(labels: dict[str, str]) -> dict[str, str]:
    """`labels` when they can go on a PrometheusRule the operator writes; else ValueError."""
    for key, value in labels.items():
        problem = names.label_key_problem(key)
        if problem is not None:
            raise ValueError(problem)
        if key in (MANAGED_BY_LABEL, COSTPOLICY_RULE_LABEL):
            raise ValueError(f"{key!r} is set by the operator itself")
        if not names.is_label_value(value):
            raise ValueError(f"{_shown(value)} (for {key!r}) is not a Kubernetes label value")
    return labels


class ClusterConfig(_Model):
    """Which cluster this operator is, and how series name their cluster (docs/multi-cluster.md)."""

    name: str | None = Field(
        default=None,
        description="This cluster's name: the value of the `label` external label its "
        "Prometheus sets. When given, the operator reads and alerts on this cluster's "
        "series only (those with `<label>=<name>`, and those without the label, as its own "
        "Prometheus shows them), so it can read a shared Thanos Query or Mimir. Unlabelled "
        "series are read as this cluster's (a read holding both adds them up). `null`: one "
        "cluster, nothing filtered.",
    )
    label: str = Field(
        default="cluster",
        pattern=rf"^{LABEL_NAME_PATTERN}$",
        description="The Prometheus label that names a series' cluster (the external label "
        "kube-prometheus-stack sets as `prometheus.prometheusSpec.externalLabels`). Every "
        "query and rule keeps it in its `by (...)`, so series of two clusters never merge.",
    )
    replica_labels: tuple[str, ...] = Field(
        default=("prometheus_replica", "replica"),
        alias="replicaLabels",
        description="Labels that tell the replicas of an HA Prometheus pair apart, when they "
        "are read without deduplication (Thanos Query without `--query.replica-label`, or "
        "Mimir without HA dedup). Summed figures (tokens) take the maximum over these "
        "labels first, so a pair never counts twice; `[]` when no replica label exists. "
        "Neither these nor `label` may be the cluster label or a label the queries group "
        "by (`namespace`, `pod`, `instance`, ...): they would merge what those tell apart.",
    )

    fleet_rule_labels: dict[str, str] = Field(
        default_factory=lambda: dict(DEFAULT_FLEET_RULE_LABELS),
        alias="fleetRuleLabels",
        description="Labels put, instead of `ruleLabels`, on the PrometheusRule of a "
        "CostPolicy with `clusters: all` (spend over every cluster), so that Thanos Ruler "
        "(the Prometheus Operator's `ThanosRuler`, `ruleSelector`) loads it and the "
        "cluster's own Prometheus does not.",
    )

    @field_validator("fleet_rule_labels")
    @classmethod
    def _fleet_rule_labels_are_labels(cls, labels: dict[str, str]) -> dict[str, str]:
        return _rule_labels(labels)

    @field_validator("name")
    @classmethod
    def _name_is_a_label_value(cls, name: str | None) -> str | None:
        if name is not None and not (0 < len(name) <= 63 and names.is_label_value(name)):
            raise ValueError(f"{_shown(name)} is not a cluster name (a Kubernetes label value)")
        return name

    @field_validator("label")
    @classmethod
    def _label_is_its_own(cls, label: str) -> str:
        return _not_a_query_label(label)

    @field_validator("replica_labels")
    @classmethod
    def _replica_labels_are_label_names(cls, labels: tuple[str, ...]) -> tuple[str, ...]:
        for label in labels:
            _not_a_query_label(_label_name(label))
        return labels

    @model_validator(mode="after")
    def _cluster_is_not_a_replica(self) -> ClusterConfig:
        if self.label in self.replica_labels:
            raise ValueError(
                f"{_shown(self.label)} is both the cluster label and a replica label "
                "(`max without` it would merge every cluster)"
            )
        return self


def _not_a_query_label(label: str) -> str:
    if label in QUERY_LABELS:
        raise ValueError(
            f"{_shown(label)} is a label the cost queries group by "
            f"({', '.join(sorted(QUERY_LABELS))}); name another"
        )
    return label


class Config(_Model):
    """The whole configuration; `Config()` is the embedded default."""

    mode: Mode = Field(
        default=Mode.ENFORCE,
        description="Cluster default for label governance: `enforce` denies non-compliant "
        "GPU workloads, `audit` admits them with warnings, annotations and Events, `off` "
        "does nothing. A namespace may override it with the label "
        f"`{conventions.MODE_NAMESPACE_LABEL}`.",
    )
    exempt_namespaces: tuple[str, ...] = Field(
        default=conventions.DEFAULT_EXEMPT_NAMESPACES,
        alias="exemptNamespaces",
        description="Namespaces whose workloads are never checked (still counted). "
        "Replaces the default list; `[]` exempts none.",
    )
    labels: dict[str, LabelRule] = Field(
        default_factory=lambda: dict(DEFAULT_LABEL_RULES),
        description="Cost label key -> its rule. Merged over the five default rules: a key "
        "given replaces that key's default rule, a new key adds a required label, and "
        "`key: null` drops a default. Every key listed is required on GPU workloads.",
    )
    gpu_resources: tuple[str, ...] = Field(
        default=conventions.DEFAULT_GPU_RESOURCES,
        alias="gpuResources",
        description="Extended resource names that are GPUs; `*` and `?` are wildcards "
        "(`nvidia.com/mig-*`). Replaces the default list.",
    )
    gpu_dra_drivers: tuple[str, ...] = Field(
        default=conventions.DEFAULT_DRA_DRIVERS,
        alias="gpuDraDrivers",
        description="Dynamic Resource Allocation drivers whose devices are GPUs: a pod's "
        "ResourceClaims count as GPUs only for devices of these drivers (a NIC or FPGA "
        "claim does not). Replaces the default list; `[]` counts no DRA device.",
    )
    prometheus: PrometheusConfig = Field(
        default_factory=PrometheusConfig, description="See `prometheus.*` below."
    )
    pricing: PricingConfig = Field(
        default_factory=PricingConfig, description="See `pricing.*` below."
    )
    reports: ReportsConfig = Field(
        default_factory=ReportsConfig, description="See `reports.*` below."
    )
    admission_policies: AdmissionPoliciesConfig = Field(
        default_factory=AdmissionPoliciesConfig,
        alias="admissionPolicies",
        description="See `admissionPolicies.*` below.",
    )
    exemptions: ExemptionsConfig = Field(
        default_factory=ExemptionsConfig, description="See `exemptions.*` below."
    )
    cost_policies: CostPoliciesConfig = Field(
        default_factory=CostPoliciesConfig,
        alias="costPolicies",
        description="See `costPolicies.*` below.",
    )
    policy_reports: PolicyReportsConfig = Field(
        default_factory=PolicyReportsConfig,
        alias="policyReports",
        description="See `policyReports.*` below.",
    )
    rule_labels: dict[str, str] = Field(
        default_factory=lambda: dict(DEFAULT_RULE_LABELS),
        alias="ruleLabels",
        description="Labels put on every PrometheusRule the operator writes (the shared "
        "recording rules and each CostPolicy's rules), so that the Prometheus "
        "`ruleSelector` loads them: kube-prometheus-stack's default selects "
        "`release: <its release name>`. Replaces the default; a policy's "
        "`alerting.ruleLabels` are added over these for its own rules.",
    )
    gpu_metrics: GpuMetricsConfig = Field(
        default_factory=GpuMetricsConfig,
        alias="gpuMetrics",
        description="See `gpuMetrics.*` below.",
    )
    llm_gateway: LlmGatewayConfig = Field(
        default_factory=LlmGatewayConfig,
        alias="llmGateway",
        description="See `llmGateway.*` below.",
    )
    metrics: MetricsConfig = Field(
        default_factory=MetricsConfig, description="See `metrics.*` below."
    )
    self_hosted_models: SelfHostedModelsConfig = Field(
        default_factory=SelfHostedModelsConfig,
        alias="selfHostedModels",
        description="See `selfHostedModels.*` below.",
    )
    cluster: ClusterConfig = Field(
        default_factory=ClusterConfig, description="See `cluster.*` below."
    )

    @model_validator(mode="after")
    def _spend_metric_is_usd(self) -> Config:
        if self.llm_gateway.cost_source == "spend_metric" and self.pricing.currency != "USD":
            raise ValueError(
                "llmGateway.costSource: spend_metric is LiteLLM's spend in USD, but "
                f"pricing.currency is {self.pricing.currency}; use token_prices"
            )
        return self

    @field_validator("rule_labels")
    @classmethod
    def _rule_labels_are_labels(cls, labels: dict[str, str]) -> dict[str, str]:
        return _rule_labels(labels)

    @field_validator("labels", mode="before")
    @classmethod
    def _merge_over_defaults(cls, labels: Any) -> Any:
        if not isinstance(labels, Mapping):
            return labels
        merged: dict[Any, Any] = dict(DEFAULT_LABEL_RULES)
        for key, rule in labels.items():
            if rule is None:
                merged.pop(key, None)
            else:
                merged[key] = rule
        return merged

    @field_validator("labels")
    @classmethod
    def _label_keys_are_valid(cls, labels: dict[str, LabelRule]) -> dict[str, LabelRule]:
        for key in labels:
            problem = names.label_key_problem(key)
            if problem is not None:
                raise ValueError(problem)
        return labels

    @field_validator("exempt_namespaces")
    @classmethod
    def _namespaces_are_names(cls, namespaces: tuple[str, ...]) -> tuple[str, ...]:
        for namespace in namespaces:
            if not names.is_dns_label(namespace):
                raise ValueError(f"{namespace!r} is not a namespace name")
        return namespaces

    @field_validator("gpu_dra_drivers")
    @classmethod
    def _dra_drivers_are_names(cls, drivers: tuple[str, ...]) -> tuple[str, ...]:
        for driver in drivers:
            if not names.is_dns_subdomain(driver):
                raise ValueError(f"{_shown(driver)} is not a DRA driver name, e.g. gpu.nvidia.com")
        return drivers

    @field_validator("gpu_resources")
    @classmethod
    def _gpu_resources_are_names(cls, resources: tuple[str, ...]) -> tuple[str, ...]:
        if not resources:
            raise ValueError("at least one GPU resource name is needed, e.g. nvidia.com/gpu")
        for resource in resources:
            if not resource.strip() or any(c.isspace() for c in resource):
                raise ValueError(f"{resource!r} is not a resource name, e.g. nvidia.com/gpu")
        return resources


def _location(loc: tuple[int | str, ...]) -> str:
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        elif "." in part or "/" in part:
            text += f"[{part!r}]"
        else:
            text += f".{part}" if text else part
    return text or "(top level)"


def explain(err: ValidationError) -> str:
    """One line per problem, each naming the key in the file's own spelling."""
    lines = []
    for problem in err.errors():
        msg = problem["msg"].removeprefix("Value error, ")
        if problem["type"] == "extra_forbidden":
            msg = "unknown key (check its spelling against docs/configuration.md)"
        lines.append(f"{_location(tuple(problem['loc']))}: {msg}")
    return "\n".join(lines)


def parse_config(data: Any, source: str = "configuration") -> Config:
    """Validate the parsed YAML of a configuration file; ConfigError names each bad key."""
    if data is None:
        return Config()
    if not isinstance(data, Mapping):
        raise ConfigError(
            f"{source}: the top level must be a mapping of keys, not {type(data).__name__}"
        )
    try:
        config = Config.model_validate(data, context={_FROM_FILE: True})
    except ValidationError as err:
        raise ConfigError(f"{source}: invalid configuration:\n{explain(err)}") from None
    if config.admission_policies.enabled:
        problems = [
            f"labels[{key!r}].pattern: {rule.pattern!r} uses {why}; admission policies run "
            "CEL's RE2 matches(): rewrite the pattern or set admissionPolicies.enabled: false"
            for key, rule in config.labels.items()
            if rule.pattern is not None and (why := re2_problem(rule.pattern)) is not None
        ]
        if problems:
            raise ConfigError(f"{source}: invalid configuration:\n" + "\n".join(problems))
    return config


def safe_default() -> Config:
    """What the operator serves when it starts with an invalid configuration and no good one.

    The built-in defaults in `audit` mode: the label rules in force may not be the
    built-in ones, so refusing on them could refuse every GPU workload of the cluster
    (the webhook's `failurePolicy: Fail` already refuses all while the operator is
    down). In audit nothing is refused for the defaults' sake; everything is still
    warned, annotated, reported and counted. A namespace labelled
    `finops.resilio.tech/mode: enforce` keeps its choice, judged by the default rules.
    """
    return Config(mode=Mode.AUDIT)


class ConfigChange(StrEnum):
    """What a configuration seen in the operator's ConfigMap means for the one in use."""

    IN_USE = "InUse"  # the same as the one in use: nothing to do
    RESTART_NEEDED = "RestartNeeded"  # valid and different: applied at the next start
    INVALID = "Invalid"  # never applied: the one in use stays


def judge_change(in_use: Config, seen: Config | None, *, safe_default_in_use: bool) -> ConfigChange:
    """`seen` is the ConfigMap's configuration, None when it is invalid.

    The operator reads its configuration at start (every controller holds it), so a
    valid change is applied by a restart. While the safe default is in use, any valid
    configuration is one to restart for, even one equal to the default.
    """
    if seen is None:
        return ConfigChange.INVALID
    if seen == in_use and not safe_default_in_use:
        return ConfigChange.IN_USE
    return ConfigChange.RESTART_NEEDED
