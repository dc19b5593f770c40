"""The HTML showback page: well formed, self-contained, and holding what it should."""

from __future__ import annotations

import datetime
import html
import html.parser
import re
from decimal import Decimal
from typing import Any

from finops_operator.domain.config import Config
from finops_operator.domain.costs.allocation import allocate
from finops_operator.domain.costs.period import Period
from finops_operator.domain.costs.showback import compute_costs
from finops_operator.domain.costs.usage import CapacityUsage, GpuUsage, TokenUsage
from finops_operator.views.showback_html import render_showback
from tests.views.costreports import NOW, operator_reports, reports
from tests.views.daily_reports import THROUGH, statuses, two_months


class _Balance(html.parser.HTMLParser):
    VOID = frozenset({"meta", "br", "img", "link", "input", "hr"})

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack.pop() != tag:
            self.errors.append(tag)


def test_the_showback_page_is_well_formed_and_self_contained() -> None:
    page = render_showback(reports(), NOW)
    parser = _Balance()
    parser.feed(page)
    assert parser.errors == [] and parser.stack == []
    tags = {tag for tag, _ in parser.tags}
    assert not tags & {"script", "link", "img", "iframe"}
    assert {"style", "svg", "table"} <= tags
    for _, attrs in parser.tags:
        assert not {"src", "href"} & set(attrs) or attrs.get("href", "").startswith("#")
    assert "http" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")


def test_the_showback_page_holds_the_team_table_and_the_rest() -> None:
    page = render_showback(reports(), NOW, note="Simulated data")
    assert page.index('id="period-2026-11"') < page.index('id="period-2026-10"')
    table = page[
        page.index('<table class="teams">') : page.index(
            "</table>", page.index('<table class="teams">')
        )
    ]
    assert table.index("search-platform") < table.index("&lt;b&gt;recsys&lt;/b&gt;")
    assert "untagged (no team label)" in table and "cluster total" in table
    assert "500.00 USD" in table and "80.0 %" in table  # budget and its use
    assert "<b>recsys</b>" not in page  # escaped
    assert "search/finetune-7" in page and "cc-1042" in page
    assert "600.00 USD" in page  # the headline total
    assert "2.5 % of spend" in page  # untagged share: 15 / 600
    # busy GPU, idle GPU, tokens, shared for 2 teams; untagged has no busy GPU cost
    assert page.count("<rect") == 4 + 4 + 3
    assert "Simulated data" in page


def test_an_empty_showback_page_says_so() -> None:
    assert "No CostReports with figures yet" in render_showback([], NOW)


def amount(cell: str, currency: str = "USD") -> Decimal:
    """A money cell: `1,234.56 USD`, its currency always written."""
    figure, _, code = cell.rpartition(" ")
    assert code == currency, cell
    return Decimal(figure.replace(",", ""))


class _CostCenters(html.parser.HTMLParser):
    """The cells of the cost-center table, row by row."""

    def __init__(self) -> None:
        super().__init__()
        self.inside = False
        self.rows: list[list[str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "table":
            self.inside = dict(attrs).get("class") == "cost-centers"
        elif self.inside and tag == "tr":
            self.rows.append([])
        elif self.inside and tag in ("td", "th"):
            self.rows[-1].append("")

    def handle_endtag(self, tag: str) -> None:
        if tag == "table":
            self.inside = False

    def handle_data(self, data: str) -> None:
        if self.inside and self.rows and self.rows[-1]:
            self.rows[-1][-1] += data


def _operator_reports(with_undistributed: bool) -> list[dict[str, Any]]:
    """CostReports as the operator writes them from usage with cost centers."""
    pricing = Config().pricing
    if with_undistributed:
        pricing = pricing.model_copy(update={"shared_monthly": Decimal("1000.01")})
    gpu = [
        GpuUsage("search", "H100", Decimal(100), Decimal(75), cost_center="cc-a"),
        GpuUsage("search", "A100", Decimal(1) / 3, None, cost_center="cc-b"),
        GpuUsage("recsys", "H100", Decimal(20) / 7, Decimal(2), cost_center="cc-b"),
        GpuUsage("__untagged__", "H100", Decimal(10), Decimal(0)),
    ][: 0 if with_undistributed else None]
    tokens = [
        TokenUsage("search", "gpt-4o", Decimal(1_000_001)),
        TokenUsage("chat", "gpt-4o", Decimal(333_333)),
    ]
    period = Period(datetime.datetime(2026, 11, 1, tzinfo=datetime.UTC), NOW)
    costs = compute_costs(
        period=period,
        pricing=pricing,
        gpu_usage=gpu,
        token_usage=tokens,
        capacity=[CapacityUsage("H100", Decimal(300))],
    )
    return operator_reports(costs, NOW, allocate(costs, gpu, tokens, pricing))


def test_the_cost_center_table_shows_all_spend_adding_up_to_the_cluster_total() -> None:
    for with_undistributed in (False, True):
        reports_ = _operator_reports(with_undistributed)
        cluster = next(r for r in reports_ if r["spec"]["scope"] == "cluster")["status"]
        parser = _CostCenters()
        parser.feed(render_showback(reports_, NOW))
        header, *rows = parser.rows
        assert header == [
            "Cost center",
            "GPU hours",
            "GPU cost",
            "Token cost",
            "Shared cost",
            "Total",
        ]
        *centers, total = rows
        assert total[0] == "cluster total"
        assert amount(total[5]) == Decimal(cluster["totalCost"])
        if with_undistributed:
            assert centers[-1][0] == "shared, not distributed"
        for column in (2, 3, 4, 5):  # GPU, token, shared and total cost
            parts = sum(amount(row[column]) for row in centers)
            assert parts == amount(total[column]), (with_undistributed, column)
        for row in centers:  # total = GPU + token + shared, to rounding
            parts = sum(amount(cell) for cell in row[2:5])
            assert abs(amount(row[5]) - parts) <= Decimal("0.02")
        assert any(amount(row[3]) > 0 for row in centers)  # tokens count


def test_cost_reports_without_token_and_shared_cost_give_the_gpu_only_table() -> None:
    page = render_showback(reports(), NOW)
    assert "GPU cost only" in page and "cc-1042" in page


def _trend_rows(page: str) -> dict[str, list[str]]:
    """The cells of the trend table by team, tags stripped."""
    table = page[
        page.index('<table class="trend">') : page.index(
            "</table>", page.index('<table class="trend">')
        )
    ]
    rows = {}
    for row in re.findall(r'<tr[^>]*data-team="([^"]*)"[^>]*>(.*?)</tr>', table):
        cells = re.findall(r"<td[^>]*>(.*?)</td>", re.sub(r"<svg.*?</svg>", "", row[1]))
        rows[html.unescape(row[0])] = [html.unescape(cell) for cell in cells]
    return rows


def test_the_trend_shows_each_team_over_both_months_with_week_over_week() -> None:
    reports_ = two_months()
    page = render_showback(reports_, THROUGH)
    assert page.index('id="trend"') < page.index('id="period-2026-11"')
    rows = _trend_rows(page)
    # each team's total over the days = its totalCost in October plus November
    for status_of, name in (
        (statuses(reports_, "cluster"), "cluster"),
        (statuses(reports_, "untagged"), "untagged"),
    ):
        assert amount(rows[name][2]) == sum(Decimal(s["totalCost"]) for s in status_of)
    search = [r["status"] for r in reports_ if r["spec"].get("team") == "search"]
    assert amount(rows["search"][2]) == sum(Decimal(s["totalCost"]) for s in search)
    # week over week: Nov 5-11 against Oct 29-Nov 4, from the daily figures
    days = {e["date"]: Decimal(e["totalCost"]) for s in search for e in s["daily"]}
    last = sum(days[f"2026-11-{d:02d}"] for d in range(5, 12))
    before = sum(days[f"2026-10-{d:02d}"] for d in range(29, 32)) + sum(
        days[f"2026-11-{d:02d}"] for d in range(1, 5)
    )
    assert (amount(rows["search"][3]), amount(rows["search"][4])) == (last, before)
    assert amount(rows["search"][5]) == last - before
    assert rows["search"][6] == f"+{(last - before) * 100 / before:.1f} %"
    assert "the last 7 complete days (Nov 05–Nov 11)" in page
    # the day still running (Nov 12, through noon) is drawn hollow and said so
    assert "through 2026-11-12 12:00 UTC (day still running)" in page


def test_without_daily_figures_the_trend_says_so_and_bad_entries_are_skipped() -> None:
    assert "No daily figures" in render_showback(reports(), NOW)
    hostile = reports()
    for report_ in hostile:
        report_["status"]["daily"] = [
            {"date": "<script>", "totalCost": "1"},
            {"date": "2026-11-01", "totalCost": "NaN"},
            {"date": "2026-11-02", "totalCost": "12.50"},
            "not an entry",
        ]
    page = render_showback(hostile, NOW)
    assert "<script>" not in page and "No daily figures" not in page
    assert "Week over week: not enough history." in page


def test_a_partial_month_is_labelled_and_the_page_shows_unit_economics() -> None:
    from tests.views.costreports import report

    cluster = report(
        "cluster",
        "2026-11",
        None,
        "900.00",
        "700.00",
        partialPeriod=True,
        dataFrom="2026-11-07T00:00:00Z",
        forecastTotalCost="1234.56",
        tokens=2_000_000,
        costPerBusyGpuHour="8.7500",
        costPer1kTokens="0.0050",
        breakdowns={
            "environment": [
                {
                    "name": "prod",
                    "gpuHours": 10.0,
                    "gpuCost": "70.00",
                    "idleGpuHours": 1.0,
                    "idleCost": "7.00",
                }
            ]
        },
    )
    team = report(
        "team",
        "2026-11",
        "search",
        "415.00",
        "300.00",
        budgetBasis="GPU cost",
        tokens=5,
        costPer1kTokens="0.0100",
    )
    page = render_showback([cluster, team], NOW)
    text = html.unescape(re.sub(r"<[^>]+>", " ", page))
    assert "Partial month : data from 2026-11-07T00:00:00Z through 2026-11-27T11:00:00Z" in (
        " ".join(text.split())
    )
    assert "1,234.56 USD" in text and "month-end forecast" in text.lower()
    assert "idle GPU cost" in text and "80.00 USD" in text  # idle money, not only hours
    assert "8.7500 USD / GPU-hour" in text and "0.0050 USD / 1k tokens" in text
    assert "2,000,000" in text and "GPU cost" in text
    assert "By environment" in text and "prod" in text
    whole = render_showback([report("cluster", "2026-11", None, "1.00", "1.00")], NOW)
    assert "Partial month" not in whole
