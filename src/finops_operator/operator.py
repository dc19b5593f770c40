"""The operator process: kopf handlers, the admission server and the metrics server.

Handlers are thin: they take an event, ask the domain, and write the result.
Every watch uses kopf event handlers, never stateful create/update handlers,
so kopf writes no bookkeeping annotations or finalizers on anything it watches
and compliant objects are never patched.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import os
import socket
import uuid
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any

import kopf

from finops_operator.adapters.certificate_reloader import (
    ServingCertificate,
    TlsPair,
    file_source,
    keep_reloading,
    secret_source,
)
from finops_operator.adapters.certificates import self_signed, service_hostnames
from finops_operator.adapters.kube_api import KubeApi
from finops_operator.adapters.metrics import InventoryCollector, OperatorMetrics
from finops_operator.adapters.prometheus_api import PrometheusClient
from finops_operator.adapters.webhook_server import (
    AdmissionApp,
    metrics_app,
    start_site,
)
from finops_operator.controllers.audit_writer import AuditWriter
from finops_operator.controllers.informer_sync import InformerSync
from finops_operator.controllers.leadership import Leadership
from finops_operator.controllers.policy_controller import EventPoster, PolicyController
from finops_operator.controllers.report_controller import REPORTS, ReportController
from finops_operator.controllers.webhook_tls import inject_ca_bundle, shared_certificate
from finops_operator.domain import conventions
from finops_operator.domain.config import Config
from finops_operator.domain.events import ObjectRef, event_body
from finops_operator.domain.gpus.inventory import Inventory
from finops_operator.domain.policies.audit import audit_workload, event_message
from finops_operator.domain.policies.label_check import LabelPolicy
from finops_operator.domain.workloads import WORKLOAD_KINDS
from finops_operator.errors import KubeError

logger = logging.getLogger("finops_operator")

ObjectKey = tuple[str, str, str]  # kind, namespace, name


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
    sync: InformerSync = field(default_factory=InformerSync)  # `/readyz`

    def __post_init__(self) -> None:
        self.policy = LabelPolicy(self.config)
        self.inventory = Inventory(self.policy.is_gpu)
        self.metrics.registry.register(InventoryCollector(self.inventory, self.config.pricing))

    def mark(self, key: ObjectKey, violating: bool) -> None:
        """Keep the violations gauge equal to the number of violating workloads."""
        kind, namespace, _ = key
        if violating and key not in self.violating:
            self.violating.add(key)
            self.metrics.violations.labels(namespace, kind).inc()
        elif not violating and key in self.violating:
            self.violating.discard(key)
            self.metrics.violations.labels(namespace, kind).dec()


def build_registry(
    state: OperatorState,
    policies: PolicyController,
    reports: ReportController,
    writer: AuditWriter,
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

    @kopf.on.event("v1", "pods", registry=registry)
    def track_pod_gpus(type: str | None, body: kopf.Body, **_: Any) -> None:
        state.inventory.observe_pod(type, body)

    @kopf.on.event("v1", "nodes", registry=registry)
    def track_node_gpus(type: str | None, body: kopf.Body, **_: Any) -> None:
        state.inventory.observe_node(type, body)

    for kind, (group, plural, _) in WORKLOAD_KINDS.items():
        handler = _audit_handler(state, writer, kind)
        kopf.on.event(group or "", "v1", plural, registry=registry)(handler)
    _register_policy_handlers(registry, policies)

    @kopf.on.event(*REPORTS, registry=registry)
    def index_cost_report(type: str | None, body: kopf.Body, **_: Any) -> None:
        reports.observe(type, body)

    return registry


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


def _audit_handler(state: OperatorState, writer: AuditWriter, kind: str) -> Any:
    async def audit(type: str | None, body: kopf.Body, **_: Any) -> None:
        state.sync.observe(kind, body.metadata.uid)
        key = (kind, body.metadata.namespace or "", body.metadata.name or "")
        if type == "DELETED":
            state.mark(key, violating=False)
            writer.forget(key)
            return
        obj: Mapping[str, Any] = {**body, "kind": kind}
        outcome = audit_workload(obj, state.policy, state.namespaces.get(key[1]))
        state.mark(key, violating=bool(outcome.violations))
        await writer.record(key, ObjectRef.of(obj), outcome, event_message(obj, outcome))

    audit.__name__ = f"audit_{kind.lower()}"
    return audit


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
    kube = KubeApi(request_timeout=max(2.0, min(10.0, lease_seconds / 2)))
    serving, reload_certificate = await _serving_certificate(
        state, kube, webhook_cert, webhook_key, webhook_secret, cert_reload_seconds
    )
    identity = f"{socket.gethostname()}-{uuid.uuid4().hex[:6]}"
    leadership = Leadership(
        kube, identity, state.namespace, duration=lease_seconds, renew_every=lease_seconds / 3
    )
    leading = (lambda: leadership.is_leader) if leader_election else (lambda: True)
    writer = AuditWriter(kube, leading, identity)
    # Its own client: a short timeout, and a bounded log (it asks every minute for ever).
    heartbeat = PrometheusClient(state.config.prometheus, timeout=15.0, keep_log=10)
    policies = PolicyController(
        config=state.config,
        namespace=state.namespace,
        kube=kube,
        leading=leading,
        post_event=_event_poster(kube, identity),
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
    leadership.on_error = state.metrics.leader_election_errors.inc
    leadership.on_elected += [policies.catch_up, reports.catch_up]
    leadership.while_leading += [writer.flush]
    admission = AdmissionApp(state.policy, state.namespaces, state.metrics)
    runners = [
        await start_site(admission.app(), webhook_host, webhook_port, serving.context),
        await start_site(
            metrics_app(state.metrics, state.sync.not_ready), webhook_host, metrics_port
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
    ]
    if reload_certificate is not None:
        background.append(asyncio.create_task(reload_certificate, name="certificate-reload"))
    if leader_election:
        # Read at each scrape: a leader whose renewal hangs shows 0 from its deadline on.
        state.metrics.leader.set_function(lambda: 1.0 if leadership.is_leader else 0.0)
        background.append(asyncio.create_task(leadership.run_forever(), name="leadership"))
    else:
        state.metrics.leader.set(1)
        background.append(asyncio.create_task(policies.catch_up(), name="catch-up"))
    try:
        await kopf.operator(
            registry=build_registry(state, policies, reports, writer),
            clusterwide=True,
            standalone=True,
            stop_flag=stop_flag,
        )
    finally:
        for task in background:
            task.cancel()
        for runner in runners:
            await runner.cleanup()


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
