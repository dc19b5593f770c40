"""The CostPolicy custom resource as plain data, and every check on it.

The CRD schema (crds/costpolicies.finops.resilio.tech.yaml) refuses what the API
server can refuse. This module refuses the rest before any rule is rendered:
label values against the configured label rules, durations that must be whole
hours, a minimum history longer than its baseline, labels Prometheus would
treat as templates. Each problem names its field as the user wrote it, e.g.
`spec.selector.team: ...`, so that `render`, the operator's status and the user
all say the same thing.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    ValidationError,
    field_validator,
    model_validator,
)

from finops_operator.domain import conventions, names
from finops_operator.domain.config import DEFAULT_LABEL_RULES, LabelRule
from finops_operator.domain.money import MAX_MONEY
from finops_operator.domain.promql import Duration, is_label_name
from finops_operator.errors import CostPolicyError, Problem

# Alert labels the rules set themselves; a policy may not override them.
RESERVED_ALERT_LABELS = frozenset(
    {
        "alertname",
        conventions.ALERT_LABEL_TEAM,
        conventions.ALERT_LABEL_COSTPOLICY,
        conventions.ALERT_LABEL_SEVERITY,
        conventions.ALERT_LABEL_THRESHOLD,
        conventions.ALERT_LABEL_REASON,
        "namespace",
        "pod",
        "job_name",
    }
)
RESERVED_RULE_LABELS = frozenset({conventions.MANAGED_BY_LABEL, conventions.COSTPOLICY_RULE_LABEL})

MAX_THRESHOLDS = 10
MAX_LABELS = 20  # alerting.labels and alerting.ruleLabels, each
# No number in a policy may exceed this; money fields stop at MAX_MONEY (1e12).
MAX_NUMBER = Decimal(10**15)


def _number(value: Any, bound: Decimal = MAX_NUMBER) -> Decimal:
    # Numbers stay numbers (the CRD says `type: number`); strings would render but
    # the API server would refuse them, so `render` refuses them too. Anything above
    # `bound` is refused before any arithmetic: a hostile 1e400 or an integer of
    # 10,000 digits costs nothing.
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        raise ValueError(f"must be a number, not {type(value).__name__}")
    if isinstance(value, int) and abs(value) > bound:
        raise ValueError(f"is more than {bound:,f}, the largest accepted")
    try:
        amount = Decimal(value) if isinstance(value, int) else Decimal(str(value))
    except InvalidOperation:
        raise ValueError(f"{value!r} is not a number") from None
    if not amount.is_finite():
        raise ValueError(f"{value!r} is not a finite number")
    if abs(amount) > bound:
        raise ValueError(f"{amount:e} is more than {bound:,f}, the largest accepted")
    return amount


def _money(value: Any) -> Decimal:
    return _number(value, MAX_MONEY)


def _duration(value: Any) -> Duration:
    if isinstance(value, Duration):
        return value
    if not isinstance(value, str):
        raise ValueError(f"must be a duration string such as 15m, not {type(value).__name__}")
    return Duration.parse(value)


Number = Annotated[Decimal, BeforeValidator(_number)]
MoneyNumber = Annotated[Decimal, BeforeValidator(_money)]
DurationField = Annotated[Duration, BeforeValidator(_duration)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


class Selector(_Model):
    """Which spend a policy watches, by the short names of the five cost labels."""

    team: StrictStr | None = None
    feature: StrictStr | None = None
    environment: StrictStr | None = None
    workload_type: StrictStr | None = Field(default=None, alias="workloadType")
    cost_center: StrictStr | None = Field(default=None, alias="costCenter")

    def by_short_name(self) -> dict[str, str]:
        """Set fields only, as `{short name: value}` in the order of SHORT_NAME_FOR."""
        values = self.model_dump(by_alias=True, exclude_none=True)
        return {short: values[short] for short in conventions.SHORT_NAME_FOR if short in values}

    def metric_labels(self) -> dict[str, str]:
        """Set fields as `{Prometheus label name: value}`, e.g. `{"team": "search"}`."""
        return {
            conventions.METRIC_LABEL_FOR[conventions.SHORT_NAME_FOR[short]]: value
            for short, value in self.by_short_name().items()
        }


class Anomaly(_Model):
    threshold: Number = Field(gt=0, le=10000)
    baseline: DurationField = Duration.of(days=7)
    for_: DurationField = Field(default=Duration.of(minutes=15), alias="for")
    min_hourly_cost: MoneyNumber = Field(default=Decimal(0), ge=0, alias="minHourlyCost")
    min_history: DurationField | None = Field(default=None, alias="minHistory")

    @field_validator("baseline")
    @classmethod
    def _baseline_in_hours(cls, baseline: Duration) -> Duration:
        if baseline.seconds % 3600 or not Duration.of(hours=2) <= baseline <= Duration.of(days=31):
            raise ValueError(
                f"{baseline} must be a whole number of hours from 2h to 31d, since the "
                "baseline is the mean of hourly costs"
            )
        return baseline

    @field_validator("for_")
    @classmethod
    def _for_bounded(cls, duration: Duration) -> Duration:
        if duration > Duration.of(days=1):
            raise ValueError(f"{duration} is longer than 1d")
        return duration

    @field_validator("min_history")
    @classmethod
    def _min_history_in_hours(cls, history: Duration | None) -> Duration | None:
        if history is not None and (history.seconds % 3600 or history.seconds == 0):
            raise ValueError(f"{history} must be a whole number of hours, at least 1h")
        return history

    @model_validator(mode="after")
    def _history_fits_baseline(self) -> Anomaly:
        if self.min_history is not None and self.min_history > self.baseline:
            raise ValueError(
                f"minHistory ({self.min_history}) is longer than baseline ({self.baseline}); "
                "the history is counted inside the baseline window"
            )
        return self

    @property
    def required_history(self) -> Duration:
        """Hours of spend the baseline must hold before the alert may fire: 1d by default."""
        if self.min_history is not None:
            return self.min_history
        return min(Duration.of(days=1), self.baseline)

    @property
    def baseline_offset(self) -> Duration:
        """How far back the baseline window ends: past the whole pending spike, at least 1h."""
        return max(Duration.of(hours=1), self.for_)


BudgetBasis = Literal["scope", "all-in"]


class Budget(_Model):
    monthly: MoneyNumber = Field(gt=0)
    currency: Annotated[StrictStr, AfterValidator(names.currency_code)] = "USD"
    thresholds: tuple[Number, ...] = (Decimal(50), Decimal(80), Decimal(100))
    forecast: StrictBool = True
    # What the CostReport's budget % counts: the policy's scope, as the alerts do, or
    # the report's all-in total (shared cost included, which Prometheus alerts cannot
    # see: they keep counting the scope). docs/costpolicy.md.
    basis: BudgetBasis = "scope"

    @field_validator("thresholds")
    @classmethod
    def _thresholds_increase(cls, thresholds: tuple[Decimal, ...]) -> tuple[Decimal, ...]:
        if not 1 <= len(thresholds) <= MAX_THRESHOLDS:
            raise ValueError(f"give from 1 to {MAX_THRESHOLDS} percentages, e.g. [50, 80, 100]")
        for value in thresholds:
            if not 0 < value <= 1000:
                raise ValueError(f"{value} is not a percentage from above 0 to 1000")
        if any(b <= a for a, b in itertools.pairwise(thresholds)):
            raise ValueError("percentages must be sorted from low to high, each once")
        return thresholds


class Idle(_Model):
    max_utilization: Number = Field(ge=0, le=100, alias="maxUtilization")
    for_: DurationField = Field(default=Duration.of(hours=2), alias="for")

    @field_validator("for_")
    @classmethod
    def _for_bounded(cls, duration: Duration) -> Duration:
        if not Duration.of(minutes=5) <= duration <= Duration.of(days=7):
            raise ValueError(f"{duration} must be from 5m to 7d")
        return duration


class Retries(_Model):
    max_restarts_per_hour: StrictInt = Field(ge=1, le=10000, alias="maxRestartsPerHour")
    for_: DurationField | None = Field(default=None, alias="for")

    @field_validator("for_")
    @classmethod
    def _for_bounded(cls, duration: Duration | None) -> Duration | None:
        if duration is not None and duration > Duration.of(days=1):
            raise ValueError(f"{duration} is longer than 1d")
        return duration


def _no_template(value: str) -> str:
    if "{{" in value or "}}" in value:
        raise ValueError(
            f"{value!r} contains '{{{{' or '}}}}'; Prometheus would run it as a template"
        )
    return value


class Alerting(_Model):
    severity: Literal["critical", "warning", "info"] = "warning"
    labels: dict[StrictStr, StrictStr] = Field(default_factory=dict)
    rule_labels: dict[StrictStr, StrictStr] = Field(default_factory=dict, alias="ruleLabels")

    @field_validator("labels")
    @classmethod
    def _alert_labels(cls, labels: dict[str, str]) -> dict[str, str]:
        if len(labels) > MAX_LABELS:
            raise ValueError(f"at most {MAX_LABELS} labels")
        for name, value in labels.items():
            if len(name) > 128:
                raise ValueError(f"{name[:20]!r}... is longer than 128 characters")
            if not is_label_name(name) or name.startswith("__"):
                raise ValueError(
                    f"{name!r} is not a Prometheus label name (letters, digits, _; no leading __)"
                )
            if name in RESERVED_ALERT_LABELS:
                raise ValueError(
                    f"{name!r} is set by the rules themselves and cannot be overridden"
                )
            if len(value) > 1024:
                raise ValueError(f"the value of {name!r} is longer than 1024 characters")
            _no_template(value)
        return labels

    @field_validator("rule_labels")
    @classmethod
    def _rule_labels(cls, labels: dict[str, str]) -> dict[str, str]:
        if len(labels) > MAX_LABELS:
            raise ValueError(f"at most {MAX_LABELS} labels")
        for key, value in labels.items():
            if names.label_key_problem(key) is not None:
                raise ValueError(f"{key!r} is not a Kubernetes label key")
            if key in RESERVED_RULE_LABELS:
                raise ValueError(f"{key!r} is set by the operator and cannot be overridden")
            if not names.is_label_value(value):
                raise ValueError(f"{value!r} (for {key!r}) is not a Kubernetes label value")
        return labels


# What spend the budget, forecast and anomaly alerts count: GPU, LLM tokens, or both.
Scope = Literal["gpu", "tokens", "all"]
# Which clusters' spend they count (docs/multi-cluster.md): the operator's own
# (config `cluster.name`), or every cluster, summed, by a rule evaluator that sees
# them all (Thanos Ruler), which selects these PrometheusRules by their own labels.
Clusters = Literal["own", "all"]


class CostPolicySpec(_Model):
    selector: Selector = Field(default_factory=Selector)
    scope: Scope = "all"
    clusters: Clusters = "own"
    anomaly: Anomaly | None = None
    budget: Budget | None = None
    idle: Idle | None = None
    retries: Retries | None = None
    alerting: Alerting = Field(default_factory=Alerting)

    @model_validator(mode="after")
    def _asks_for_something(self) -> CostPolicySpec:
        if not (self.anomaly or self.budget or self.idle or self.retries):
            raise ValueError("set at least one of anomaly, budget, idle or retries")
        if self.clusters == "all" and (self.idle or self.retries):
            raise ValueError(
                "clusters: all counts spend over every cluster (anomaly, budget); idle and "
                "retries alerts are about one cluster's pods: put them in that cluster's policy"
            )
        return self


@dataclass(frozen=True)
class CostPolicy:
    """A validated policy: where it lives and what it asks for."""

    name: str
    namespace: str
    spec: CostPolicySpec
    uid: str | None = None
    generation: int | None = None

    @property
    def key(self) -> str:
        """`namespace/name`, the value of every alert's `costpolicy` label."""
        return f"{self.namespace}/{self.name}"


def _location(loc: tuple[int | str, ...]) -> str:
    parts: list[str] = []
    for part in loc:
        if isinstance(part, int):
            parts[-1:] = [f"{parts[-1]}[{part}]"] if parts else [f"[{part}]"]
        elif part == "for_":
            parts.append("for")
        elif part.startswith("function-after") or part.startswith("function-before"):
            continue
        else:
            parts.append(part)
    return ".".join(parts)


def _problems(err: ValidationError, prefix: str) -> list[Problem]:
    problems = []
    for error in err.errors():
        field = _location(tuple(error["loc"]))
        msg = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            msg = "unknown field (check its spelling against docs/costpolicy.md)"
        problems.append(Problem(f"{prefix}.{field}" if field else prefix, msg))
    return problems


def _selector_problems(selector: Selector, label_rules: Mapping[str, LabelRule]) -> list[Problem]:
    problems = []
    for short, value in selector.by_short_name().items():
        field = f"spec.selector.{short}"
        if value == conventions.UNTAGGED:
            continue  # spend without the label: docs/costpolicy.md allows it for any field
        # whatever the configured label rules allow, a selector value is a label value
        if not value or not names.is_label_value(value):
            problems.append(
                Problem(
                    field,
                    f"{value!r} is not a Kubernetes label value (at most 63 letters, digits, "
                    "'-', '_' or '.', starting and ending with a letter or digit)",
                )
            )
            continue
        rule = label_rules.get(conventions.SHORT_NAME_FOR[short])
        if rule is not None and not rule.accepts(value):
            problems.append(Problem(field, f"{value!r} {rule.describe()}"))
    return problems


def _selector_alone(raw_spec: Any) -> Selector | None:
    # When another field is wrong, the selector's own values are still worth reporting.
    raw = raw_spec.get("selector") if isinstance(raw_spec, Mapping) else None
    try:
        return Selector.model_validate(raw if raw is not None else {})
    except ValidationError:
        return None


def _metadata_problems(metadata: Any, default_namespace: str) -> tuple[str, str, list[Problem]]:
    problems: list[Problem] = []
    if not isinstance(metadata, Mapping):
        return "", "", [Problem("metadata", "must be a mapping with at least a name")]
    name = metadata.get("name")
    namespace = metadata.get("namespace") or default_namespace
    if not isinstance(name, str) or not name:
        problems.append(Problem("metadata.name", "is required"))
        name = ""
    elif not names.is_dns_subdomain(name):
        problems.append(Problem("metadata.name", f"{name!r} is not a DNS subdomain name"))
    if not isinstance(namespace, str) or not names.is_dns_label(namespace):
        problems.append(Problem("metadata.namespace", f"{namespace!r} is not a namespace name"))
        namespace = ""
    return name, namespace, problems


def _plain(value: Any) -> Any:
    # kopf hands over its own Mapping types; pydantic validates plain dicts and lists.
    if isinstance(value, Mapping):
        return {key: _plain(sub) for key, sub in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value


def parse_cost_policy(
    obj: Any,
    *,
    label_rules: Mapping[str, LabelRule] | None = None,
    currency: str | None = None,
    default_namespace: str = "default",
    source: str = "",
) -> CostPolicy:
    """Validate a whole CostPolicy object (apiVersion, kind, metadata, spec).

    `label_rules` are the configured cost-label rules (DESIGN.md defaults when
    None); `currency`, when given, is the operator's pricing currency, which a
    budget must be written in. Raises CostPolicyError naming every bad field.
    """
    if not isinstance(obj, Mapping):
        raise CostPolicyError(
            [Problem("(top level)", f"a CostPolicy is a mapping, not {type(obj).__name__}")],
            source,
        )
    obj = _plain(obj)
    problems: list[Problem] = []
    if obj.get("apiVersion") != conventions.API_GROUP_VERSION:
        problems.append(Problem("apiVersion", f"must be {conventions.API_GROUP_VERSION}"))
    if obj.get("kind") != conventions.COSTPOLICY_KIND:
        problems.append(Problem("kind", f"must be {conventions.COSTPOLICY_KIND}"))
    name, namespace, metadata_problems = _metadata_problems(obj.get("metadata"), default_namespace)
    problems += metadata_problems
    raw_spec = obj.get("spec")
    spec: CostPolicySpec | None = None
    if not isinstance(raw_spec, Mapping):
        problems.append(Problem("spec", "is required and must be a mapping"))
    else:
        try:
            spec = CostPolicySpec.model_validate(raw_spec)
        except ValidationError as err:
            problems += _problems(err, "spec")
    rules = DEFAULT_LABEL_RULES if label_rules is None else label_rules
    selector = spec.selector if spec is not None else _selector_alone(raw_spec)
    if selector is not None:
        problems += _selector_problems(selector, rules)
    budget = spec.budget if spec is not None else None
    if currency is not None and budget is not None and budget.currency != currency:
        problems.append(
            Problem(
                "spec.budget.currency",
                f"{budget.currency} differs from the currency costs are priced in "
                f"({currency}); write the budget in {currency}",
            )
        )
    if problems or spec is None:
        raise CostPolicyError(problems, source)
    metadata = obj["metadata"]
    generation = metadata.get("generation")
    uid = metadata.get("uid")
    return CostPolicy(
        name=name,
        namespace=namespace,
        spec=spec,
        uid=uid if isinstance(uid, str) else None,
        generation=generation if isinstance(generation, int) else None,
    )
