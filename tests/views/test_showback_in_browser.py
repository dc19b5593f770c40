"""The showback page as a browser shows it: headless Chromium lays it out, and the test
reads the trend's lines and the tables' text from it (issue 10's "Done when").

What must hold in the rendered page: a line per team and one for the cluster, each
with a point per day and a real extent on screen; each team's total over the days
shown equal to its totals in the period tables; week over week in words; and in
every period, cost centers adding up to the cluster total, to the cent. Every money
figure the browser shows carries the currency.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from finops_operator.views.showback_html import render_showback
from tests.support.headless_chromium import Chromium, needs_chromium
from tests.views.daily_reports import THROUGH, one_month, two_months

pytestmark = needs_chromium

# What the test asks the browser: geometry of every trend line and the text of the tables.
READ_PAGE = """
(() => {
  const cells = (row) => [...row.querySelectorAll('td, th')].map((c) => c.innerText.trim());
  const table = (selector) =>
    [...document.querySelectorAll(selector)].map((t) => [...t.querySelectorAll('tr')].map(cells));
  return {
    lines: [...document.querySelectorAll('svg polyline.trend-line')].map((line) => {
      const box = line.getBBox();
      const shown = line.getBoundingClientRect();
      const row = line.closest('tr');
      return {
        team: row ? row.dataset.team : null,
        points: line.points.numberOfItems,
        width: box.width,
        height: box.height,
        length: line.getTotalLength(),
        shownWidth: shown.width,
        visible: getComputedStyle(line).visibility === 'visible' && shown.width > 0,
      };
    }),
    trend: [...document.querySelectorAll('table.trend tr[data-team]')].map((row) => ({
      team: row.dataset.team,
      cells: cells(row),
    })),
    periods: [...document.querySelectorAll('h2[id^="period-"]')].map((h) => h.innerText),
    teams: table('table.teams'),
    costCenters: table('table.cost-centers'),
    wow: (document.querySelector('p.wow-total, p.wow-missing') || {}).innerText || '',
    text: document.body.innerText,
  };
})()
"""
MONEY = re.compile(r"(?<![\d.,])-?\d{1,3}(?:,\d{3})*\.\d{2}(?![\d%])(?! ?%)")


def amount(text: str, currency: str = "USD") -> Decimal:
    figure, _, code = text.rpartition(" ")
    assert code == currency, text
    return Decimal(figure.replace(",", "").lstrip("+"))


@pytest.fixture(scope="module")
def browser() -> Iterator[Chromium]:
    with Chromium() as chromium:
        yield chromium


def shown(browser: Chromium, reports: list[dict[str, Any]], tmp_path: Path) -> dict[str, Any]:
    page = tmp_path / "showback.html"
    page.write_text(render_showback(reports, THROUGH), encoding="utf-8")
    result: dict[str, Any] = browser.evaluate(page, READ_PAGE)
    return result


def test_the_browser_shows_a_daily_line_per_team_adding_up_to_the_period_tables(
    browser: Chromium, tmp_path: Path
) -> None:
    page = shown(browser, two_months(), tmp_path)
    days = (THROUGH.date() - datetime.date(2026, 10, 1)).days + 1  # Oct 1 to Nov 12
    # a line per team (and untagged, and the cluster) in the table, and the cluster chart
    teams = [row["team"] for row in page["trend"]]
    assert teams[-1] == "cluster" and {"search", "recsys", "vision", "untagged"} <= set(teams)
    by_team = {line["team"]: line for line in page["lines"] if line["team"]}
    assert set(by_team) == set(teams)
    assert sum(1 for line in page["lines"] if line["team"] is None) == 1  # the big chart
    for line in page["lines"]:
        assert line["points"] == days, line
        assert line["visible"] and line["width"] > 100 and line["length"] > line["width"], line
    assert by_team["search"]["height"] > 0  # its spend moved: the line is not flat
    # each team's total over the days shown = its totals in the months' tables
    assert page["periods"] == ["2026-11", "2026-10"]
    from_tables: dict[str, Decimal] = {}
    for rows in page["teams"]:
        for name, *cells in rows[1:]:
            team = {"untagged (no team label)": "untagged", "cluster total": "cluster"}.get(
                name, name
            )
            from_tables[team] = from_tables.get(team, Decimal(0)) + amount(cells[6])
    trend_totals = {row["team"]: amount(row["cells"][2]) for row in page["trend"]}
    assert trend_totals == from_tables
    # week over week, in words and per team: search's GPU hours rose by half on Nov 5
    assert page["wow"].startswith("Week over week: the last 7 complete days (Nov 05–Nov 11)")
    search = next(row["cells"] for row in page["trend"] if row["team"] == "search")
    assert amount(search[5]) == amount(search[3]) - amount(search[4]) > 0
    assert search[6].startswith("+") and search[6].endswith(" %")


def test_the_browser_shows_cost_centers_adding_up_to_the_cluster_total(
    browser: Chromium, tmp_path: Path
) -> None:
    page = shown(browser, two_months(), tmp_path)
    assert len(page["costCenters"]) == 2  # one table per month
    for rows, teams in zip(page["costCenters"], page["teams"], strict=True):
        header, *centers, total = rows
        assert header[0] == "Cost center" and total[0] == "cluster total"
        assert {row[0] for row in centers} >= {"cc-1042", "cc-2001"}
        for column in range(2, 6):  # GPU, token, shared, total
            assert sum(amount(row[column]) for row in centers) == amount(total[column])
        cluster_row = next(row for row in teams if row[0] == "cluster total")
        assert amount(total[5]) == amount(cluster_row[7])


def test_every_money_figure_the_browser_shows_carries_the_currency(
    browser: Chromium, tmp_path: Path
) -> None:
    text = shown(browser, two_months(), tmp_path)["text"]
    figures = list(MONEY.finditer(text))
    assert len(figures) > 100
    for match in figures:
        assert text[match.end() : match.end() + 4] == " USD", text[
            match.start() - 40 : match.end() + 10
        ]


def test_with_fewer_than_fourteen_days_the_browser_says_there_is_not_enough_history(
    browser: Chromium, tmp_path: Path
) -> None:
    through = datetime.datetime(2026, 11, 10, 6, 0, tzinfo=datetime.UTC)
    page = shown(browser, one_month(through), tmp_path)
    assert page["wow"].startswith("Week over week: not enough history.")
    # Nov 1 to 9 are over, the first day with figures is never counted (it may be partial)
    assert "these reports have 8 complete days in a row (through 2026-11-09)" in page["wow"]
    for row in page["trend"]:
        assert row["cells"][3:] == ["–", "–", "–", "–"]
    assert all(line["points"] == 10 and line["visible"] for line in page["lines"])
