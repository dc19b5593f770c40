"""usage_reader against an in-memory Prometheus: the queries it sends and what it makes of them."""

from __future__ import annotations

import datetime
from decimal import Decimal
from typing import Any

import pytest

from finops_operator.controllers.serving_reader import read_serving
from finops_operator.controllers.usage_reader import read_usage, report_period
from finops_operator.domain.config import PricingConfig
from finops_operator.domain.costs.cost_queries import (
    DAY_MS,
    QueryNames,
    capacity_gpu_hours_query,
    gpu_hours_query,
    idle_gpu_hours_query,
    job_gpu_hours_query,
    tokens_query,
)
from finops_operator.domain.costs.period import Period
from finops_operator.domain.costs.serving_queries import (
    ServingNames,
    serving_gpu_hours_query,
    serving_tokens_query,
)
from finops_operator.errors import NoUsageDataError, PrometheusError
from finops_operator.ports import PrometheusPort
from tests.support.fakes import FakePrometheus

UTC = datetime.UTC
TWO_DAYS = Period(
    datetime.datetime(2026, 11, 1, tzinfo=UTC), datetime.datetime(2026, 11, 3, tzinfo=UTC)
)


def series(metric: dict[str, str], *values: str) -> dict[str, Any]:
    return {"metric": metric, "values": [[1_700_000_000 + i, v] for i, v in enumerate(values)]}


ML = {"team": "ml", "feature": "chat", "environment": "prod", "gpu_model": "a100"}


def usage_answers() -> dict[str, list[dict[str, Any]]]:
    """Answers to the five range queries of a two-day period read in one-day windows."""
    return {
        gpu_hours_query(DAY_MS): [series(ML, "24", "24"), series({"gpu_model": ""}, "2", "0")],
        idle_gpu_hours_query(DAY_MS): [series(ML, "6", "4")],
        capacity_gpu_hours_query(DAY_MS): [series({"gpu_model": "a100"}, "96", "96")],
        tokens_query(DAY_MS): [series({"team": "ml", "model": "llama"}, "1000", "500")],
        job_gpu_hours_query(DAY_MS): [
            series(
                {"namespace": "ml", "owner_name": "train", "team": "ml", "gpu_model": "a100"}, "8"
            )
        ],
    }


def test_a_whole_number_of_days_is_five_range_queries_whatever_the_data() -> None:
    prometheus = FakePrometheus(answers=usage_answers())
    read_usage(prometheus, TWO_DAYS)
    assert [q.kind for q in prometheus.log] == ["range"] * 5
    assert [q.expr for q in prometheus.log] == list(usage_answers())


def test_the_answers_become_the_cost_models_inputs() -> None:
    usage = read_usage(FakePrometheus(answers=usage_answers()), TWO_DAYS)
    untagged, ml = usage.gpu  # sorted by their labels: the empty team first
    assert (ml.team, ml.feature, ml.environment, ml.workload_type) == (
        "ml",
        "chat",
        "prod",
        "__untagged__",
    )
    assert (ml.gpu_hours, ml.busy_gpu_hours) == (Decimal(48), Decimal(38))
    assert (untagged.team, untagged.gpu_model, untagged.busy_gpu_hours) == (
        "__untagged__",
        "unknown",
        None,  # no utilization series: unknown, not idle
    )
    assert [(c.gpu_model, c.gpu_hours) for c in usage.capacity] == [("a100", Decimal(192))]
    assert [(t.team, t.model, t.tokens) for t in usage.tokens] == [("ml", "llama", Decimal(1500))]
    assert [(j.job, j.gpu_hours) for j in usage.jobs] == [("train", Decimal(8))]


def test_without_jobs_the_fifth_query_is_not_sent() -> None:
    prometheus = FakePrometheus(answers=usage_answers())
    usage = read_usage(prometheus, TWO_DAYS, jobs=False)
    assert len(prometheus.log) == 4 and usage.jobs == []


def test_a_period_that_is_not_whole_days_adds_one_instant_query_per_measure() -> None:
    prometheus = FakePrometheus()
    period = Period(TWO_DAYS.start, TWO_DAYS.end + datetime.timedelta(hours=5))
    read_usage(prometheus, period)
    assert [q.kind for q in prometheus.log].count("instant") == 5
    assert len(prometheus.log) == 10


def test_a_report_counts_its_queries_and_prices_the_usage() -> None:
    prometheus: PrometheusPort = FakePrometheus(answers=usage_answers())
    report = report_period(prometheus, PricingConfig(), TWO_DAYS)
    assert report.queries == 5
    assert report.data_through == TWO_DAYS.end
    assert report.costs.row("ml").gpu_hours == Decimal(48)
    assert [job.job for job in report.jobs] == ["train"]


def test_a_running_period_is_read_through_now() -> None:
    now = datetime.datetime(2026, 11, 2, 6, 0, 0, 700_000, tzinfo=UTC)
    report = report_period(
        FakePrometheus(answers=usage_answers()), PricingConfig(), TWO_DAYS, now=now
    )
    assert report.data_through == now.replace(microsecond=0)
    assert report.costs.period.end == report.data_through


def test_no_series_at_all_is_no_usage_data_not_a_report_of_zeros() -> None:
    prometheus = FakePrometheus()
    with pytest.raises(NoUsageDataError, match=r"Prometheus at http://prometheus\.test:9090"):
        report_period(prometheus, PricingConfig(), TWO_DAYS)


def test_an_unreachable_prometheus_is_raised_as_it_is() -> None:
    prometheus = FakePrometheus(answers=usage_answers())
    prometheus.fail_next()
    with pytest.raises(PrometheusError) as raised:
        report_period(prometheus, PricingConfig(), TWO_DAYS)
    assert not isinstance(raised.value, NoUsageDataError)


def test_a_period_that_has_not_begun_is_refused() -> None:
    with pytest.raises(ValueError, match="has not begun"):
        report_period(FakePrometheus(), PricingConfig(), TWO_DAYS, now=TWO_DAYS.start)


# --- answers that are not figures --------------------------------------------------------


@pytest.mark.parametrize("bad", ["NaN", "+Inf", "-Inf", "1e999", "5e21", "lots", None, True])
@pytest.mark.parametrize("query", [gpu_hours_query, idle_gpu_hours_query, tokens_query])
def test_a_sample_that_is_not_a_finite_number_is_an_error_not_a_skipped_series(
    bad: Any, query: Any
) -> None:
    answers = usage_answers()
    answers[query(DAY_MS)] = [*answers[query(DAY_MS)], series({"team": "ops"}, "3", bad)]
    with pytest.raises(PrometheusError) as raised:
        report_period(FakePrometheus(answers=answers), PricingConfig(), TWO_DAYS)
    message = str(raised.value)
    assert "Prometheus at http://prometheus.test:9090" in message
    assert 'series {team="ops"}' in message and "no cost is computed" in message
    assert not isinstance(raised.value, NoUsageDataError)


@pytest.mark.parametrize(
    "broken",
    [
        {"metric": {"team": "ops"}},  # no samples
        {"metric": {"team": "ops"}, "values": 3},
        {"metric": {"team": "ops"}, "values": [[1]]},
        {"values": [[1, "1"]], "metric": None},
        "a string",
    ],
)
def test_a_series_that_is_not_a_series_is_an_error(broken: Any) -> None:
    answers = usage_answers()
    answers[gpu_hours_query(DAY_MS)] = [*answers[gpu_hours_query(DAY_MS)], broken]
    with pytest.raises(PrometheusError, match="answered the gpu hours query with"):
        read_usage(FakePrometheus(answers=answers), TWO_DAYS)


def test_a_partial_answer_gives_a_report_that_says_so() -> None:
    prometheus = FakePrometheus(answers=usage_answers())
    prometheus.warnings = ("partial response: store 10.0.0.7 unreachable",)
    report = report_period(prometheus, PricingConfig(), TWO_DAYS)
    assert report.partial
    assert report.warnings == ("partial response: store 10.0.0.7 unreachable",)
    assert not report_period(
        FakePrometheus(answers=usage_answers()), PricingConfig(), TWO_DAYS
    ).partial


def test_a_partial_answer_without_series_is_an_error_not_no_usage() -> None:
    prometheus = FakePrometheus()
    prometheus.warnings = ("partial response: store 10.0.0.7 unreachable",)
    with pytest.raises(PrometheusError, match="answered only in part") as raised:
        report_period(prometheus, PricingConfig(), TWO_DAYS)
    assert not isinstance(raised.value, NoUsageDataError)


def on_grid(metric: dict[str, str], first_end: datetime.datetime, *values: str) -> dict[str, Any]:
    """A range answer as Prometheus gives it: one point per window, at its end - 1 ms."""
    start = first_end.timestamp() - 0.001
    return {"metric": metric, "values": [[start + 86400 * i, v] for i, v in enumerate(values)]}


def test_each_day_keeps_its_own_usage_and_the_days_add_up_to_the_period() -> None:
    day_two = TWO_DAYS.start + datetime.timedelta(days=1)
    period = Period(TWO_DAYS.start, TWO_DAYS.end + datetime.timedelta(hours=5))
    late = {"team": "ml", "model": "llama"}
    answers = {
        # one series present on day 2 only: Prometheus leaves its day 1 point out
        gpu_hours_query(DAY_MS): [
            on_grid(ML, day_two, "24", "12"),
            {"metric": {**ML, "team": "cv"}, "values": [[TWO_DAYS.end.timestamp() - 0.001, "6"]]},
        ],
        tokens_query(DAY_MS): [on_grid(late, day_two, "100.4", "200.4")],
        # the 5 hours after the two days: one instant query per measure
        tokens_query(5 * 3_600_000): [
            {"metric": late, "value": [period.end.timestamp() - 0.001, "50.4"]}
        ],
    }
    prometheus = FakePrometheus(answers=answers)
    report = report_period(prometheus, PricingConfig(), period)
    days = report.usage.days
    assert [day.window for day in days] == [
        Period(TWO_DAYS.start, day_two),
        Period(day_two, TWO_DAYS.end),
        Period(TWO_DAYS.end, period.end),
    ]
    assert [{(g.team, g.gpu_hours) for g in day.gpu} for day in days] == [
        {("ml", Decimal(24))},
        {("ml", Decimal(12)), ("cv", Decimal(6))},
        set(),
    ]
    assert [[t.tokens for t in day.tokens] for day in days] == [
        [Decimal("100.4")],
        [Decimal("200.4")],
        [Decimal("50.4")],
    ]
    assert [t.tokens for t in report.usage.tokens] == [Decimal(351)]  # whole tokens
    # the daily costs add up to the period's rows, without another query
    assert len(prometheus.log) == 10
    for row in [*report.costs.teams, report.costs.untagged]:
        assert sum(report.daily.of(row.team), Decimal(0)) == row.total_cost
    assert report.daily.of("cv")[0] == 0 < report.daily.of("cv")[1]


def test_a_range_answer_off_the_grid_is_an_error_naming_the_series() -> None:
    broken = {"metric": ML, "values": [["soon", "1"]]}
    prometheus = FakePrometheus(answers={gpu_hours_query(DAY_MS): [broken]})
    with pytest.raises(PrometheusError, match=r"sample time that is not a number.*team=\"ml\""):
        read_usage(prometheus, TWO_DAYS)


def test_the_platform_cost_is_prorated_from_the_first_day_with_figures_when_asked() -> None:
    # Prometheus has figures for the second day only (the operator came then).
    answers = {
        gpu_hours_query(DAY_MS): [
            {"metric": ML, "values": [[TWO_DAYS.end.timestamp() - 0.001, "6"]]}
        ]
    }
    monthly = {"sharedMonthly": "3000"}
    whole = report_period(
        FakePrometheus(answers=answers), PricingConfig.model_validate(monthly), TWO_DAYS
    )
    data = PricingConfig.model_validate(monthly | {"sharedProration": "data"})
    late = report_period(FakePrometheus(answers=answers), data, TWO_DAYS)
    assert whole.costs.cluster.platform_cost == 2 * late.costs.cluster.platform_cost > 0


def _both(metric: dict[str, str], unlabelled: str, labelled: str) -> list[dict[str, Any]]:
    """`metric` once without the cluster label and once with `cluster="a"`."""
    return [series(metric, unlabelled), series({**metric, "cluster": "a"}, labelled)]


def test_unlabelled_series_are_the_configured_clusters_and_add_up_with_its_own() -> None:
    """The cluster label added part way through a period: one read holds both kinds.
    With `cluster.name: a` they are one cluster, each figure summed before pricing."""
    answers = {
        gpu_hours_query(DAY_MS): _both(ML, "24", "20"),
        idle_gpu_hours_query(DAY_MS): _both(ML, "6", "4"),
        capacity_gpu_hours_query(DAY_MS): _both({"gpu_model": "a100"}, "40", "56"),
        tokens_query(DAY_MS): _both({"team": "ml", "model": "llama"}, "100.4", "200.4"),
    }
    names = QueryNames(unlabelled_cluster="a")
    report = report_period(FakePrometheus(answers=answers), PricingConfig(), TWO_DAYS, names=names)
    usage = report.usage
    assert [(g.cluster, g.gpu_hours, g.busy_gpu_hours) for g in usage.gpu] == [
        ("a", Decimal(44), Decimal(34))
    ]
    assert [(c.cluster, c.gpu_hours) for c in usage.capacity] == [("a", Decimal(96))]
    assert [(t.cluster, t.tokens) for t in usage.tokens] == [("a", Decimal(301))]  # rounded once
    assert [{g.cluster for g in day.gpu} for day in usage.days] == [{"a"}, set()]
    [cluster] = report.clusters
    assert cluster.name == "a"
    assert cluster.costs.total_cost == report.costs.cluster.total_cost
    assert cluster.costs.capacity_gpu_hours == Decimal(96)
    unnamed = report_period(FakePrometheus(answers=answers), PricingConfig(), TWO_DAYS)
    assert [c.name for c in unnamed.clusters] == ["", "a"]


def test_unlabelled_serving_series_are_the_configured_clusters_too() -> None:
    names, serving = QueryNames(unlabelled_cluster="a"), ServingNames()
    served = {"served_model": "llama", "namespace": "serving", "team": "serving"}
    answers = {
        serving_gpu_hours_query(DAY_MS, names, serving): _both(
            {**served, "gpu_model": "h100"}, "10", "14"
        ),
        serving_tokens_query(DAY_MS, names, serving): _both(
            {**served, "direction": "generation"}, "1000", "3000"
        ),
    }
    usage = read_serving(FakePrometheus(answers=answers), TWO_DAYS, names=names, serving=serving)
    assert [(g.usage.cluster, g.usage.gpu_hours) for g in usage.gpu] == [("a", Decimal(24))]
    assert [(t.cluster, t.generation_tokens) for t in usage.tokens] == [("a", Decimal(4000))]
