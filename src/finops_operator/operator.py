"""The composition root: the operator process wired from controllers and adapters.

It loads the credentials once (`adapters/kube_credentials`), builds the adapters
(API clients, servers, list-and-watches), hands them to the controllers
(`controllers/assembly.py`), registers kopf's event handlers and runs it all until
stopped; every decision is a controller's. kopf only has event handlers, never
stateful ones, so it writes no bookkeeping annotations or finalizers and never
patches a compliant object. kopf watches Namespaces and the custom resources; the
workloads and Nodes, by the ten thousand in a fleet, go through
`adapters/list_watch.ListWatch` to `controllers/watch_feeds` (docs/benchmarks.md).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import socket
import uuid
from collections.abc import Coroutine, Mapping
from typing import Any

import kopf
from kopf._core.engines.peering import Identity  # kopf.operator's type; kopf exports none

from finops_operator.adapters import certificate_reloader as tls
from finops_operator.adapters import kube_credentials
from finops_operator.adapters.certificates import for_service
from finops_operator.adapters.config_file import parse_config_text
from finops_operator.adapters.kube_api import KubeApi, user_agent
from finops_operator.adapters.list_watch import Connection, ListWatch
from finops_operator.adapters.memory import pace_garbage_collector, release_after_sync
from finops_operator.adapters.metrics import InventoryExposition, OperatorMetrics
from finops_operator.adapters.metrics_auth import MetricsGuard
from finops_operator.adapters.prometheus_api import PrometheusClient
from finops_operator.adapters.webhook_server import AdmissionApp, Servers, metrics_app
from finops_operator.controllers import admission_policy_controller as admission_policy
from finops_operator.controllers import assembly
from finops_operator.controllers.assembly import Controllers, OperatorState, assemble, elect
from finops_operator.controllers.config_watch import ConfigWatch
from finops_operator.controllers.policy_controller import POLICIES, RULES, event_poster
from finops_operator.controllers.report_controller import REPORTS
from finops_operator.controllers.watch_feeds import served_dra_kinds, watch_lean_kinds
from finops_operator.controllers.webhook_tls import first_shared_certificate, inject_ca_bundle
from finops_operator.domain import conventions
from finops_operator.domain.config import Config
from finops_operator.domain.policies.policy_reports import PUBLISHED_APIS, REPORT_LABELS
from finops_operator.domain.policies.webhook_conditions import webhook_settings

logger = logging.getLogger("finops_operator")

MANAGED: Mapping[str, str] = {conventions.MANAGED_BY_LABEL: conventions.MANAGED_BY}


def build_registry(
    state: OperatorState, run: Controllers, credentials: kube_credentials.Credentials
) -> kopf.OperatorRegistry:
    registry = kopf.OperatorRegistry()
    policies, reports, published = run.policies, run.reports, run.published

    @kopf.on.startup(registry=registry)
    def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
        settings.posting.level = logging.WARNING  # only the Events we post on purpose
        settings.watching.server_timeout = 300
        settings.networking.request_timeout = 30

    @kopf.on.login(registry=registry)
    def login(**_: Any) -> kopf.ConnectionInfo:
        return kopf.ConnectionInfo(**vars(kube_credentials.login_fields(credentials)))

    @kopf.on.event("v1", "namespaces", registry=registry)
    async def index_namespace(type: str | None, body: kopf.Body, **_: Any) -> None:
        if state.index_namespace(type, body) and policies.policies:
            await policies.on_namespace_changed(str(body.get("metadata", {}).get("name")))

    @kopf.on.event(*POLICIES, registry=registry)
    async def reconcile_policy(type: str | None, body: kopf.Body, **_: Any) -> None:
        await policies.on_policy_event(type, body)

    @kopf.on.event(*RULES, labels=MANAGED, registry=registry)
    async def keep_rule_in_step(type: str | None, body: kopf.Body, **_: Any) -> None:
        await policies.on_rule_event(type, body)

    @kopf.on.event(*REPORTS, registry=registry)
    def index_cost_report(type: str | None, body: kopf.Body, **_: Any) -> None:
        reports.observe(type, body)

    if published is not None:

        def index_policy_report(type: str | None, body: kopf.Body, **_: Any) -> None:
            published.observe(type, body)

        for api in PUBLISHED_APIS:  # spelt out: tests derive the RBAC from these calls
            if api is published.api:
                kopf.on.event(
                    api.group, api.version, api.plural, labels=REPORT_LABELS, registry=registry
                )(index_policy_report)
    if state.config.admission_policies.enabled:
        ensure = run.admission_policies.ensure

        async def keep_in_step(**_: Any) -> None:
            await ensure()

        for group, version, plural in admission_policy.WATCHED_RESOURCES:
            id = f"keep_{plural}_{version}_in_step"
            kopf.on.event(group, version, plural, labels=MANAGED, registry=registry, id=id)(
                keep_in_step
            )
    return registry


def run_operator(
    config: Config, namespace: str, options: assembly.RunOptions, config_problem: str | None = None
) -> int:
    """`config_problem`: why the file was refused, when `config` is the safe default."""
    pace_garbage_collector()
    state = OperatorState(config=config, namespace=namespace, config_problem=config_problem)
    asyncio.run(serve(state, options))
    return 0


async def serve(
    state: OperatorState, options: assembly.RunOptions, stop_flag: asyncio.Event | None = None
) -> None:
    """Run kopf, the admission server, the metrics server and the writers until stopped."""
    identity = f"{socket.gethostname()}-{uuid.uuid4().hex[:6]}"
    metrics = OperatorMetrics()
    # Bulk calls get the client's full timeout: one that gives up early only turns a slow
    # write into one of unknown outcome, read back before it is retried.
    credentials, kube_agent = kube_credentials.load(), user_agent(identity, "operator")
    kube = KubeApi(credentials, agent=kube_agent)
    # The Lease has a thread and a connection of its own, and a timeout within its
    # duration: a renewal never queues behind the audit's writes, and a partition ends
    # it in time (docs/architecture.md, "Leadership never waits behind bulk work").
    lease_timeout = max(1.0, min(10.0, options.lease_seconds / 3))
    lease_agent, watch_agent = user_agent(identity, "lease"), user_agent(identity, "watch")
    lease_kube = KubeApi(credentials, lease_timeout, workers=1, name="lease", agent=lease_agent)
    serving, reload_certificate = await _serving_certificate(state, kube, metrics, options)
    leadership = elect(
        options.leader_election, lease_kube, identity, state.namespace, options.lease_seconds
    )
    leadership.on_error = metrics.leader_election_errors.inc
    # The leader's writes: each is sent only if this replica still leads when its turn comes.
    writes = kube.writing_only_while(lambda: leadership.is_leader)
    run = assemble(
        state,
        leadership=leadership,
        kube=writes,
        post_event=event_poster(writes, identity),
        metrics=metrics,
        prometheus=PrometheusClient(state.config.prometheus),
        # Its own client: a short timeout, and a bounded log (it asks every minute for ever).
        heartbeat=PrometheusClient(state.config.prometheus, timeout=15.0, keep_log=10),
    )
    gate = state.sync.index_not_loaded  # admission answers 503 until the namespaces are in
    admission = AdmissionApp(state.policy, state.namespaces, metrics, gate).app()
    exposition = InventoryExposition(
        state.inventory, state.config.pricing, pod_series=state.config.metrics.pod_series
    )
    secure = state.config.metrics.secure
    # Its own client, so a scrape's reviews never queue behind the audit's bulk writes.
    reviewer = (
        KubeApi(credentials, 5.0, workers=2, name="metrics-auth", agent=kube_agent)
        if secure
        else None
    )
    guard = MetricsGuard(reviewer, metrics.registry) if reviewer is not None else None
    scrape = metrics_app(metrics, state.sync.not_ready, exposition, guard)
    host, servers = options.webhook_host, Servers(options.drain_seconds)
    await servers.start(admission, host, options.webhook_port, serving.context)
    await servers.start(scrape, host, options.metrics_port, serving.context if secure else None)
    logger.info(
        "Admission on https://%s:%d%s and %s, metrics on %s://:%d/metrics%s, mode %s",
        *(host, options.webhook_port, conventions.VALIDATE_PATH, conventions.MUTATE_PATH),
        *("https" if secure else "http", options.metrics_port),
        " (bearer token, TokenReview and SubjectAccessReview)" if secure else "",
        state.config.mode,
    )
    background = {
        **run.background(),
        "readiness": state.sync.run(kube),
        "lean-watches": watch_lean_kinds(
            functools.partial(ListWatch, Connection.of(credentials, watch_agent)),
            *(run.audit, state.inventory, state.sync, state.namespaces_indexed),
            functools.partial(served_dra_kinds, kube, state.config.gpu_dra_drivers),
        ),
        "trim-after-sync": release_after_sync(lambda: state.sync.synced),
    }
    if reload_certificate is not None:
        background["certificate-reload"] = reload_certificate
    if options.config_map is not None:
        # Every replica reports on its own configuration, leader or not: ungated Events.
        post, config_agent = event_poster(kube, identity), user_agent(identity, "config")
        problem = state.config_problem
        watch = ConfigWatch(
            state.config, parse_config_text, metrics, post, safe_default_problem=problem
        )
        open_watch = functools.partial(ListWatch, Connection.of(credentials, config_agent))
        background["config-watch"] = watch.run(open_watch, state.namespace, options.config_map)
    tasks = [asyncio.create_task(job, name=name) for name, job in background.items()]
    # Read at each scrape: a leader whose renewal hangs shows 0 from its deadline on.
    metrics.leader.set_function(lambda: 1.0 if leadership.is_leader else 0.0)
    stop_leading = leadership.start_in_thread(asyncio.get_running_loop())
    try:
        registry = build_registry(state, run, credentials)
        # Drained and closed as kopf stops, before it cancels the tasks of their connections.
        kopf.on.cleanup(registry=registry)(servers.stop)
        await kopf.operator(
            registry=registry,
            clusterwide=True,
            standalone=True,
            stop_flag=stop_flag,
            # Ours, not kopf's default: that asks getpass.getuser(), which raises KeyError
            # for a uid without a passwd entry, as every pod runs (runAsUser: 65532).
            identity=Identity(identity),
        )
    finally:
        for task in tasks:
            task.cancel()
        await servers.stop()  # when kopf did not get to its cleanup
        await asyncio.to_thread(stop_leading)
        kube.close()
        lease_kube.close()
        if reviewer is not None:
            reviewer.close()


async def _serving_certificate(
    state: OperatorState, kube: KubeApi, metrics: OperatorMetrics, options: assembly.RunOptions
) -> tuple[tls.ServingCertificate, Coroutine[Any, Any, None] | None]:
    """The certificate to serve (a shared Secret, files or self-signed), and its reload."""
    every, namespace, secret = options.cert_reload_seconds, state.namespace, options.webhook_secret
    if secret is None:
        cert, key = options.webhook_cert, options.webhook_key
        read = tls.file_source(cert, key) if cert is not None and key is not None else None
        return await tls.serving_certificate(metrics.registry, every, read)

    conditions = webhook_settings(state.config, namespace)  # with the CA, by every replica

    async def first() -> tls.TlsPair:  # made once by the first replica, then shared
        pair = await first_shared_certificate(kube, namespace, secret, for_service, conditions)
        return tls.TlsPair(*pair)

    async def new_ca(changed: tls.TlsPair) -> None:
        await inject_ca_bundle(kube, changed.ca, conditions)

    read_secret = tls.secret_source(kube, namespace, secret)
    return await tls.serving_certificate(metrics.registry, every, read_secret, first, new_ca)
