"""A showback report a person can open: one self-contained HTML file from CostReports.

`render_showback(reports, generated)` takes CostReport objects as the operator
writes them (any mix of periods; one section per period, newest first) and
returns an HTML page with inline CSS and an inline SVG chart, no scripts and no
external assets, so it can be mailed or attached to a ticket as it is:

- daily spend over all the reports' days (their `status.daily`, merged across
  months): the cluster's line, a line per team with its total, and week-over-week
  change (the last 7 complete days against the 7 before, per team and in total,
  from `domain.costs.trend`), or a plain "not enough history" when there are
  fewer than 14 complete days in a row;
- the period's headline figures: total spend, GPU hours, idle share, untagged
  spend, capacity nobody allocated;
- cost by team as stacked bars (busy GPU, idle GPU, tokens, shared);
- the per-team table with idle and budget use, untagged and cluster rows;
- spend by cost center, the costliest training runs, and what untagged spend is.

Every money figure carries its currency code (`1,234.56 USD`, the pricing
currency the reports were written in). Plain function over plain dicts; every
value from a report is escaped.
"""

from __future__ import annotations

import datetime
import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, Final

from finops_operator.domain.costs.trend import (
    Change,
    NotEnoughHistory,
    WeekOverWeek,
    week_over_week,
)

UNTAGGED: Final = "__untagged__"
COLORS: Final = {
    "busy": "#2f6fb3",
    "idle": "#e39b3b",
    "tokens": "#6aa84f",
    "shared": "#9a9a9a",
}
CSS: Final = """
body { font: 14px/1.45 -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif;
       color: #1d2733; margin: 2rem auto; max-width: 1100px; padding: 0 1rem; }
h1 { font-size: 1.6rem; margin-bottom: .2rem; }
h2 { font-size: 1.3rem; margin-top: 2.5rem; border-bottom: 2px solid #dde3ea; }
h3 { font-size: 1.05rem; margin-top: 1.8rem; }
.muted { color: #66717d; }
.partial { background: #fff4d6; border-left: 4px solid #d99a00; padding: .4rem .7rem; }
.cards { display: flex; flex-wrap: wrap; gap: .8rem; margin: 1rem 0; }
.card { border: 1px solid #dde3ea; border-radius: 6px; padding: .6rem .9rem; min-width: 150px; }
.card .value { font-size: 1.35rem; font-weight: 600; }
.card .label { color: #66717d; font-size: .85rem; }
table { border-collapse: collapse; width: 100%; margin: .5rem 0 1rem; }
th, td { padding: .35rem .6rem; border-bottom: 1px solid #e6ebf0; text-align: right; }
th { background: #f4f6f9; font-weight: 600; }
th:first-child, td:first-child { text-align: left; }
tr.untagged td { background: #fff4e5; }
tr.total td { font-weight: 600; border-top: 2px solid #c9d1da; }
table.trend td, table.cost-centers td, table.teams td { white-space: nowrap; }
table.teams { font-size: .85em; }
table.teams td:first-child { white-space: normal; }
td.up { color: #b03a2e; }
td.down { color: #1e7b45; }
p.wow-missing { background: #fff4e5; padding: .5rem .8rem; border-radius: 4px; }
.bar { display: inline-block; height: .6rem; background: #2f6fb3; vertical-align: middle; }
.bar.over { background: #c0392b; }
.legend span { display: inline-block; margin-right: 1rem; }
.swatch { display: inline-block; width: .8rem; height: .8rem; margin-right: .3rem;
          vertical-align: -1px; }
footer { margin-top: 3rem; color: #66717d; font-size: .85rem; }
"""


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _money(value: Any) -> Decimal:
    """An amount from a report; 0 for what is not a finite number (the CRD's pattern
    keeps those out, but the page never fails on one)."""
    try:
        amount = Decimal(str(value)) if value is not None else Decimal(0)
    except InvalidOperation:
        return Decimal(0)
    return amount if amount.is_finite() else Decimal(0)


def _fmt_money(amount: Decimal, currency: str) -> str:
    """An amount for people, always with its currency code: `1,234.56 USD`."""
    return f"{amount:,.2f} {currency}"


def _fmt_hours(value: Any) -> str:
    return f"{float(value or 0):,.1f}"


def _fmt_percent(value: Any) -> str:
    return "–" if value is None else f"{float(value):.1f} %"


def _team_label(report: Mapping[str, Any]) -> str:
    spec = report.get("spec") or {}
    if spec.get("scope") == "untagged":
        return "untagged"
    if spec.get("scope") == "cluster":
        return "cluster"
    return str(spec.get("team", ""))


def _by_period(reports: Sequence[Mapping[str, Any]]) -> dict[str, list[Mapping[str, Any]]]:
    periods: dict[str, list[Mapping[str, Any]]] = {}
    for report in reports:
        if not report.get("status"):
            continue
        period = str((report.get("spec") or {}).get("period", ""))
        periods.setdefault(period, []).append(report)
    return dict(sorted(periods.items(), reverse=True))


def _chart(rows: Sequence[Mapping[str, Any]], currency: str) -> str:
    """Horizontal stacked bars of total cost by team, as inline SVG."""
    if not rows:
        return ""
    label_width, bar_width, row_height, value_width = 170, 680, 24, 130
    height = row_height * len(rows) + 10
    top = max((_money(r["status"].get("totalCost")) for r in rows), default=Decimal(0))
    scale = Decimal(bar_width) / top if top > 0 else Decimal(0)
    width = label_width + bar_width + value_width
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" aria-label="Cost by team">'
    ]
    for index, report in enumerate(rows):
        status = report["status"]
        gpu, idle = _money(status.get("gpuCost")), _money(status.get("idleCost"))
        segments = [
            ("busy", max(gpu - idle, Decimal(0))),
            ("idle", idle),
            ("tokens", _money(status.get("tokenCost"))),
            ("shared", _money(status.get("sharedCost"))),
        ]
        y = 5 + index * row_height
        name = _team_label(report)
        parts.append(
            f'<text x="{label_width - 8}" y="{y + 15}" text-anchor="end" font-size="12">'
            f"{_e(name)}</text>"
        )
        x = Decimal(label_width)
        for kind, amount in segments:
            w = amount * scale
            if w > 0:
                parts.append(
                    f'<rect x="{x:.1f}" y="{y + 3}" width="{w:.1f}" height="{row_height - 8}" '
                    f'fill="{COLORS[kind]}"><title>{_e(name)}: {kind} '
                    f"{_e(_fmt_money(amount, currency))}</title></rect>"
                )
            x += w
        parts.append(
            f'<text x="{x + 6:.1f}" y="{y + 15}" font-size="12">'
            f"{_e(_fmt_money(_money(status.get('totalCost')), currency))}</text>"
        )
    parts.append("</svg>")
    legend = "".join(
        f'<span><i class="swatch" style="background:{color}"></i>{_e(text)}</span>'
        for text, color in (
            ("GPU, in use", COLORS["busy"]),
            ("GPU, allocated but idle", COLORS["idle"]),
            ("LLM tokens", COLORS["tokens"]),
            ("shared platform", COLORS["shared"]),
        )
    )
    return "".join(parts) + f'<p class="legend">{legend}</p>'


def _budget_cell(status: Mapping[str, Any], currency: str) -> tuple[str, str]:
    budget = status.get("budget")
    used = status.get("budgetUsedPercent")
    if budget is None or used is None:
        return "–", "–"
    width = min(float(used), 100.0)
    over = " over" if float(used) >= 100 else ""
    bar = f'<span class="bar{over}" style="width:{width * 0.6:.0f}px"></span>'
    return _e(_fmt_money(_money(budget), currency)), f"{bar} {_e(_fmt_percent(used))}"


def _team_table(
    teams: Sequence[Mapping[str, Any]],
    untagged: Mapping[str, Any] | None,
    cluster: Mapping[str, Any] | None,
    currency: str,
) -> str:
    head = (
        "<tr><th>Team</th><th>GPU hours</th><th>GPU cost</th><th>Idle GPU hours</th>"
        "<th>Idle %</th><th>Token cost</th><th>Shared cost</th><th>Total</th>"
        "<th>Budget</th><th>Budget used</th></tr>"
    )
    body = []
    for report in [*teams, *([untagged] if untagged else []), *([cluster] if cluster else [])]:
        status = report["status"]
        scope = (report.get("spec") or {}).get("scope")
        css = {"untagged": ' class="untagged"', "cluster": ' class="total"'}.get(str(scope), "")
        budget, used = _budget_cell(status, currency) if scope == "team" else ("–", "–")
        name = _team_label(report)
        if scope == "untagged":
            name = "untagged (no team label)"
        elif scope == "cluster":
            name = "cluster total"
        body.append(
            f"<tr{css}><td>{_e(name)}</td>"
            f"<td>{_fmt_hours(status.get('gpuHours'))}</td>"
            f"<td>{_e(_fmt_money(_money(status.get('gpuCost')), currency))}</td>"
            f"<td>{_fmt_hours(status.get('idleGpuHours'))}</td>"
            f"<td>{_e(_fmt_percent(status.get('idlePercent')))}</td>"
            f"<td>{_e(_fmt_money(_money(status.get('tokenCost')), currency))}</td>"
            f"<td>{_e(_fmt_money(_money(status.get('sharedCost')), currency))}</td>"
            f"<td>{_e(_fmt_money(_money(status.get('totalCost')), currency))}</td>"
            f"<td>{budget}</td><td>{used}</td></tr>"
        )
    return f'<table class="teams">{head}{"".join(body)}</table>'


def _partial_label(status: Mapping[str, Any]) -> str:
    """A partial month says so, with the span of its data: finance must not read it
    as a whole month (the first month with data starts when the operator did)."""
    if not status.get("partialPeriod"):
        return ""
    return (
        f'<p class="partial"><strong>Partial month</strong>: data from '
        f"{_e(status.get('dataFrom', ''))} through {_e(status.get('dataThrough', ''))} (UTC).</p>"
    )


def _per_unit(value: Any, currency: str, unit: str) -> str:
    if value is None:
        return "–"
    return f"{_e(value)} {_e(currency)} {_e(unit)}"


def _unit_table(
    teams: Sequence[Mapping[str, Any]], cluster: Mapping[str, Any] | None, currency: str
) -> str:
    """Unit economics per team: idle money, cost per busy GPU-hour, tokens, cost per
    1k tokens, the month-end forecast and what the budget counts."""
    head = (
        "<tr><th>Team</th><th>Idle GPU cost</th><th>Cost per busy GPU-hour</th>"
        "<th>Tokens</th><th>Cost per 1k tokens</th><th>Month-end forecast</th>"
        "<th>Budget counts</th></tr>"
    )
    body = []
    for report in [*teams, *([cluster] if cluster else [])]:
        status = report["status"]
        scope = (report.get("spec") or {}).get("scope")
        name = "cluster total" if scope == "cluster" else _team_label(report)
        forecast = status.get("forecastTotalCost")
        css = ' class="total"' if scope == "cluster" else ""
        body.append(
            f"<tr{css}><td>{_e(name)}</td>"
            f"<td>{_e(_fmt_money(_money(status.get('idleCost')), currency))}</td>"
            f"<td>{_per_unit(status.get('costPerBusyGpuHour'), currency, '/ GPU-hour')}</td>"
            f"<td>{int(status.get('tokens') or 0):,}</td>"
            f"<td>{_per_unit(status.get('costPer1kTokens'), currency, '/ 1k tokens')}</td>"
            f"<td>{_e(_fmt_money(_money(forecast), currency)) if forecast else '–'}</td>"
            f"<td>{_e(status.get('budgetBasis', '–'))}</td></tr>"
        )
    return f'<table class="units">{head}{"".join(body)}</table>'


def _breakdown_table(entries: Sequence[Mapping[str, Any]], title: str, currency: str) -> str:
    if not entries:
        return ""
    rows = "".join(
        f"<tr><td>{_e(entry.get('name', ''))}</td><td>{_fmt_hours(entry.get('gpuHours'))}</td>"
        f"<td>{_e(_fmt_money(_money(entry.get('gpuCost')), currency))}</td>"
        f"<td>{_e(_fmt_money(_money(entry.get('idleCost')), currency))}</td></tr>"
        for entry in entries
    )
    return (
        f"<table><tr><th>{_e(title)}</th><th>GPU hours</th><th>GPU cost</th>"
        f"<th>of which idle</th></tr>{rows}</table>"
    )


def _cost_center_table(
    centers: Sequence[Mapping[str, Any]], cluster: Mapping[str, Any], currency: str
) -> str:
    """All AI spend by cost center (GPU, tokens, shared), then the shared cost no team
    received and the cluster total the rows add up to. CostReports written before
    breakdowns carried token and shared cost give the GPU-only table."""
    if not all("totalCost" in entry for entry in centers):
        note = (
            '<p class="muted">GPU cost only: these CostReports predate token and '
            "shared cost by cost center.</p>"
        )
        return _breakdown_table(centers, "Cost center", currency) + note

    def line(css: str, name: str, hours: str, figures: Mapping[str, Any]) -> str:
        cells = "".join(
            f'<td class="{key}">{_e(_fmt_money(_money(figures.get(key)), currency))}</td>'
            for key in ("gpuCost", "tokenCost", "sharedCost", "totalCost")
        )
        return f'<tr{css}><td class="name">{_e(name)}</td><td>{hours}</td>{cells}</tr>'

    rows = [
        line("", str(entry.get("name", "")), _fmt_hours(entry.get("gpuHours")), entry)
        for entry in centers
    ]
    undistributed = _money((cluster.get("cluster") or {}).get("undistributedCost"))
    if undistributed:
        rest = {"sharedCost": undistributed, "totalCost": undistributed}
        rows.append(line(' class="undistributed"', "shared, not distributed", "–", rest))
    rows.append(
        line(' class="total"', "cluster total", _fmt_hours(cluster.get("gpuHours")), cluster)
    )
    return (
        '<table class="cost-centers"><tr><th>Cost center</th><th>GPU hours</th>'
        "<th>GPU cost</th><th>Token cost</th><th>Shared cost</th>"
        f"<th>Total</th></tr>{''.join(rows)}</table>"
        '<p class="muted">All AI spend: a team\'s token and shared cost are placed on its '
        "cost centers in proportion to its GPU cost in each.</p>"
    )


def _training_runs(
    cluster: Mapping[str, Any] | None, teams: Sequence[Mapping[str, Any]], currency: str
) -> str:
    runs = list(((cluster or {}).get("status") or {}).get("topWorkloads") or [])
    if not runs:
        return '<p class="muted">No training runs (Jobs) in this period.</p>'
    owner = {}
    for report in teams:
        for run in (report.get("status") or {}).get("topWorkloads") or []:
            owner[(run.get("namespace"), run.get("name"))] = _team_label(report)
    rows = "".join(
        f"<tr><td>{_e(run.get('namespace', ''))}/{_e(run.get('name', ''))}</td>"
        f"<td>{_e(owner.get((run.get('namespace'), run.get('name')), '–'))}</td>"
        f"<td>{_fmt_hours(run.get('gpuHours'))}</td>"
        f"<td>{_e(_fmt_money(_money(run.get('cost')), currency))}</td></tr>"
        for run in runs
    )
    return f"<table><tr><th>Job</th><th>Team</th><th>GPU hours</th><th>Cost</th></tr>{rows}</table>"


# ---------------------------------------------------------------- daily trend


@dataclass
class _Series:
    """Daily spend of the reports given, by row, merged over their periods."""

    currency: str = "USD"
    teams: dict[str, dict[datetime.date, Decimal]] = field(default_factory=dict)
    total: dict[datetime.date, Decimal] = field(default_factory=dict)
    complete: set[datetime.date] = field(default_factory=set)
    running: dict[datetime.date, str] = field(default_factory=dict)  # day -> through when

    @property
    def dates(self) -> list[datetime.date]:
        return sorted(self.total)


def _date(text: Any) -> datetime.date | None:
    try:
        return datetime.date.fromisoformat(str(text))
    except ValueError:
        return None


def _moment(text: Any) -> datetime.datetime | None:
    try:
        moment = datetime.datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=datetime.UTC)


def _days(status: Mapping[str, Any]) -> dict[datetime.date, Decimal]:
    days: dict[datetime.date, Decimal] = {}
    for entry in status.get("daily") or []:
        day = _date(entry.get("date")) if isinstance(entry, Mapping) else None
        if day is not None:
            days[day] = _money(entry.get("totalCost"))
    return days


def _series(periods: Mapping[str, Sequence[Mapping[str, Any]]]) -> _Series:
    """The daily figures of every report; a day counts as complete when its cluster
    report's figures reach its end (`dataThrough`) and it is not the first day with
    figures."""
    series = _Series()
    for reports in periods.values():
        for report in reports:
            status = report["status"]
            scope = (report.get("spec") or {}).get("scope")
            days = _days(status)
            if not days:
                continue
            series.currency = str(status.get("currency", series.currency))
            if scope == "cluster":
                through = _moment(status.get("dataThrough"))
                for day, amount in days.items():
                    series.total[day] = amount
                    end = datetime.datetime.combine(
                        day + datetime.timedelta(days=1), datetime.time(), datetime.UTC
                    )
                    if through is not None and end <= through:
                        series.complete.add(day)
                    elif through is not None:
                        series.running[day] = f"{through:%Y-%m-%d %H:%M} UTC"
            else:
                name = "untagged" if scope == "untagged" else _team_label(report)
                series.teams.setdefault(name, {}).update(days)
    if series.total:
        # The first day with figures may hold only part of a day (the operator was
        # installed, or Prometheus started, in its middle): never compared.
        series.complete.discard(min(series.total))
    return series


def _nice_ceiling(value: Decimal) -> Decimal:
    """The smallest 1, 2 or 5 x 10^k at least `value` (the top of a chart's scale)."""
    if value <= 0:
        return Decimal(1)
    power = Decimal(10) ** (value.adjusted())
    for step in (1, 2, 5, 10):
        if value <= power * step:
            return power * step
    return power * 10


def _points(
    values: Sequence[Decimal], box: tuple[float, float, float, float], top: Decimal
) -> list[tuple[float, float]]:
    """Coordinates of `values` spread over `box` (left, top, width, height): the first
    day at its left edge, the last at its right, 0 at its bottom and `top` at its top."""
    left, upper, width, height = box
    count = len(values)
    step = width / (count - 1) if count > 1 else 0.0
    return [
        (
            left + (index * step if count > 1 else width / 2),
            upper + height - (float(value / top) * height if top > 0 else 0.0),
        )
        for index, value in enumerate(values)
    ]


def _polyline(points: Sequence[tuple[float, float]], width: float) -> str:
    coordinates = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
    return (
        f'<polyline class="trend-line" fill="none" stroke="{COLORS["busy"]}" '
        f'stroke-width="{width}" points="{coordinates}"/>'
    )


def _total_chart(series: _Series) -> str:
    """The cluster's spend per day: a line with its points, a scale in the currency."""
    dates = series.dates
    values = [series.total[day] for day in dates]
    top = _nice_ceiling(max(values, default=Decimal(0)))
    left, right, plot_top, plot_height, bottom = 96, 16, 12, 180, 40
    plot_width = 760
    width, height = left + plot_width + right, plot_top + plot_height + bottom
    cur = series.currency
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" class="trend-total" '
        f'width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        f'aria-label="Cluster spend per day, in {_e(cur)}">'
    ]
    for tick in range(5):
        amount = top * tick / 4
        y = plot_top + plot_height - plot_height * tick / 4
        parts.append(
            f'<line x1="{left}" x2="{left + plot_width}" y1="{y:.1f}" y2="{y:.1f}" '
            f'stroke="#e6ebf0"/><text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" '
            f'font-size="11">{_e(_fmt_money(amount, cur))}</text>'
        )
    points = _points(values, (left, plot_top, plot_width, plot_height), top)
    parts.append(_polyline(points, 2))
    label_every = max(1, len(dates) // 10)
    for index, (day, (x, y)) in enumerate(zip(dates, points, strict=True)):
        running = series.running.get(day)
        note = f", through {running} (day still running)" if running else ""
        fill = "#fff" if running or day not in series.complete else COLORS["busy"]
        parts.append(
            f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{fill}" stroke="{COLORS["busy"]}">'
            f"<title>{day:%Y-%m-%d}: {_e(_fmt_money(series.total[day], cur))}{_e(note)}"
            "</title></circle>"
        )
        last = index == len(dates) - 1 and index % label_every > label_every // 2
        if index % label_every == 0 or last:
            parts.append(
                f'<text x="{x:.1f}" y="{plot_top + plot_height + 16}" text-anchor="middle" '
                f'font-size="11">{day:%b %d}</text>'
            )
    parts.append("</svg>")
    return "".join(parts)


def _sparkline(name: str, values: Sequence[Decimal], currency: str) -> str:
    width, height = 180, 34
    top = max(values, default=Decimal(0))
    points = _points(values, (2, 3, width - 4, height - 6), top)
    peak = _fmt_money(top, currency)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="sparkline" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{_e(name)}: spend per day, at most {_e(peak)}">'
        f"{_polyline(points, 1.5)}"
        f"<title>{_e(name)}: at most {_e(peak)} a day</title></svg>"
    )


def _change_cells(change: Change | None, currency: str) -> str:
    if change is None:
        return '<td class="wow">–</td><td class="wow">–</td><td class="wow">–</td><td>–</td>'
    amount = change.amount
    sign = "+" if amount > 0 else ""
    percent = change.percent
    if percent is None:
        text = "new" if change.last_week > 0 else "–"
    else:
        text = f"{'+' if percent > 0 else ''}{percent:.1f} %"
    css = "up" if amount > 0 else "down" if amount < 0 else "flat"
    return (
        f'<td class="last-week">{_e(_fmt_money(change.last_week, currency))}</td>'
        f'<td class="week-before">{_e(_fmt_money(change.week_before, currency))}</td>'
        f'<td class="change {css}">{sign}{_e(_fmt_money(amount, currency))}</td>'
        f'<td class="change-percent {css}">{_e(text)}</td>'
    )


def _wow_sentence(wow: WeekOverWeek | NotEnoughHistory, currency: str) -> str:
    if isinstance(wow, NotEnoughHistory):
        have = (
            f"{wow.complete_days} complete day{'s' if wow.complete_days != 1 else ''} in a row"
            + (f" (through {wow.last_day:%Y-%m-%d})" if wow.last_day else "")
        )
        return (
            '<p class="wow-missing"><strong>Week over week: not enough history.</strong> '
            f"It compares the last 7 complete days with the 7 before, so it needs "
            f"{wow.needed} complete days of figures in a row; these reports have {_e(have)}."
            "</p>"
        )
    total = wow.total
    percent = total.percent
    change = (
        "no change"
        if total.amount == 0
        else (
            f"{'up' if total.amount > 0 else 'down'} "
            f"{_e(_fmt_money(abs(total.amount), currency))}"
            + (f" ({abs(percent):.1f} %)" if percent is not None else "")
        )
    )
    first, last = wow.last_week
    before_first, before_last = wow.week_before
    return (
        f'<p class="wow-total"><strong>Week over week:</strong> the last 7 complete days '
        f"({first:%b %d}–{last:%b %d}) cost {_e(_fmt_money(total.last_week, currency))}, "
        f"{change} on the 7 days before ({before_first:%b %d}–{before_last:%b %d}, "
        f"{_e(_fmt_money(total.week_before, currency))}).</p>"
    )


def _trend(periods: Mapping[str, Sequence[Mapping[str, Any]]]) -> str:
    """Daily spend over the reports' days: the cluster's line, a line per team with its
    total over the days shown, and week-over-week change (docs/cost-model.md)."""
    series = _series(periods)
    out = ['<h2 id="trend">Daily spend</h2>']
    if not series.total:
        out.append(
            '<p class="muted">No daily figures: these CostReports were written before '
            "reports carried their spend per day.</p>"
        )
        return "\n".join(out)
    dates = series.dates
    cur = series.currency
    wow = week_over_week(series.teams, series.total, series.complete)
    out.append(
        f'<p class="muted">Spend per day (UTC) from {dates[0]:%Y-%m-%d} to '
        f"{dates[-1]:%Y-%m-%d}, all AI spend (GPU, tokens, shared), in {_e(cur)}. "
        "A hollow point is a day whose figures are not whole yet.</p>"
    )
    out.append(_total_chart(series))
    out.append(_wow_sentence(wow, cur))
    changes = wow.teams if isinstance(wow, WeekOverWeek) else {}
    ranked = sorted(
        series.teams.items(),
        key=lambda item: (-sum(item[1].values(), Decimal(0)), item[0]),
    )
    head = (
        '<table class="trend"><tr><th>Team</th><th>Spend per day</th>'
        f"<th>Total {dates[0]:%b %d}–{dates[-1]:%b %d}</th>"
        "<th>Last 7 days</th><th>7 days before</th><th>Change</th><th>Change %</th></tr>"
    )
    rows = []
    for name, days in ranked:
        values = [days.get(day, Decimal(0)) for day in dates]
        total = sum(values, Decimal(0))
        css = ' class="untagged"' if name == "untagged" else ""
        rows.append(
            f'<tr{css} data-team="{_e(name)}"><td class="name">{_e(name)}</td>'
            f"<td>{_sparkline(name, values, cur)}</td>"
            f'<td class="total">{_e(_fmt_money(total, cur))}</td>'
            f"{_change_cells(changes.get(name) if changes else None, cur)}</tr>"
        )
    grand = sum((series.total[day] for day in dates), Decimal(0))
    total_change = wow.total if isinstance(wow, WeekOverWeek) else None
    rows.append(
        '<tr class="total" data-team="cluster"><td class="name">cluster total</td>'
        f"<td>{_sparkline('cluster total', [series.total[d] for d in dates], cur)}</td>"
        f'<td class="total">{_e(_fmt_money(grand, cur))}</td>'
        f"{_change_cells(total_change, cur)}</tr>"
    )
    out.append(head + "".join(rows) + "</table>")
    out.append(
        '<p class="muted">A team\'s days add up to its total in the period tables below '
        "(to the cent); the cluster total also holds shared cost no team received. Change: "
        "the last 7 complete days against the 7 before; a team that spent nothing the week "
        "before shows <em>new</em>.</p>"
    )
    return "\n".join(out)


def _card(value: str, label: str) -> str:
    return (
        f'<div class="card"><div class="value">{value}</div><div class="label">{label}</div></div>'
    )


def _section(period: str, reports: Sequence[Mapping[str, Any]]) -> str:
    by_scope: dict[str, list[Mapping[str, Any]]] = {}
    for report in reports:
        by_scope.setdefault(str((report.get("spec") or {}).get("scope")), []).append(report)
    teams = sorted(
        by_scope.get("team", []),
        key=lambda r: (-_money(r["status"].get("totalCost")), _team_label(r)),
    )
    untagged = next(iter(by_scope.get("untagged", [])), None)
    cluster = next(iter(by_scope.get("cluster", [])), None)
    any_status = (
        (cluster or untagged or teams[0])["status"] if (cluster or untagged or teams) else {}
    )
    currency = str(any_status.get("currency", "USD"))
    through = any_status.get("dataThrough", "")
    out = [f'<h2 id="period-{_e(period)}">{_e(period)}</h2>']
    out.append(f'<p class="muted">Figures through {_e(through)} (UTC), in {_e(currency)}.</p>')
    out.append(_partial_label(any_status))
    if cluster:
        status = cluster["status"]
        total = _money(status.get("totalCost"))
        gpu_cost = _money(status.get("gpuCost"))
        untagged_cost = _money(((untagged or {}).get("status") or {}).get("totalCost"))
        share = f"{untagged_cost * 100 / total:.1f} % of spend" if total > 0 else ""
        extra = status.get("cluster") or {}
        capacity = float(extra.get("capacityGpuHours") or 0)
        used = float(status.get("gpuHours") or 0)
        allocated = f"{used * 100 / capacity:.0f} %" if capacity else "–"
        out.append('<div class="cards">')
        out.append(_card(_e(_fmt_money(total, currency)), "total spend"))
        out.append(_card(_e(_fmt_money(gpu_cost, currency)), "GPU cost"))
        out.append(_card(_e(_fmt_hours(status.get("gpuHours"))), "GPU hours"))
        out.append(_card(_e(_fmt_percent(status.get("idlePercent"))), "of GPU hours idle"))
        out.append(_card(_e(_fmt_money(untagged_cost, currency)), f"untagged spend {_e(share)}"))
        out.append(_card(_e(allocated), "of GPU capacity allocated"))
        out.append(_card(_e(_fmt_money(_money(status.get("idleCost")), currency)), "idle GPU cost"))
        if status.get("forecastTotalCost"):
            forecast = _money(status.get("forecastTotalCost"))
            out.append(_card(_e(_fmt_money(forecast, currency)), "month-end forecast"))
        out.append("</div>")
    chart_rows = [*teams, *([untagged] if untagged else [])]
    out.append("<h3>Cost by team</h3>")
    out.append(_chart(chart_rows, currency))
    out.append("<h3>Teams</h3>")
    out.append(_team_table(teams, untagged, cluster, currency))
    out.append(
        '<p class="muted">Idle: GPU hours allocated but unused (already part of GPU cost). '
        "Shared: the platform's monthly cost and GPU capacity nobody allocated, spread "
        "in proportion to GPU cost. Budget: from the team's CostPolicy.</p>"
    )
    out.append("<h3>Unit economics</h3>")
    out.append(_unit_table(teams, cluster, currency))
    out.append(
        '<p class="muted">Cost per busy GPU-hour: GPU cost, idle included, over the hours '
        "the GPUs worked. Forecast: the month's total at the run rate of its data so far. "
        "Budget counts: what the budget % compares (the CostPolicy's scope, or all-in).</p>"
    )
    if cluster:
        breakdowns = cluster["status"].get("breakdowns") or {}
        centers = breakdowns.get("costCenter") or []
        if centers:
            out.append("<h3>By cost center</h3>")
            out.append(_cost_center_table(centers, cluster["status"], currency))
        for key, title in (
            ("feature", "Feature"),
            ("environment", "Environment"),
            ("workloadType", "Workload type"),
        ):
            if breakdowns.get(key):
                out.append(f"<h3>By {title.lower()}</h3>")
                out.append(_breakdown_table(breakdowns[key], title, currency))
    out.append("<h3>Costliest training runs</h3>")
    out.append(_training_runs(cluster, teams, currency))
    out.append("<h3>Untagged spend</h3>")
    if untagged:
        status = untagged["status"]
        out.append(
            f"<p>{_e(_fmt_money(_money(status.get('totalCost')), currency))} from "
            f"{_fmt_hours(status.get('gpuHours'))} GPU hours of workloads without a "
            "<code>resilio.tech/team</code> label. In <code>enforce</code> mode they are "
            "refused at admission; in <code>audit</code> mode each carries a "
            "<code>finops.resilio.tech/violations</code> annotation naming what is missing.</p>"
        )
        features = (status.get("breakdowns") or {}).get("feature") or []
        out.append(_breakdown_table(features, "Feature label", currency))
    else:
        out.append('<p class="muted">None: every GPU hour carried a team label.</p>')
    return "\n".join(out)


def render_showback(
    reports: Sequence[Mapping[str, Any]],
    generated: datetime.datetime,
    title: str = "GPU showback",
    note: str = "",
    extra: Sequence[str] = (),
) -> str:
    """The whole HTML page; `extra`: HTML sections after the periods' (self-hosted models)."""
    periods = _by_period(reports)
    sections = [_section(period, rows) for period, rows in periods.items()]
    if not sections:
        sections = ['<p class="muted">No CostReports with figures yet.</p>']
    else:
        sections.insert(0, _trend(periods))
    sections += [section for section in extra if section]
    stamp = generated.astimezone(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    links = [f'<a href="#period-{_e(p)}">{_e(p)}</a>' for p in periods]
    nav = " · ".join(['<a href="#trend">daily spend</a>', *links] if links else [])
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)}</title><style>{CSS}</style></head><body>\n"
        f"<h1>{_e(title)}</h1>\n"
        f'<p class="muted">From the CostReports of finops-operator, generated {_e(stamp)}. '
        f"{nav}</p>\n"
        + (f'<p class="muted">{_e(note)}</p>\n' if note else "")
        + "\n".join(sections)
        + "\n<footer>finops-operator · GPU cost by team, from the five cost labels "
        "(team, feature, environment, workload type, cost center).</footer>\n"
        "</body></html>\n"
    )
