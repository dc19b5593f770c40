"""In-memory stand-ins for the ports: a Kubernetes API, a Prometheus and the metrics.

They keep the semantics the controllers rely on, and nothing more:

- `FakeKube`: objects in dicts, a resourceVersion per write, None from a get of
  what is absent, 409 on creating what exists or on a patch guarded by a stale
  `metadata.resourceVersion` or an Event of a name already posted, 404 on
  patching what is absent, a status
  subresource for the operator's own kinds, and a log of every call. Failures
  are injected with `fail_next` (the next matching call raises `KubeError`) or
  `outage` (every call raises `KubeError(0)`, as when the API server is down).
- `FakePrometheus`: answers by exact PromQL expression, `default` otherwise;
  `fail_next` and `outage` raise `PrometheusError`; `warnings` makes every answer
  a partial one.
- `FakeMetrics`: what each metric was set to or counted.
- `FakeClock`: a fixed "now" that each wait moves on; it records every wait and, after
  `waits` of them, ends the loop at the next (`ClockStopped`).

mypy checks them against the Protocols of `finops_operator.ports` (this file is
in `[tool.mypy] files`; see `_conforms` at the end).
"""

from __future__ import annotations

import copy
import datetime
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from finops_devtools.devcluster.api_server import apply_json_patch
from finops_devtools.errors import JsonPatchError
from finops_operator.domain import conventions
from finops_operator.domain.config import PrometheusConfig
from finops_operator.errors import KubeError, PrometheusError
from finops_operator.ports import ClockPort, KubePort, MetricsPort, PrometheusPort, Resource

ObjectKey = tuple[str, str, str, str | None, str]  # group, version, plural, namespace, name

READS = frozenset({"get", "get_secret", "get_workload", "raw GET", "discover"})
# Kinds whose status is a subresource: a create or a plain patch leaves the status alone.
STATUS_SUBRESOURCES = frozenset({conventions.COSTPOLICY_PLURAL, "costreports"})


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: `patch` merged into a copy of `target`; None deletes a key."""
    if not isinstance(patch, Mapping):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, Mapping) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


@dataclass(frozen=True)
class Call:
    """One call to the fake API: its verb, what it named, what it sent, how it ended."""

    verb: str  # "get", "create", "patch", "patch_status", "delete", "patch_workload", ...
    resource: str  # the plural, the workload kind, "secrets", "events" or a raw path
    namespace: str | None
    name: str | None
    body: Any = None
    error: int | None = None  # the KubeError status it raised, None when it succeeded


@dataclass
class FakeKube:
    """A `KubePort` over dicts. Seed with `put`, `put_workload`, `put_secret`, `put_raw`."""

    objects: dict[ObjectKey, dict[str, Any]] = field(default_factory=dict)
    workloads: dict[tuple[str, str, str], dict[str, Any]] = field(default_factory=dict)
    secrets: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    # objects only reached by `raw`; a function answers the POSTs to its path (reviews)
    by_path: dict[str, Any] = field(default_factory=dict)
    # group/version -> the plurals discovery lists; a group/version absent is not served
    served: dict[str, frozenset[str]] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)
    calls: list[Call] = field(default_factory=list)
    outage: bool = False  # every call raises KubeError(0)
    _failures: list[tuple[str | None, KubeError]] = field(default_factory=list)
    _version: int = 0

    # ------------------------------------------------------------ test controls

    def fail_next(self, status: int, *, on: str | None = None, times: int = 1) -> None:
        """The next `times` calls (of verb `on`, or of any verb) raise KubeError(status)."""
        for _ in range(times):
            self._failures.append((on, KubeError(status, f"injected: {status} on {on or 'any'}")))

    @property
    def writes(self) -> list[Call]:
        """The calls that changed something, in order."""
        return [c for c in self.calls if c.error is None and c.verb not in READS]

    def verbs(self) -> list[str]:
        """The verbs of every call, failed ones included, in order."""
        return [c.verb for c in self.calls]

    def put(self, resource: Resource, obj: dict[str, Any]) -> dict[str, Any]:
        """Store `obj` as if someone else had created it (no call logged)."""
        meta = obj["metadata"]
        stored = self._stamp(copy.deepcopy(obj))
        self.objects[(*resource, meta.get("namespace"), meta["name"])] = stored
        return copy.deepcopy(stored)

    def stored(self, resource: Resource, namespace: str | None, name: str) -> dict[str, Any] | None:
        found = self.objects.get((*resource, namespace, name))
        return copy.deepcopy(found) if found is not None else None

    def put_workload(self, kind: str, namespace: str, name: str, obj: dict[str, Any]) -> None:
        self.workloads[(kind, namespace, name)] = copy.deepcopy(obj)

    def put_secret(self, namespace: str, secret: dict[str, Any]) -> None:
        self.secrets[(namespace, secret["metadata"]["name"])] = copy.deepcopy(secret)

    def put_raw(self, path: str, obj: Any) -> None:
        self.by_path[path] = copy.deepcopy(obj)

    # ------------------------------------------------------------ internals

    def _stamp(self, obj: dict[str, Any]) -> dict[str, Any]:
        self._version += 1
        meta = obj.setdefault("metadata", {})
        meta["resourceVersion"] = str(self._version)
        meta.setdefault("uid", f"uid-{self._version}")
        return obj

    def _enter(
        self, verb: str, resource: str, namespace: str | None, name: str | None, body: Any = None
    ) -> None:
        """Log the call; raise what the test injected for it."""
        error: KubeError | None = None
        if self.outage:
            error = KubeError(0, f"{verb} {resource}: cannot reach the API server (outage)")
        else:
            for index, (on, failure) in enumerate(self._failures):
                if on is None or on == verb:
                    error = failure
                    del self._failures[index]
                    break
        self.calls.append(
            Call(
                verb,
                resource,
                namespace,
                name,
                copy.deepcopy(body),
                None if error is None else error.status,
            )
        )
        if error is not None:
            raise error

    def _refuse(self, status: int, message: str) -> KubeError:
        last = self.calls.pop()
        self.calls.append(
            Call(last.verb, last.resource, last.namespace, last.name, last.body, status)
        )
        return KubeError(status, message)

    # ------------------------------------------------------------ KubePort

    async def get(
        self, group: str, version: str, plural: str, namespace: str | None, name: str
    ) -> dict[str, Any] | None:
        self._enter("get", plural, namespace, name)
        return self.stored((group, version, plural), namespace, name)

    async def create(
        self, group: str, version: str, plural: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        meta = body["metadata"]
        namespace, name = meta.get("namespace"), meta["name"]
        self._enter("create", plural, namespace, name, body)
        key = (group, version, plural, namespace, name)
        if key in self.objects:
            raise self._refuse(409, f"create {plural} {namespace}/{name}: 409 already exists")
        stored = copy.deepcopy(body)
        if plural in STATUS_SUBRESOURCES:
            stored.pop("status", None)
        self.objects[key] = self._stamp(stored)
        return copy.deepcopy(self.objects[key])

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
        self._enter("patch_status" if status else "patch", plural, namespace, name, patch)
        key = (group, version, plural, namespace, name)
        current = self.objects.get(key)
        if current is None:
            raise self._refuse(404, f"patch {plural} {namespace}/{name}: 404 not found")
        guard = (patch.get("metadata") or {}).get("resourceVersion")
        if guard is not None and guard != current["metadata"]["resourceVersion"]:
            raise self._refuse(409, f"patch {plural} {namespace}/{name}: 409 conflict")
        if status:
            patch = {"status": patch.get("status")} if "status" in patch else {}
        elif plural in STATUS_SUBRESOURCES:
            patch = {k: v for k, v in patch.items() if k != "status"}
        self.objects[key] = self._stamp(merge_patch(current, patch))
        return copy.deepcopy(self.objects[key])

    async def delete(
        self, group: str, version: str, plural: str, namespace: str | None, name: str
    ) -> None:
        self._enter("delete", plural, namespace, name)
        self.objects.pop((group, version, plural, namespace, name), None)

    async def patch_workload(
        self, kind: str, namespace: str, name: str, patch: dict[str, Any]
    ) -> None:
        self._enter("patch_workload", kind, namespace, name, patch)
        key = (kind, namespace, name)
        if key not in self.workloads:
            raise self._refuse(404, f"patch {kind} {namespace}/{name}: 404 not found")
        self.workloads[key] = merge_patch(self.workloads[key], patch)

    async def get_workload(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        self._enter("get_workload", kind, namespace, name)
        found = self.workloads.get((kind, namespace, name))
        return copy.deepcopy(found) if found is not None else None

    async def create_event(self, namespace: str, event: dict[str, Any]) -> None:
        name = (event.get("metadata") or {}).get("name")
        self._enter("create_event", "events", namespace, name, event)
        if name and any(
            (e.get("metadata") or {}).get("name") == name
            and (e.get("metadata") or {}).get("namespace", namespace) == namespace
            for e in self.events
        ):
            raise self._refuse(409, f"create events {namespace}/{name}: 409 already exists")
        self.events.append(copy.deepcopy(event))

    async def get_secret(self, namespace: str, name: str) -> dict[str, Any] | None:
        self._enter("get_secret", "secrets", namespace, name)
        found = self.secrets.get((namespace, name))
        return copy.deepcopy(found) if found is not None else None

    async def create_secret(self, namespace: str, secret: dict[str, Any]) -> None:
        name = secret["metadata"]["name"]
        self._enter("create_secret", "secrets", namespace, name, secret)
        if (namespace, name) in self.secrets:
            raise self._refuse(409, f"create secrets {namespace}/{name}: 409 already exists")
        self.secrets[(namespace, name)] = copy.deepcopy(secret)

    async def served_resources(self, group: str, version: str) -> frozenset[str] | None:
        self._enter("discover", f"{group}/{version}", None, None)
        return self.served.get(f"{group}/{version}")

    async def raw(
        self, method: str, path: str, body: Any = None, content_type: str = "application/json"
    ) -> Any:
        self._enter(f"raw {method}", path, None, None, body)
        path = path.partition("?")[0]  # a list's `limit`: everything fits in one page here
        if path not in self.by_path:
            raise self._refuse(404, f"{method} {path}: 404 not found")
        if method == "GET":
            return copy.deepcopy(self.by_path[path])
        if method == "POST" and callable(self.by_path[path]):
            # A review (TokenReview, SubjectAccessReview): the path's function answers it.
            return self.by_path[path](copy.deepcopy(body))
        if method == "PATCH" and content_type == "application/json-patch+json":
            try:
                self.by_path[path] = apply_json_patch(self.by_path[path], body)
            except JsonPatchError as err:
                raise self._refuse(422, f"{method} {path}: {err}") from err
        elif method == "PATCH":
            self.by_path[path] = merge_patch(self.by_path[path], body)
        else:
            raise NotImplementedError(f"FakeKube.raw {method}")
        return copy.deepcopy(self.by_path[path])


@dataclass(frozen=True)
class Query:
    kind: str  # "instant" or "range"
    expr: str
    seconds: float = 0.0
    warnings: tuple[str, ...] = ()


@dataclass
class FakePrometheus:
    """A `PrometheusPort` answering each expression from `answers`, else with `default`."""

    answers: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    default: list[dict[str, Any]] = field(default_factory=list)
    config: PrometheusConfig = field(
        default_factory=lambda: PrometheusConfig(url="http://prometheus.test:9090")
    )
    log: list[Query] = field(default_factory=list)
    outage: bool = False  # every query raises PrometheusError
    failures: int = 0  # the next `failures` queries raise PrometheusError
    warnings: tuple[str, ...] = ()  # the `warnings` of every answer (a partial answer)

    def fail_next(self, times: int = 1) -> None:
        self.failures += times

    def _answer(self, kind: str, promql: str) -> list[dict[str, Any]]:
        if self.outage or self.failures:
            self.failures = max(0, self.failures - 1)
            raise PrometheusError(f"cannot reach Prometheus at {self.config.url} (injected)")
        self.log.append(Query(kind, promql, warnings=self.warnings))
        return copy.deepcopy(self.answers.get(promql, self.default))

    def evaluate(self, promql: str, at: float) -> list[dict[str, Any]]:
        return self._answer("instant", promql)

    def evaluate_range(
        self, promql: str, start: float, end: float, step_seconds: float
    ) -> list[dict[str, Any]]:
        return self._answer("range", promql)


@dataclass
class FakeMetrics:
    """A `MetricsPort` that remembers: readiness by policy, counts by label, refresh times."""

    ready: dict[tuple[str, str], bool] = field(default_factory=dict)
    policy_failures: Counter[tuple[str, str]] = field(default_factory=Counter)
    refreshed: dict[str, float] = field(default_factory=dict)
    report_failures: Counter[str] = field(default_factory=Counter)
    policy_reports_available: bool | None = None
    policy_report_failures: Counter[str] = field(default_factory=Counter)
    violations: Counter[tuple[str, str]] = field(default_factory=Counter)  # namespace, kind

    exemptions: Counter[tuple[str, str]] = field(default_factory=Counter)
    config: dict[str, bool] = field(default_factory=dict)  # valid, restart_needed, safe_default

    def mark_policy_ready(self, namespace: str, name: str, ready: bool) -> None:
        self.ready[(namespace, name)] = ready

    def forget_policy(self, namespace: str, name: str) -> None:
        self.ready.pop((namespace, name), None)

    def count_policy_failure(self, namespace: str, reason: str) -> None:
        self.policy_failures[(namespace, reason)] += 1

    def mark_reports_refreshed(self, period: str, timestamp: float) -> None:
        self.refreshed[period] = timestamp

    def count_report_failure(self, source: str) -> None:
        self.report_failures[source] += 1

    def mark_policy_reports_available(self, api: str, available: bool) -> None:
        self.policy_reports_available = available

    def count_policy_report_failure(self, status: str) -> None:
        self.policy_report_failures[status] += 1

    def count_violations(self, namespace: str, kind: str, change: int) -> None:
        self.violations[(namespace, kind)] += change

    def count_exemption(self, namespace: str, kind: str, delta: int) -> None:
        self.exemptions[(namespace, kind)] += delta

    def mark_config(self, *, valid: bool, restart_needed: bool, safe_default: bool) -> None:
        self.config = {
            "valid": valid,
            "restart_needed": restart_needed,
            "safe_default": safe_default,
        }


class FakeEventPoster:
    """An `EventPoster` that remembers what it posted: (type, reason, message), and about what."""

    def __init__(self) -> None:
        self.posted: list[tuple[str, str, str]] = []
        self.about: list[Mapping[str, Any]] = []

    async def __call__(self, body: Mapping[str, Any], type: str, reason: str, message: str) -> None:
        self.posted.append((type, reason, message))
        self.about.append(body)


class ClockStopped(BaseException):
    """Raised by `FakeClock.sleep` once its waits are used up: ends a loop under test."""


@dataclass
class FakeClock:
    """A `ClockPort` for loops: `now` moves on by each wait; the waits are recorded."""

    start: datetime.datetime = datetime.datetime(2026, 11, 15, 12, tzinfo=datetime.UTC)
    waits: int | None = None  # how many waits return; the next is recorded, then raises
    slept: list[float] = field(default_factory=list)

    def now(self) -> datetime.datetime:
        return self.start + datetime.timedelta(seconds=sum(self.slept))

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        if self.waits is not None and len(self.slept) > self.waits:
            raise ClockStopped


def _conforms(
    kube: FakeKube, prometheus: FakePrometheus, metrics: FakeMetrics, clock: FakeClock
) -> tuple[KubePort, PrometheusPort, MetricsPort, ClockPort]:
    """Never called: mypy fails here when a fake drifts from its Protocol."""
    return kube, prometheus, metrics, clock
