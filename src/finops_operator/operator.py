"""The operator process: kopf handlers, the admission server and the metrics server.

Handlers are thin: they take an event, ask the domain, and write the result.
Every watch uses kopf event handlers, never stateful create/update handlers,
so kopf writes no bookkeeping annotations or finalizers on anything it watches
and compliant objects are never patched.

The workloads (Pods and the six controller kinds) are the exception to kopf: a
GPU fleet has them by the ten thousand, and kopf's per-object state and queues
cost more memory than everything else. They are read by
`adapters/list_watch.ListWatch` (paged list, then watch, nothing kept per
object) and fed to the same handlers, the audit and, for pods, the GPU
inventory (docs/benchmarks.md has the measurements).
"""

from __future__ import annotations

import asyncio
import datetime
import functools
import logging
import os
import socket
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import kopf
from kopf._core.engines.peering import Identity  # kopf.operator's type; kopf exports none

from finops_operator.adapters.certificate_reloader import (
    ServingCertificate,
    TlsPair,
    file_source,
    keep_reloading,
    secret_source,
)
from finops_operator.adapters.certificates import self_signed, service_hostnames
from finops_operator.adapters.kube_api import KubeApi, user_agent
from finops_operator.adapters.list_watch import Connection, ListWatch
from finops_operator.adapters.memory import (
    pace_garbage_collector,
    release_free_memory,
    resident_megabytes,
)
from finops_operator.adapters.metrics import InventoryExposition, OperatorMetrics
from finops_operator.adapters.prometheus_api import PrometheusClient
from finops_operator.adapters.webhook_server import (
    AdmissionApp,
    metrics_app,
    start_site,
)
from finops_operator.controllers.admission_policy_controller import (
    MUTATING_BINDINGS,
    MUTATING_BINDINGS_BETA,
    MUTATING_POLICIES,
    MUTATING_POLICIES_BETA,
    VALIDATING_BINDINGS,
    VALIDATING_POLICIES,
    AdmissionPolicyController,
)
from finops_operator.controllers.audit_writer import AuditWriter
from finops_operator.controllers.informer_sync import WATCHED, InformerSync, collection_path
from finops_operator.controllers.leadership import Leadership
from finops_operator.controllers.policy_controller import EventPoster, PolicyController
from finops_operator.controllers.policy_report_writer import PolicyReportWriter
from finops_operator.controllers.report_controller import REPORTS, ReportController
from finops_operator.controllers.webhook_tls import inject_ca_bundle, shared_certificate
from finops_operator.domain import conventions
from finops_operator.domain.config import Config, ReportApi
from finops_operator.domain.events import ObjectRef, event_body
from finops_operator.domain.gpus.inventory import Inventory
from finops_operator.domain.policies.audit import audit_workload, event_message, judged_state
from finops_operator.domain.policies.label_check import LabelPolicy, find_exemption
from finops_operator.domain.policies.policy_reports import (
    PUBLISHED_APIS,
    REPORT_LABELS,
    workload_result,
)
from finops_operator.domain.policies.verdict import Skip
from finops_operator.domain.workloads import WORKLOAD_KINDS
from finops_operator.errors import KubeError

logger = logging.getLogger("finops_operator")

ObjectKey = tuple[str, str, str]  # kind, namespace, name

# Kinds read by our own list-and-watch instead of kopf: every workload kind (a fleet has
# them by the ten thousand; the audit needs each body for a moment only), with the
# server-side filter of each: a pod that has ended holds no GPU and is no longer judged.
AUDITS_IN_FLIGHT: Final = 64  # audits of one kind running at once (each may write)
LEAN_KINDS: Final = {
    kind: "status.phase!=Succeeded,status.phase!=Failed" if kind == "Pod" else ""
    for kind in WORKLOAD_KINDS
}
# Everything read through our own list-and-watch: kind -> (API group, plural). Nodes too:
# a fleet has them by the thousand, and the GPU inventory keeps only a GPU node's row.
LIST_WATCHED: Final[Mapping[str, tuple[str, str]]] = {
    "Node": ("", "nodes"),
    **{kind: (group, plural) for kind, (group, plural, _) in WORKLOAD_KINDS.items()},
}


@dataclass
class OperatorState:
    """What the handlers share: the policy, the namespace index and the violators."""

    config: Config
    namespace: str
    policy: LabelPolicy = field(init=False)
    metrics: OperatorMetrics = field(default_factory=OperatorMetrics)
    namespaces: dict[str, dict[str, str]] = field(default_factory=dict)
    violating: set[ObjectKey] = field(default_factory=set)
    inventory: Inventory = field(init=False)
    exposition: InventoryExposition = field(init=False)  # the inventory on /metrics
    sync: InformerSync = field(  # `/readyz`
        default_factory=lambda: InformerSync(
            watched={kind: where for kind, where in WATCHED.items() if kind not in LEAN_KINDS}
        )
    )

    def __post_init__(self) -> None:
        self.policy = LabelPolicy(self.config)
        self.inventory = Inventory(self.policy.is_gpu)
        self.exposition = InventoryExposition(self.inventory, self.config.pricing)

    def mark(self, key: ObjectKey, violating: bool) -> None:
        """Keep the violations gauge equal to the number of violating workloads."""
        kind, namespace, _ = key
        if violating and key not in self.violating:
            self.violating.add(key)
            self.metrics.violations.labels(namespace, kind).inc()
        elif not violating and key in self.violating:
            self.violating.discard(key)
            self.metrics.violations.labels(namespace, kind).dec()


# The generated admission policies and bindings, watched so that an edit or a delete is undone.
ADMISSION_POLICY_RESOURCES = (
    VALIDATING_POLICIES,
    VALIDATING_BINDINGS,
    MUTATING_POLICIES,
    MUTATING_BINDINGS,
    MUTATING_POLICIES_BETA,
    MUTATING_BINDINGS_BETA,
)


def build_registry(
    state: OperatorState,
    policies: PolicyController,
    reports: ReportController,
    writer: AuditWriter,
    admission_policies: AdmissionPolicyController | None = None,
    published: PolicyReportWriter | None = None,
) -> kopf.OperatorRegistry:
    registry = kopf.OperatorRegistry()

    @kopf.on.startup(registry=registry)
    def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
        settings.posting.level = logging.WARNING  # only the Events we post on purpose
        settings.watching.server_timeout = 300
        settings.networking.request_timeout = 30

    @kopf.on.login(registry=registry)
    def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        return kopf.login_with_service_account(**kwargs) or kopf.login_with_kubeconfig(**kwargs)

    @kopf.on.event("v1", "namespaces", registry=registry)
    def index_namespace(type: str | None, body: kopf.Body, **_: Any) -> None:
        name = body.metadata.name
        if type == "DELETED":
            state.namespaces.pop(name, None)
        else:
            state.namespaces[name] = dict(body.metadata.labels or {})
        state.sync.observe("Namespace", body.metadata.uid)

    for kind, (group, plural, _) in WORKLOAD_KINDS.items():
        if kind in LEAN_KINDS:
            continue
        handler = _audit_handler(state, writer, kind, published)
        kopf.on.event(group or "", "v1", plural, registry=registry)(handler)
    _register_policy_handlers(registry, policies)
    for api in PUBLISHED_APIS:
        if published is not None and api is published.api:
            kopf.on.event(
                api.group, api.version, api.plural, labels=REPORT_LABELS, registry=registry
            )(_report_handler(published))

    @kopf.on.event(*REPORTS, registry=registry)
    def index_cost_report(type: str | None, body: kopf.Body, **_: Any) -> None:
        reports.observe(type, body)

    if admission_policies is not None and admission_policies.config.admission_policies.enabled:
        _register_admission_policy_handlers(registry, admission_policies)
    return registry


def _register_admission_policy_handlers(
    registry: kopf.OperatorRegistry, controller: AdmissionPolicyController
) -> None:
    async def keep_in_step(**_: Any) -> None:
        await controller.ensure()

    for group, version, plural in ADMISSION_POLICY_RESOURCES:
        kopf.on.event(
            group,
            version,
            plural,
            labels={conventions.MANAGED_BY_LABEL: conventions.MANAGED_BY},
            registry=registry,
            id=f"keep_{plural}_{version}_in_step",
        )(keep_in_step)


def _register_policy_handlers(registry: kopf.OperatorRegistry, policies: PolicyController) -> None:
    @kopf.on.event(
        conventions.API_GROUP,
        conventions.API_VERSION,
        conventions.COSTPOLICY_PLURAL,
        registry=registry,
    )
    async def reconcile_policy(type: str | None, body: kopf.Body, **_: Any) -> None:
        if type == "DELETED":
            policies.forget((body.metadata.namespace or "", body.metadata.name or ""))
            if policies.leading():
                try:
                    await policies.delete_owned_rule(body)
                except KubeError as err:
                    logger.error("Cannot delete the rule of a deleted CostPolicy: %s", err)
            return
        await policies.reconcile(policies.remember(body))

    @kopf.on.event(
        "monitoring.coreos.com",
        "v1",
        "prometheusrules",
        labels={conventions.MANAGED_BY_LABEL: conventions.MANAGED_BY},
        registry=registry,
    )
    async def keep_rule_in_step(type: str | None, body: kopf.Body, **_: Any) -> None:
        seen = None if type == "DELETED" else body
        if policies.is_recording_rules(body):
            await policies.ensure_recording_rules(seen)
        elif (key := policies.owner_of(body)) is not None:
            await policies.reconcile(key, seen)


def _event_poster(kube: KubeApi, reporter: str) -> EventPoster:
    async def post(body: Mapping[str, Any], type: str, reason: str, message: str) -> None:
        ref = ObjectRef.of(body)
        event = event_body(
            ref,
            type=type,
            reason=reason,
            message=message,
            now=datetime.datetime.now(datetime.UTC),
            reporter=reporter,
        )
        try:
            await kube.create_event(ref.namespace, event)
        except KubeError as err:
            logger.warning("Cannot post an Event about %s %s: %s", ref.kind, ref.name, err)

    return post


def _report_handler(published: PolicyReportWriter) -> Any:
    def index_policy_report(type: str | None, body: kopf.Body, **_: Any) -> None:
        published.observe(type, body)

    return index_policy_report


def _audit_decider(
    state: OperatorState, writer: AuditWriter, kind: str, published: PolicyReportWriter | None
) -> Callable[[str | None, Mapping[str, Any]], bool]:
    """The audit of one event, up to its write: True when the writer has a write to send.

    Synchronous, so that the events that need no write (nearly all of a fleet's)
    cost no task; the caller sends the write with `writer.write(key)`.
    """

    def decide(type: str | None, body: Mapping[str, Any]) -> bool:
        meta = body.get("metadata") or {}
        state.sync.observe(kind, meta.get("uid"))
        key = (kind, meta.get("namespace") or "", meta.get("name") or "")
        if type == "DELETED":
            state.mark(key, violating=False)
            writer.forget(key)
            if published is not None:
                published.forget(key)
            return False
        obj: Mapping[str, Any] = {**body, "kind": kind}
        outcome = audit_workload(obj, state.policy, state.namespaces.get(key[1]))
        state.mark(key, violating=bool(outcome.violations))
        if published is not None:
            exempt = (
                find_exemption(obj, key[1], state.config)
                if outcome.skip is Skip.EXEMPT_ANNOTATION
                else None
            )
            published.record(key, workload_result(obj, outcome, exempt))
        if not outcome.changed:  # the writer reads nothing else of an unchanged outcome
            return writer.settle(key, _NO_REF, outcome, "")
        message = event_message(obj, outcome)
        return writer.settle(key, ObjectRef.of(obj), outcome, message, judged_state(obj))

    decide.__name__ = f"audit_{kind.lower()}"
    return decide


_NO_REF: Final = ObjectRef("", "", "", "", "")


def _audit_handler(
    state: OperatorState, writer: AuditWriter, kind: str, published: PolicyReportWriter | None
) -> Any:
    """A kopf-style handler: the decision, then its write if one is due."""
    decide = _audit_decider(state, writer, kind, published)

    async def audit(type: str | None, body: Mapping[str, Any], **_: Any) -> None:
        if decide(type, body):
            meta = body.get("metadata") or {}
            await writer.write((kind, meta.get("namespace") or "", meta.get("name") or ""))

    audit.__name__ = f"audit_{kind.lower()}"
    return audit


async def _trim_after_sync(state: OperatorState) -> None:
    """The sync is the memory peak: once it is over, give the freed pages back."""
    while not state.sync.synced:
        await asyncio.sleep(1.0)
    before = resident_megabytes()
    await asyncio.sleep(5.0)  # the first audit writes of the sync finish
    release_free_memory()
    logger.info("Synced: resident memory %s MB, %s MB after giving free pages back",
                f"{before:.0f}" if before else "?", f"{resident_megabytes() or 0:.0f}")  # fmt: skip


async def _watch_lean(
    state: OperatorState, writer: AuditWriter, published: PolicyReportWriter | None, agent: str
) -> None:
    """Once the namespaces are indexed (a workload is judged with its namespace's labels)."""
    connection = Connection.from_environment(agent)
    watches = [_lean_watch(state, writer, published, kind, connection) for kind in LEAN_KINDS]
    watches.append(_node_watch(state, connection))
    while "Namespace" in state.sync.missing() and not state.sync.synced:
        await asyncio.sleep(0.1)
    await asyncio.gather(*(watch.run() for watch in watches))


def _lean_watch(
    state: OperatorState,
    writer: AuditWriter,
    published: PolicyReportWriter | None,
    kind: str,
    connection: Connection,
) -> ListWatch:
    """One kind through our own list-and-watch: the audit (and for Pods the GPU inventory)."""
    audit = _audit_handler(state, writer, kind, published)
    decide = _audit_decider(state, writer, kind, published)
    pods = kind == "Pod"
    # The audit writes as the leader (a PATCH, an Event): the list must not wait for
    # each of them, as kopf's per-object workers did not. An event is decided at once
    # when nothing of its object is under way, and only a write due gets a task. An
    # object with a task under way queues its next events behind it, each decided in
    # its turn: a FIFO lock per object, counted so that it is dropped once nothing
    # waits for it. At most AUDITS_IN_FLIGHT tasks run at once (bodies never pile up).
    order: dict[tuple[str, str], list[Any]] = {}  # key -> [lock, tasks queued]
    running: set[asyncio.Task[None]] = set()
    in_flight = asyncio.Semaphore(AUDITS_IN_FLIGHT)

    async def in_turn(
        key: tuple[str, str], entry: list[Any], step: Callable[[], Awaitable[None]]
    ) -> None:
        try:
            async with entry[0]:
                await step()
        except Exception:  # kopf logged a failing handler; so do we, and go on
            logger.exception("Audit of %s %s/%s failed", kind, *key)
        finally:
            in_flight.release()
            entry[1] -= 1
            if entry[1] == 0 and order.get(key) is entry:
                del order[key]

    async def on_event(type: str, body: Mapping[str, Any]) -> None:
        if pods:
            state.inventory.observe_pod(type, body)
        meta = body.get("metadata") or {}
        key = (str(meta.get("namespace") or ""), str(meta.get("name") or ""))
        step: Callable[[], Awaitable[None]]
        if key in order:
            step = functools.partial(audit, type, body)  # decided in its turn
        else:
            try:
                if not decide(type, body):
                    return
            except Exception:
                logger.exception("Audit of %s %s/%s failed", kind, *key)
                return
            step = functools.partial(writer.write, (kind, *key))
        entry = order.setdefault(key, [asyncio.Lock(), 0])
        entry[1] += 1
        await in_flight.acquire()
        task = asyncio.create_task(in_turn(key, entry, step))
        running.add(task)
        task.add_done_callback(running.discard)

    async def on_relisted(listed: set[tuple[str, str]]) -> None:
        """A new list after 410 Gone: forget the objects deleted while nobody watched."""
        if pods:
            for namespace, name in [key for key in state.inventory.pods if key not in listed]:
                gone = {"metadata": {"namespace": namespace, "name": name}}
                state.inventory.observe_pod("DELETED", gone)
        for key in [key for key in state.violating if key[0] == kind and key[1:] not in listed]:
            state.mark(key, violating=False)
            writer.forget(key)
            if published is not None:
                published.forget(key)

    watch = ListWatch(
        connection,
        collection_path(*LIST_WATCHED[kind]),
        on_event,
        on_relisted,
        field_selector=LEAN_KINDS[kind] or None,
    )
    state.sync.add_stream(kind, lambda: watch.synced)
    return watch


def _node_watch(state: OperatorState, connection: Connection) -> ListWatch:
    """Nodes for the GPU inventory: a GPU node's model and capacity, nothing for the others."""

    async def on_event(type: str, body: Mapping[str, Any]) -> None:
        state.inventory.observe_node(type, body)

    async def on_relisted(listed: set[tuple[str, str]]) -> None:
        for name in [name for name in state.inventory.nodes if ("", name) not in listed]:
            state.inventory.observe_node("DELETED", {"metadata": {"name": name}})

    watch = ListWatch(connection, collection_path(*LIST_WATCHED["Node"]), on_event, on_relisted)
    state.sync.add_stream("Node", lambda: watch.synced)
    return watch


async def serve(
    state: OperatorState,
    *,
    webhook_host: str,
    webhook_port: int,
    webhook_cert: str | None,
    webhook_key: str | None,
    metrics_port: int,
    webhook_secret: str | None = None,
    leader_election: bool = True,
    lease_seconds: int = 15,
    stop_flag: asyncio.Event | None = None,
    cert_reload_seconds: float = 10.0,
) -> None:
    """Run kopf, the admission server, the metrics server and the writers until stopped."""
    identity = f"{socket.gethostname()}-{uuid.uuid4().hex[:6]}"
    # Bulk calls get the client's full timeout: one that gives up early only turns a slow
    # write into one of unknown outcome, read back before it is retried.
    kube = KubeApi(agent=user_agent(identity, "operator"))
    # The Lease has a thread and a connection of its own, and a timeout within its
    # duration: a renewal never queues behind the audit's writes, and a partition ends
    # it in time (docs/architecture.md, "Leadership never waits behind bulk work").
    lease_kube = KubeApi(
        request_timeout=max(1.0, min(10.0, lease_seconds / 3)),
        workers=1,
        name="lease",
        agent=user_agent(identity, "lease"),
    )
    serving, reload_certificate = await _serving_certificate(
        state, kube, webhook_cert, webhook_key, webhook_secret, cert_reload_seconds
    )
    leadership = Leadership(
        lease_kube,
        identity,
        state.namespace,
        duration=lease_seconds,
        renew_every=lease_seconds / 3,
    )
    leading = (lambda: leadership.is_leader) if leader_election else (lambda: True)
    # The leader's writes: each is sent only if this replica still leads when its turn comes.
    writes = kube.writing_only_while(leading)
    writer = AuditWriter(writes, leading, identity)
    # Its own client: a short timeout, and a bounded log (it asks every minute for ever).
    heartbeat = PrometheusClient(state.config.prometheus, timeout=15.0, keep_log=10)
    policies = PolicyController(
        config=state.config,
        namespace=state.namespace,
        kube=writes,
        leading=leading,
        post_event=_event_poster(writes, identity),
        metrics=state.metrics,
        prometheus=heartbeat,
    )
    reports = ReportController(
        config=state.config,
        kube=policies.kube,
        prometheus=PrometheusClient(state.config.prometheus),
        policies=policies.policies,
        metrics=state.metrics,
        leading=leading,
    )
    admission_policies = AdmissionPolicyController(
        config=state.config, namespace=state.namespace, kube=writes, leading=leading
    )
    published = _policy_report_writer(state, writes, leading)
    leadership.on_error = state.metrics.leader_election_errors.inc
    leadership.on_elected += [policies.catch_up, reports.catch_up, admission_policies.ensure]
    if published is not None:
        leadership.on_elected.append(published.catch_up)
    leadership.while_leading += [writer.flush]
    admission = AdmissionApp(state.policy, state.namespaces, state.metrics)
    runners = [
        await start_site(admission.app(), webhook_host, webhook_port, serving.context),
        await start_site(
            metrics_app(state.metrics, state.sync.not_ready, state.exposition),
            webhook_host,
            metrics_port,
        ),
    ]
    logger.info(
        "Admission on https://%s:%d%s and %s, metrics on :%d/metrics, mode %s",
        webhook_host,
        webhook_port,
        conventions.VALIDATE_PATH,
        conventions.MUTATE_PATH,
        metrics_port,
        state.config.mode,
    )
    background = [
        asyncio.create_task(reports.run_forever(), name="cost-reports"),
        asyncio.create_task(state.sync.run(kube), name="readiness"),
        asyncio.create_task(policies.watch_rules_evaluating(), name="rules-evaluating"),
        asyncio.create_task(
            _watch_lean(state, writer, published, user_agent(identity, "watch")),
            name="lean-watches",
        ),
        asyncio.create_task(_trim_after_sync(state), name="trim-after-sync"),
    ]
    if published is not None:
        background.append(asyncio.create_task(published.run_forever(), name="policy-reports"))
    if reload_certificate is not None:
        background.append(asyncio.create_task(reload_certificate, name="certificate-reload"))
    if leader_election:
        # Read at each scrape: a leader whose renewal hangs shows 0 from its deadline on.
        state.metrics.leader.set_function(lambda: 1.0 if leadership.is_leader else 0.0)
        stop_leading = leadership.start_in_thread(asyncio.get_running_loop())
    else:
        state.metrics.leader.set(1)
        background.append(asyncio.create_task(policies.catch_up(), name="catch-up"))
        background.append(
            asyncio.create_task(admission_policies.ensure(), name="admission-policies")
        )
        stop_leading = _nothing
    try:
        await kopf.operator(
            registry=build_registry(
                state, policies, reports, writer, admission_policies, published
            ),
            clusterwide=True,
            standalone=True,
            stop_flag=stop_flag,
            # Ours, not kopf's default: that asks getpass.getuser(), which raises KeyError
            # for a uid without a passwd entry, as every pod runs (runAsUser: 65532).
            identity=Identity(identity),
        )
    finally:
        for task in background:
            task.cancel()
        for runner in runners:
            await runner.cleanup()
        await asyncio.to_thread(stop_leading)
        kube.close()
        lease_kube.close()


def _nothing() -> None:
    pass


def _policy_report_writer(
    state: OperatorState, kube: KubeApi, leading: Callable[[], bool]
) -> PolicyReportWriter | None:
    """The writer of the audit's PolicyReports, or None when `policyReports.api` is off."""
    settings = state.config.policy_reports
    if settings.api is ReportApi.OFF:
        return None
    return PolicyReportWriter(
        kube,
        settings.api,
        state.metrics,
        leading=leading,
        ready=lambda: state.sync.synced,
        namespace_exists=lambda namespace: namespace in state.namespaces,
        debounce=settings.debounce_seconds,
    )


async def _serving_certificate(
    state: OperatorState,
    kube: KubeApi,
    webhook_cert: str | None,
    webhook_key: str | None,
    webhook_secret: str | None,
    reload_seconds: float,
) -> tuple[ServingCertificate, Coroutine[Any, Any, None] | None]:
    """The certificate to serve, and the loop that reloads it when its source changes."""
    registry = state.metrics.registry
    if webhook_secret is not None:
        pair = TlsPair(
            *await shared_certificate(
                kube,
                state.namespace,
                webhook_secret,
                issue=lambda namespace: self_signed(service_hostnames(namespace)),
            )
        )
        await inject_ca_bundle(kube, pair.ca)

        async def new_ca(changed: TlsPair) -> None:
            await inject_ca_bundle(kube, changed.ca)

        serving = ServingCertificate(pair, registry)
        read = secret_source(kube, state.namespace, webhook_secret)
        return serving, keep_reloading(serving, read, reload_seconds, new_ca)
    if webhook_cert is None or webhook_key is None:
        cert_pem, key_pem = self_signed()
        logger.warning("No --webhook-cert given: serving a self-signed certificate")
        return ServingCertificate(TlsPair(cert_pem, key_pem, cert_pem), registry), None
    read = file_source(webhook_cert, webhook_key)
    serving = ServingCertificate(await read(), registry)
    return serving, keep_reloading(serving, read, reload_seconds)


def run_operator(
    *,
    config: Config,
    webhook_host: str,
    webhook_port: int,
    webhook_cert: str | None,
    webhook_key: str | None,
    metrics_port: int,
    namespace: str | None,
    verbose: bool,
    webhook_secret: str | None = None,
    leader_election: bool = True,
    lease_seconds: int = 15,
    cert_reload_seconds: float = 10.0,
) -> int:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not verbose:
        logging.getLogger("kopf").setLevel(logging.WARNING)
        logging.getLogger("aiohttp").setLevel(logging.WARNING)
        logging.getLogger("urllib3").setLevel(logging.ERROR)
    own_namespace = namespace or os.environ.get("POD_NAMESPACE") or conventions.OPERATOR_NAMESPACE
    state = OperatorState(config=config, namespace=own_namespace)
    pace_garbage_collector()
    asyncio.run(
        serve(
            state,
            webhook_host=webhook_host,
            webhook_port=webhook_port,
            webhook_cert=webhook_cert,
            webhook_key=webhook_key,
            metrics_port=metrics_port,
            webhook_secret=webhook_secret,
            leader_election=leader_election,
            lease_seconds=lease_seconds,
            cert_reload_seconds=cert_reload_seconds,
        )
    )
    return 0
