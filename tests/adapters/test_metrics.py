"""The operator's price series on /metrics: GPU hours and, per direction, LLM tokens."""

from __future__ import annotations

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from finops_operator.adapters.metrics import InventoryCollector, OperatorMetrics
from finops_operator.domain.config import parse_config
from finops_operator.domain.gpus.inventory import Inventory


def token_prices(config_data: dict[str, object]) -> dict[tuple[str, str], float]:
    config = parse_config(config_data)
    metrics = OperatorMetrics()
    metrics.registry.register(InventoryCollector(Inventory(lambda _: False), config.pricing))
    text = generate_latest(metrics.registry).decode()
    return {
        (sample.labels["model"], sample.labels["direction"]): sample.value
        for family in text_string_to_metric_families(text)
        if family.name == "finops_token_price_per_1k"
        for sample in family.samples
    }


def test_token_prices_are_exported_per_model_and_direction_with_the_default() -> None:
    prices = token_prices(
        {"pricing": {"tokensPer1k": {"gpt-4o": {"input": "0.0025", "output": "0.01"}, "m": "0.1"}}}
    )
    assert prices == {
        ("default", "input"): 0.002,
        ("default", "output"): 0.002,
        ("gpt-4o", "input"): 0.0025,
        ("gpt-4o", "output"): 0.01,
        ("m", "input"): 0.1,
        ("m", "output"): 0.1,
    }


def test_without_token_prices_the_default_is_still_exported() -> None:
    assert set(token_prices({})) == {("default", "input"), ("default", "output")}
