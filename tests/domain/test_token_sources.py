"""The token series per gateway preset: one renderer for the rules, CostReports and `report`."""

from __future__ import annotations

from finops_operator.domain import conventions
from finops_operator.domain.config import parse_config
from finops_operator.domain.costs.cost_queries import DAY_MS, QueryNames, tokens_query
from finops_operator.domain.rules.recording_rules import render_recording_rules
from finops_operator.domain.token_sources import TokenSource, token_series

OTEL = {"llmGateway": {"preset": "otel-genai"}}


def _source(data: dict[str, object]) -> TokenSource:
    return TokenSource.of(parse_config(data).llm_gateway)


def test_litellm_is_the_default_with_one_counter_per_direction() -> None:
    source = _source({})
    assert source.preset == "litellm"
    assert token_series(source, "output", "increase", "1d") == (
        'label_replace(increase(litellm_output_tokens_metric_total[1d]), "team", "$1", '
        '"team_alias", "(.+)")'
    )


def test_otel_genai_reads_the_usage_sum_by_token_type_with_the_model_renamed() -> None:
    source = _source(OTEL)
    assert token_series(source, "input", "rate", "15m") == (
        'label_replace(rate(gen_ai_client_token_usage_sum{gen_ai_token_type="input"}[15m]), '
        '"model", "$1", "gen_ai_request_model", "(.+)")'
    )
    assert 'gen_ai_token_type="output"' in token_series(source, "output", "rate", "15m")


def test_otel_genai_takes_the_configured_team_label_and_metric_name() -> None:
    source = _source(
        {
            "llmGateway": {
                "preset": "otel-genai",
                "teamLabel": "team_id",
                "tokenUsageMetric": "agentgateway_gen_ai_client_token_usage_sum",
            }
        }
    )
    series = token_series(source, "input", "increase", "1h")
    assert series.startswith(
        "label_replace(label_replace(increase(agentgateway_gen_ai_client_token_usage_sum{"
    )
    assert '"team", "$1", "team_id", "(.+)"' in series


def test_the_report_and_the_rules_read_the_same_series_for_the_chosen_preset() -> None:
    for data in ({}, OTEL):
        config = parse_config(data)
        source = TokenSource.of(config.llm_gateway)
        names = QueryNames.from_config(config)
        report = tokens_query(DAY_MS, names)
        [rule] = [
            r
            for r in render_recording_rules(config.llm_gateway)[0]["rules"]
            if r["record"] == conventions.RULE_TOKEN_COST_HOURLY
        ]
        for direction in ("input", "output"):
            # The report also counts an HA pair read without deduplication once.
            read = token_series(
                source, direction, "increase", "1d", replica_labels=names.replica_labels
            )
            assert read in report
            assert token_series(source, direction, "rate", "15m") in rule["expr"]
    litellm_rule = render_recording_rules(parse_config({}).llm_gateway)[0]["rules"]
    assert "gen_ai" not in str(litellm_rule)
    otel_report = tokens_query(DAY_MS, QueryNames.from_config(parse_config(OTEL)))
    assert "litellm" not in otel_report


def test_messages_name_the_series_read() -> None:
    assert QueryNames.from_config(parse_config(OTEL)).tokens == (
        'gen_ai_client_token_usage_sum{gen_ai_token_type=~"input|output"}'
    )
