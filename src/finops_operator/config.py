"""The operator's configuration file: its schema, its defaults, and its errors.

The format is the contract in DESIGN.md ("Configuration file"). Every key is
optional. A bad file is refused with a message that names the bad key, so a
typo never silently falls back to a default.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
)

from finops_operator import conventions

CONFIG_ENV: str = "FINOPS_CONFIG"

Mode = Literal["enforce", "audit", "off"]


class ConfigError(ValueError):
    """The configuration cannot be used; the message says which key and why."""


def _parse_money(value: Any) -> Decimal:
    if isinstance(value, bool | float):
        raise ValueError(
            f"money must be written as a string, e.g. '{value}' in quotes, so that no "
            "precision is lost"
        )
    if isinstance(value, Decimal):
        return value
    try:
        amount = Decimal(str(value).strip())
    except InvalidOperation:
        raise ValueError(f"{value!r} is not an amount of money (write it like '2.50')") from None
    if not amount.is_finite() or amount < 0:
        raise ValueError(f"{value!r} must be a finite amount of at least 0")
    return amount


Money = Annotated[Decimal, BeforeValidator(_parse_money)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


class LabelRule(_Model):
    """What a cost label's value must look like: a pattern, a list of values, or both."""

    pattern: str | None = None
    values: tuple[str, ...] | None = None

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


DNS_LABEL = r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"

DEFAULT_LABEL_RULES: dict[str, LabelRule] = {
    conventions.TEAM_LABEL: LabelRule(pattern=DNS_LABEL),
    conventions.FEATURE_LABEL: LabelRule(pattern=DNS_LABEL),
    conventions.ENVIRONMENT_LABEL: LabelRule(values=("production", "staging", "development")),
    conventions.WORKLOAD_TYPE_LABEL: LabelRule(
        values=("training", "inference", "batch", "notebook")
    ),
    conventions.COST_CENTER_LABEL: LabelRule(pattern=r"^cc-[0-9]+$"),
}


class PrometheusConfig(_Model):
    url: str = "http://prometheus-operated.monitoring.svc:9090"
    headers: dict[str, str] = Field(default_factory=dict)
    bearer_token_file: str | None = Field(default=None, alias="bearerTokenFile")
    ca_file: str | None = Field(default=None, alias="caFile")

    @field_validator("url")
    @classmethod
    def _url_is_http(cls, url: str) -> str:
        if not re.match(r"^https?://[^/\s]+", url):
            raise ValueError(f"{url!r} is not an http:// or https:// URL")
        return url.rstrip("/")


class PricingConfig(_Model):
    currency: str = "USD"
    gpu_hourly: dict[str, Money] = Field(
        default_factory=lambda: {"default": Decimal("2.00")}, alias="gpuHourly"
    )
    tokens_per_1k: dict[str, Money] = Field(
        default_factory=lambda: {"default": Decimal("0.002")}, alias="tokensPer1k"
    )
    shared_monthly: Money = Field(default=Decimal("0"), alias="sharedMonthly")
    shared_split: Literal["proportional", "even"] = Field(
        default="proportional", alias="sharedSplit"
    )

    @field_validator("currency")
    @classmethod
    def _currency_code(cls, currency: str) -> str:
        if not re.fullmatch(r"[A-Z]{3}", currency):
            raise ValueError(f"{currency!r} is not an ISO 4217 currency code such as USD")
        return currency

    def gpu_price(self, gpu_model: str) -> Decimal:
        return self.gpu_hourly.get(gpu_model, self.gpu_hourly.get("default", Decimal("0")))


class Config(_Model):
    """The whole configuration; `Config()` is the embedded default."""

    mode: Mode = "enforce"
    exempt_namespaces: tuple[str, ...] = Field(
        default=conventions.DEFAULT_EXEMPT_NAMESPACES, alias="exemptNamespaces"
    )
    labels: dict[str, LabelRule] = Field(default_factory=lambda: dict(DEFAULT_LABEL_RULES))
    gpu_resources: tuple[str, ...] = Field(
        default=conventions.DEFAULT_GPU_RESOURCES, alias="gpuResources"
    )
    prometheus: PrometheusConfig = Field(default_factory=PrometheusConfig)
    pricing: PricingConfig = Field(default_factory=PricingConfig)

    @field_validator("labels", mode="before")
    @classmethod
    def _merge_over_defaults(cls, labels: Any) -> Any:
        # Rules given override the default rule of their key; `key: null` drops a default.
        if not isinstance(labels, Mapping):
            return labels
        merged: dict[str, Any] = dict(DEFAULT_LABEL_RULES)
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
            if not re.fullmatch(
                r"([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?", key
            ):
                raise ValueError(f"{key!r} is not a valid Kubernetes label key")
        return labels

    @field_validator("gpu_resources")
    @classmethod
    def _gpu_resources_not_empty(cls, resources: tuple[str, ...]) -> tuple[str, ...]:
        if not resources:
            raise ValueError("at least one GPU resource name is needed, e.g. nvidia.com/gpu")
        return resources


def _location(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in loc) or "(top level)"


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
    if data is None:
        return Config()
    if not isinstance(data, Mapping):
        raise ConfigError(
            f"{source}: the top level must be a mapping of keys, not {type(data).__name__}"
        )
    try:
        return Config.model_validate(data)
    except ValidationError as err:
        raise ConfigError(f"{source}: invalid configuration:\n{explain(err)}") from None


def load_config(path: str | os.PathLike[str] | None = None) -> Config:
    """Read the file named by `path`, else by $FINOPS_CONFIG, else the embedded default."""
    chosen = path if path is not None else os.environ.get(CONFIG_ENV) or None
    if chosen is None:
        return Config()
    file = Path(chosen)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as err:
        raise ConfigError(f"{file}: cannot read the configuration file: {err.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ConfigError(f"{file}: not valid YAML: {err}") from None
    return parse_config(data, str(file))
