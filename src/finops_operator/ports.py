"""What the controllers need from the outside world, as Protocols.

The controllers depend on these, never on an adapter: `adapters.kube_api.KubeApi`,
`adapters.prometheus_api.PrometheusClient` and `adapters.metrics.OperatorMetrics`
satisfy them in the operator, and the in-memory fakes of `tests/support/fakes.py`
in the controllers' unit tests. `operator.py` wires one to the other.

Errors cross the ports as `finops_operator.errors`: `KubeError` (with the HTTP
status, 0 when the API server cannot be reached) and `PrometheusError`.
"""

from __future__ import annotations

import datetime
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Protocol

from finops_operator.domain.config import PrometheusConfig

# (group, version, plural) of a custom resource, e.g. ("coordination.k8s.io", "v1", "leases").
Resource = tuple[str, str, str]


class KubePort(Protocol):
    """The Kubernetes API calls the controllers make. Every failure raises `KubeError`."""

    async def get(
        self, group: str, version: str, plural: str, namespace: str | None, name: str
    ) -> dict[str, Any] | None:
        """The object, or None when it does not exist."""
        ...

    async def create(
        self, group: str, version: str, plural: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        """Create `body` (its namespace from its metadata); the stored object. 409 if it exists."""
        ...

    async def patch(
        self,
        group: str,
        version: str,
        plural: str,
        namespace: str | None,
        name: str,
        patch: dict[str, Any],
        status: bool = False,
    ) -> dict[str, Any]:
        """A JSON merge patch of the object, or of its status subresource; the stored object.

        A `metadata.resourceVersion` in the patch guards it: 409 when the object changed.
        """
        ...

    async def delete(
        self, group: str, version: str, plural: str, namespace: str | None, name: str
    ) -> None:
        """Delete the object; nothing happens when it is already gone."""
        ...

    async def patch_workload(
        self, kind: str, namespace: str, name: str, patch: dict[str, Any]
    ) -> None:
        """A merge patch of one of the workload kinds (`domain.workloads.WORKLOAD_KINDS`)."""
        ...

    async def get_workload(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        """One of the workload kinds as stored, or None when it does not exist."""
        ...

    async def create_event(self, namespace: str, event: dict[str, Any]) -> None:
        """Post a core/v1 Event."""
        ...

    async def get_secret(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The Secret, or None when it does not exist."""
        ...

    async def create_secret(self, namespace: str, secret: dict[str, Any]) -> None:
        """Create a Secret; 409 if it exists."""
        ...

    async def served_resources(self, group: str, version: str) -> frozenset[str] | None:
        """The resources (plurals) the API server serves in `group/version` (discovery);
        None when it does not serve that version at all."""
        ...

    async def raw(
        self, method: str, path: str, body: Any = None, content_type: str = "application/json"
    ) -> Any:
        """Any JSON request by path, answered as plain JSON; for objects without a call above
        (the webhook configurations). The path stays at the call site, where the RBAC test
        of the install reads it."""
        ...


class QueryRecordView(Protocol):
    """One query a Prometheus client sent, as far as the controllers read it."""

    @property
    def seconds(self) -> float: ...

    @property
    def warnings(self) -> Sequence[str]:
        """The answer's `warnings`: not empty when Thanos or Mimir answered only in part."""
        ...


class PrometheusPort(Protocol):
    """Instant and range queries with millisecond bounds. Failures raise `PrometheusError`.

    Blocking: callers on the event loop run it in a worker thread.
    """

    @property
    def config(self) -> PrometheusConfig:
        """Where the queries go (`url` names it in messages)."""
        ...

    @property
    def log(self) -> Sequence[QueryRecordView]:
        """Every query sent through `evaluate`/`evaluate_range`, in order."""
        ...

    def evaluate(self, promql: str, at: float) -> list[dict[str, Any]]:
        """An instant query at `at` (Unix seconds): the vector's samples as JSON."""
        ...

    def evaluate_range(
        self, promql: str, start: float, end: float, step_seconds: float
    ) -> list[dict[str, Any]]:
        """A range query: each series with its [time, value] pairs."""
        ...


class MetricsPort(Protocol):
    """The operator's own metrics that the controllers move."""

    def mark_policy_ready(self, namespace: str, name: str, ready: bool) -> None:
        """Whether a CostPolicy's PrometheusRule is in step with it."""
        ...

    def forget_policy(self, namespace: str, name: str) -> None:
        """A deleted CostPolicy: drop its series."""
        ...

    def count_policy_failure(self, namespace: str, reason: str) -> None:
        """One reconciliation that left a CostPolicy not ready."""
        ...

    def mark_reports_refreshed(self, period: str, timestamp: float) -> None:
        """The CostReports of `period` (YYYY-MM) were refreshed at `timestamp`."""
        ...

    def count_report_failure(self, source: str) -> None:
        """A CostReport refresh failed; `source` is "prometheus" or "kubernetes"."""
        ...

    def mark_policy_reports_available(self, api: str, available: bool) -> None:
        """Whether the API serves the configured report resource (`api`: group/version)."""
        ...

    def count_policy_report_failure(self, status: str) -> None:
        """A PolicyReport write failed with this HTTP status ("0": unreachable)."""
        ...

    def count_violations(self, namespace: str, kind: str, change: int) -> None:
        """The violating workloads of `kind` in `namespace` went up (or down) by `change`."""

    def count_exemption(self, namespace: str, kind: str, delta: int) -> None:
        """A GPU workload became (+1) or stopped being (-1) exempt by annotation."""
        ...

    def mark_config(self, *, valid: bool, restart_needed: bool, safe_default: bool) -> None:
        """What the operator's ConfigMap holds: a valid configuration, one that needs a
        restart to apply; and whether the safe default is in use (docs/configuration.md)."""
        ...


# Makes a self-signed certificate for the webhook Service of a namespace: (cert, key) in PEM.
CertificateIssuer = Callable[[str], tuple[bytes, bytes]]


class ClockPort(Protocol):
    """The time a controller's loop reads and waits on (a fake one in unit tests)."""

    def now(self) -> datetime.datetime:
        """The current time, timezone-aware (UTC)."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait `seconds` (cancellable)."""
        ...


class WatchPort(Protocol):
    """One list-and-watch of a collection (`adapters.list_watch.ListWatch`)."""

    def is_synced(self) -> bool:
        """Its first list has been handed out."""
        ...

    async def run(self) -> None:
        """List, then watch, for as long as it runs."""
        ...


class OpenWatch(Protocol):
    """Makes a `WatchPort` for a collection path, handing each event and relist to a feed."""

    def __call__(
        self,
        path: str,
        on_event: Callable[[str, Mapping[str, Any]], Awaitable[None]],
        on_relisted: Callable[[set[tuple[str, str]]], Awaitable[None]],
        *,
        field_selector: str | None = None,
    ) -> WatchPort: ...
