"""Writes the CostReports of the current and the previous month, on a timer.

Each refresh reads a month from Prometheus (usage_reader), builds the reports
(cost_reports) and writes only what changed. When Prometheus cannot be read the
reports keep their last good figures and get `Stale=True` with the reason; the
next attempt comes sooner, backing off up to the refresh interval, and the
first good read clears `Stale` on its own. The reasons:

- `PrometheusUnavailable`: unreachable, timed out, or an HTTP error;
- `UnusableAnswer`: it answered, but with `data: null`, a malformed result, or a
  NaN or Inf sample (no cost can be computed from it);
- `PartialAnswer`: it answered with `warnings` (Thanos or Mimir answering only in
  part); the figures that came back may be too low, so they are not written.

The reports known from the watch and from past writes spare a read per write.
That cache is never trusted over a 404: a report the API lost (restarted empty,
deleted while the watch was cut) is created again on the next refresh
(`controllers.apply`), and a stale mark answered 404 drops it from the cache.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from finops_operator.controllers.apply import Applied, apply
from finops_operator.controllers.clock import SystemClock
from finops_operator.controllers.serving_reader import Chargeback
from finops_operator.controllers.usage_reader import report_period
from finops_operator.domain import conventions
from finops_operator.domain.backoff import backoff_delay
from finops_operator.domain.config import Config
from finops_operator.domain.costs.allocation import allocate
from finops_operator.domain.costs.cost_queries import QueryNames
from finops_operator.domain.costs.cost_reports import (
    PLURAL,
    ReportInput,
    desired_reports,
    fresh_status,
    stale_status,
    status_changed,
    status_patch,
)
from finops_operator.domain.costs.period import Period
from finops_operator.domain.rules.policy_reconciler import (
    Lanes,
    team_budget_scopes,
    team_budgets,
)
from finops_operator.errors import (
    KubeError,
    NoUsageDataError,
    PrometheusError,
    UnusableAnswerError,
)
from finops_operator.ports import ClockPort, KubePort, MetricsPort, PrometheusPort

logger = logging.getLogger(__name__)

REPORTS = (conventions.API_GROUP, conventions.API_VERSION, PLURAL)
FIRST_RETRY_SECONDS = 5.0
# A condition message stays readable (and far below the API's 32 KiB).
MESSAGE_LIMIT = 1024


def months_to_refresh(now: datetime.datetime) -> list[Period]:
    """The current month and the one before it (UTC)."""
    current = Period.month(now.year, now.month)
    previous_end = current.start - datetime.timedelta(days=1)
    return [current, Period.month(previous_end.year, previous_end.month)]


def budgets_of(
    policies: Mapping[Any, Mapping[str, Any]], config: Config, lanes: Lanes = None
) -> dict[str, Decimal]:
    """Monthly budgets by team, from the valid CostPolicies in their lanes that name a team."""
    return team_budgets(policies.values(), config, lanes)


@dataclass
class ReportController:
    config: Config
    kube: KubePort
    prometheus: PrometheusPort
    policies: Mapping[Any, Mapping[str, Any]]
    metrics: MetricsPort
    leading: Callable[[], bool] = lambda: True
    clock: ClockPort = field(default_factory=SystemClock)
    lanes: Lanes = None  # the policies' lanes (PolicyController.lane); None: not checked
    reports: dict[str, dict[str, Any]] = field(default_factory=dict)
    _lost: bool = False  # this pass found a cached report gone from the API

    def observe(self, event_type: str | None, body: Mapping[str, Any]) -> None:
        name = str((body.get("metadata") or {}).get("name"))
        if event_type == "DELETED":
            self.reports.pop(name, None)
        else:
            self.reports[name] = dict(body)

    async def run_forever(self) -> None:
        interval = float(self.config.reports.interval_seconds)
        delay, failed = 0.0, 0
        while True:
            await self.clock.sleep(delay)
            if not self.leading():
                delay = 1.0
                continue
            try:
                healthy = await self.refresh(self.clock.now())
            except Exception:  # a bug must not end the refreshes for good
                logger.exception("CostReport refresh failed unexpectedly")
                healthy = False
            if healthy:
                delay, failed = interval, 0
            else:
                failed += 1
                delay = backoff_delay(failed, FIRST_RETRY_SECONDS, interval)

    async def catch_up(self) -> None:
        """After an election, or after the Lease had to be recreated (the API may have lost
        its state): trust nothing cached, so the next refresh reads every report again."""
        self.reports.clear()

    async def refresh(self, now: datetime.datetime) -> bool:
        """One pass over both months; False when Prometheus or the API could not be used.

        When a report the cache knew turned out to be gone, the API lost more than that
        one: the cache is dropped and the pass done again, reading every report."""
        self._lost = False
        healthy = await self._refresh(now)
        if self._lost:
            logger.warning("A CostReport known to the watch was gone: reading them all again")
            self.reports.clear()
            healthy = await self._refresh(now)
        return healthy

    async def _refresh(self, now: datetime.datetime) -> bool:
        healthy = True
        # A shared Thanos holds other clusters too: this operator's CostReports are its
        # own cluster's.
        names = QueryNames.from_config(self.config).only_cluster(self.config.cluster.name)
        for period in months_to_refresh(now):
            label = f"{period.start:%Y-%m}"
            try:
                report = await asyncio.to_thread(
                    report_period,
                    self.prometheus,
                    self.config.pricing,
                    period,
                    now=now,
                    names=names,
                    adjust=Chargeback.of(self.prometheus, self.config, names),
                )
            except NoUsageDataError:
                logger.debug("No usage in Prometheus for %s yet; nothing to report", label)
                continue
            except PrometheusError as err:
                healthy = False
                self.metrics.count_report_failure("prometheus")
                logger.warning("CostReports of %s are stale: %s", label, err)
                unusable = isinstance(err, UnusableAnswerError)
                reason = "UnusableAnswer" if unusable else "PrometheusUnavailable"
                await self._mark_stale(label, reason, str(err), now)
                continue
            if report.partial:
                healthy = False
                self.metrics.count_report_failure("prometheus")
                message = (
                    f"Prometheus at {self.prometheus.config.url} answered only in part, so the "
                    f"last whole figures are kept: {'; '.join(report.warnings)}"
                )
                logger.warning("CostReports of %s are stale: %s", label, message)
                await self._mark_stale(label, "PartialAnswer", message, now)
                continue
            data = ReportInput(
                period=label,
                currency=report.costs.currency,
                teams=report.costs.teams,
                untagged=report.costs.untagged,
                cluster=report.costs.cluster,
                jobs=report.jobs,
                data_through=report.data_through,
                budgets=budgets_of(self.policies, self.config, self.lanes),
                budget_scopes={
                    team: scope
                    for team, (_, scope) in team_budget_scopes(
                        self.policies.values(), self.config, self.lanes
                    ).items()
                },
                allocation=allocate(
                    report.costs, report.usage.gpu, report.usage.tokens, report.pricing
                ),
                daily=report.daily,
            )
            try:
                for obj, figures in desired_reports(data, now):
                    await self._write(obj, figures, now)
            except KubeError as err:
                healthy = False
                self.metrics.count_report_failure("kubernetes")
                logger.error("Cannot write the CostReports of %s: %s", label, err)
                continue
            self.metrics.mark_reports_refreshed(label, now.timestamp())
        return healthy

    async def _write(
        self, obj: dict[str, Any], figures: dict[str, Any], now: datetime.datetime
    ) -> None:
        name = obj["metadata"]["name"]

        def fresh(current: Mapping[str, Any]) -> dict[str, Any] | None:
            return status_patch(current, fresh_status(figures, current.get("status"), now))

        cached = self.reports.get(name) or None
        result = await apply(self.kube, REPORTS, obj, fresh, current=cached, status=True)
        if result.applied is Applied.CREATED:
            logger.info("Created CostReport %s", name)
            self._lost = self._lost or cached is not None
        current = result.current
        self.reports[name] = {
            **current,
            "status": fresh_status(figures, current.get("status"), now),
        }

    async def _mark_stale(
        self, period: str, reason: str, message: str, now: datetime.datetime
    ) -> None:
        if len(message) > MESSAGE_LIMIT:
            message = message[: MESSAGE_LIMIT - 3] + "..."
        for name, current in list(self.reports.items()):
            if (current.get("spec") or {}).get("period") != period or not current.get("status"):
                continue
            status = stale_status(current["status"], reason, message, now)
            if not status_changed(current["status"], status):
                continue
            try:
                await self.kube.patch(*REPORTS, None, name, {"status": status}, status=True)
                self.reports[name] = {**current, "status": status}
            except KubeError as err:
                if err.status == 404:  # gone without the watch saying so: forget it
                    self.reports.pop(name, None)
                    self._lost = True
                logger.error("Cannot mark CostReport %s stale: %s", name, err)
