"""Publishes the background audit's results as one PolicyReport (or Report) per namespace.

Fed by the same audit outcomes as `audit_writer`, and kept apart from it: the
annotation and Event are about one object, a report is about a namespace.

- **Batched.** `record` only updates the results held in memory and marks the
  namespace dirty. A namespace is written once its results have been quiet for
  `debounce` seconds (at the latest `MAX_DELAY_FACTOR` times that after its first
  change), and only after kopf has delivered every workload that exists (`ready`),
  so a sync burst of thousands of workloads makes one write per namespace.
- **Only changes.** The reports seen by the watch (and those written) are kept;
  a report that already says the same (`same_results`, timestamps aside) is not
  written. A report the cache does not know is read first (`controllers.apply`).
- **Only the leader writes.** A standby keeps its results and the reports it
  sees written; when elected (`catch_up`) it checks every namespace and writes
  only what differs, which after a clean hand-over is nothing.
- **Gone workloads, gone namespaces.** A workload deleted loses its result; a
  namespace left without results loses its reports; a stale part (after a split
  shrank) is deleted. Namespaces themselves garbage-collect their reports.
- **No CRD.** When the API has no such resource (404 on create in a namespace
  that exists), the writer says so once in the log, sets the availability
  metric to 0, keeps everything pending and tries again every
  `CRD_RETRY_SECONDS`. Any other failure is retried with a backoff.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from finops_operator.controllers.apply import Applied, apply
from finops_operator.domain.backoff import backoff_delay
from finops_operator.domain.config import ReportApi
from finops_operator.domain.policies.policy_reports import (
    MAX_REPORT_BYTES,
    WorkloadResult,
    desired_reports,
    is_part_name,
    part_name,
    report_patch,
    same_results,
)
from finops_operator.errors import KubeError
from finops_operator.ports import KubePort, MetricsPort

logger = logging.getLogger(__name__)

ObjectKey = tuple[str, str, str]  # kind, namespace, name
CRD_RETRY_SECONDS: Final = 30.0
MAX_DELAY_FACTOR: Final = 15
FIRST_RETRY_SECONDS: Final = 1.0
MAX_RETRY_SECONDS: Final = 30.0


def _patch_to(desired: Mapping[str, Any], stored: Mapping[str, Any]) -> dict[str, Any] | None:
    return report_patch(stored, desired)


@dataclass
class _Dirty:
    first: float
    last: float


@dataclass
class PolicyReportWriter:
    kube: KubePort
    api: ReportApi
    metrics: MetricsPort
    leading: Callable[[], bool] = lambda: True
    ready: Callable[[], bool] = lambda: True  # kopf delivered every existing workload
    namespace_exists: Callable[[str], bool] = lambda _: True
    debounce: float = 2.0
    max_report_bytes: int = MAX_REPORT_BYTES
    clock: Callable[[], float] = time.monotonic
    wall_clock: Callable[[], float] = time.time
    # namespace -> (kind, name) -> result, and when each result was first found (Unix s)
    results: dict[str, dict[tuple[str, str], WorkloadResult]] = field(default_factory=dict)
    found_at: dict[str, dict[tuple[str, str], int]] = field(default_factory=dict)
    # (namespace, name) -> the stored report as last seen or written
    stored: dict[tuple[str, str], Mapping[str, Any]] = field(default_factory=dict)
    dirty: dict[str, _Dirty] = field(default_factory=dict)
    # Namespaces whose last result went in this process: their report may exist unseen.
    emptied: set[str] = field(default_factory=set)
    # Namespaces whose reports are read again before the cache is trusted (after an election).
    verify: set[str] = field(default_factory=set)
    # Namespaces whose last write was refused (4xx), and when to try them again.
    not_before: dict[str, float] = field(default_factory=dict)
    available: bool | None = None  # None until the first write told
    _retry_at: float = 0.0
    _failures: int = 0

    @property
    def resource(self) -> tuple[str, str, str]:
        return self.api.resource

    # ------------------------------------------------------------ inputs

    def record(self, key: ObjectKey, result: WorkloadResult | None) -> None:
        """A workload's latest result (None: it has none, or it is gone)."""
        _, namespace, name = key
        slot = (key[0], name)
        held = self.results.get(namespace, {})
        before = held.get(slot)
        if result == before:
            return
        if result is None:
            del held[slot]
            self.found_at.get(namespace, {}).pop(slot, None)
        else:
            self.results.setdefault(namespace, {})[slot] = result
            self.found_at.setdefault(namespace, {})[slot] = int(self.wall_clock())
        if namespace in self.results and not self.results[namespace]:
            del self.results[namespace]
            self.found_at.pop(namespace, None)
            self.emptied.add(namespace)
        self._mark(namespace)

    def forget(self, key: ObjectKey) -> None:
        self.record(key, None)

    def observe(self, event_type: str | None, body: Mapping[str, Any]) -> None:
        """A report of ours seen by the watch (our own writes, edits, deletions)."""
        meta = body.get("metadata") or {}
        namespace, name = str(meta.get("namespace") or ""), str(meta.get("name") or "")
        if not is_part_name(name):
            return
        if event_type == "DELETED":
            self.stored.pop((namespace, name), None)
        else:
            self.stored[(namespace, name)] = dict(body)
        self._mark(namespace)  # checked at the next flush; written only if it differs

    async def catch_up(self) -> None:
        """After an election: check every namespace with results or reports at once, reading
        each report again first (the API may have lost what the cache remembers)."""
        now = self.clock()
        due = now - self.debounce * MAX_DELAY_FACTOR
        for namespace in {*self.results, *(ns for ns, _ in self.stored)}:
            self.dirty[namespace] = _Dirty(due, due)
            self.verify.add(namespace)

    def _mark(self, namespace: str) -> None:
        now = self.clock()
        entry = self.dirty.get(namespace)
        if entry is None:
            self.dirty[namespace] = _Dirty(now, now)
        else:
            entry.last = now

    # ------------------------------------------------------------ writing

    def due(self, now: float) -> list[str]:
        """The dirty namespaces that are quiet enough (or waited long enough) to write."""
        longest = self.debounce * MAX_DELAY_FACTOR
        return sorted(
            ns
            for ns, entry in self.dirty.items()
            if (now - entry.last >= self.debounce or now - entry.first >= longest)
            and now >= self.not_before.get(ns, 0.0)
        )

    async def flush(self) -> None:
        """Write the namespaces that are due."""
        now = self.clock()
        if not self.leading() or not self.ready() or now < self._retry_at:
            return
        for namespace in self.due(now):
            if not self.leading():
                return
            marked = self.dirty.pop(namespace, None)
            try:
                await self.sync_namespace(namespace)
            except KubeError as err:
                if marked is not None:
                    self.dirty.setdefault(namespace, marked)
                if self._failed(namespace, err):
                    return  # the API as a whole: wait before any other namespace
                continue
            self.not_before.pop(namespace, None)
        self._failures = 0

    async def run_forever(self, tick: float = 0.25) -> None:
        while True:
            await asyncio.sleep(tick)
            try:
                await self.flush()
            except Exception:  # a bug must not end the reports for good
                logger.exception("PolicyReport write failed unexpectedly")

    async def sync_namespace(self, namespace: str) -> int:
        """Bring a namespace's reports in step with its results; the number of writes."""
        held = self.results.get(namespace, {})
        if held and not self.namespace_exists(namespace):
            return 0  # being deleted: its reports go with it
        desired = desired_reports(
            self.api,
            namespace,
            held.values(),
            self.found_at.get(namespace, {}),
            self.max_report_bytes,
        )
        writes = 0
        wanted: set[str] = set()
        for body in desired:
            name = body["metadata"]["name"]
            wanted.add(name)
            if namespace in self.verify:
                read = await self.kube.get(*self.resource, namespace, name)
                if read is None:
                    self.stored.pop((namespace, name), None)
                else:
                    self.stored[(namespace, name)] = read
            current = self.stored.get((namespace, name))
            if current is not None and same_results(current, body):
                continue
            result = await apply(
                self.kube,
                self.resource,
                body,
                functools.partial(_patch_to, body),
                current=current,
            )
            if result.applied is not Applied.UNCHANGED:
                writes += 1
            self.stored[(namespace, name)] = body
            self._available()
        for ns, name in sorted(self.stored):
            if ns == namespace and name not in wanted:
                await self.kube.delete(*self.resource, namespace, name)
                self.stored.pop((ns, name), None)
                writes += 1
        if not desired and not writes and namespace in self.emptied:
            # Its report was not seen by the watch (it may not run yet): delete the first
            # part blindly; deleting what is absent does nothing.
            await self.kube.delete(*self.resource, namespace, part_name(0))
            writes += 1
        self.emptied.discard(namespace)
        self.verify.discard(namespace)
        return writes

    def _available(self) -> None:
        if self.available is not True:
            if self.available is False:
                logger.info("%s %s is served now: writing reports", self.api.kind, self.api.value)
            self.available = True
            self.metrics.mark_policy_reports_available(self.api.value, True)

    def _failed(self, namespace: str, err: KubeError) -> bool:
        """Note a failed write; True when it concerns every namespace (wait before any)."""
        if err.status == 404 and self.namespace_exists(namespace):
            if self.available is not False:
                logger.warning(
                    "Cannot write %s reports: the API server does not serve %s (%s). "
                    "Install its CRD (docs/policy-reports.md) or set policyReports.api; "
                    "trying again every %d seconds.",
                    self.api.kind,
                    self.api.value,
                    err,
                    CRD_RETRY_SECONDS,
                )
            self.available = False
            self.metrics.mark_policy_reports_available(self.api.value, False)
            self._retry_at = self.clock() + CRD_RETRY_SECONDS
            return True
        if err.status == 404:  # the namespace is gone
            self.results.pop(namespace, None)
            self.found_at.pop(namespace, None)
            self.dirty.pop(namespace, None)
            return False
        self.metrics.count_policy_report_failure(str(err.status))
        if 400 <= err.status < 500 and err.status != 429:
            # Refused for this namespace alone (invalid, too large, forbidden): the others
            # go on; this one is tried again later, in case what refused it changes.
            self.not_before[namespace] = self.clock() + MAX_RETRY_SECONDS
            logger.error(
                "The API server refused the %s of namespace %s (retrying in %.0fs): %s",
                self.api.kind,
                namespace,
                MAX_RETRY_SECONDS,
                err,
            )
            return False
        self._failures += 1
        delay = backoff_delay(self._failures, FIRST_RETRY_SECONDS, MAX_RETRY_SECONDS)
        self._retry_at = self.clock() + delay
        logger.warning(
            "Cannot write the %s of namespace %s (retrying in %.0fs): %s",
            self.api.kind,
            namespace,
            delay,
            err,
        )
        return True
