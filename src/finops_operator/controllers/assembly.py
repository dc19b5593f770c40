"""The controllers of one replica, wired to one another and to the ports.

`operator.py` builds the adapters and hands them here as ports; `assemble`
builds the writers and gives the leadership its callbacks: on election, the
catch-up of every writer; at each round, the flush of the pending audit writes.
`elect` picks the leadership: a Lease (`Leadership`), or `AlwaysLeader` for
`--no-leader-election`. The callbacks are the same in both modes. They used to
be wired in `operator.py`, where `--no-leader-election` ran the catch-up once
and never the flush, so a failed audit write was never retried.

`OperatorState` is what the controllers and the servers share: the namespace
index (filled from kopf's watch of Namespaces), the GPU inventory, readiness.
`RunOptions` are the flags `finops-operator run` serves with.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any

from finops_operator.controllers.admission_policy_controller import AdmissionPolicyController
from finops_operator.controllers.audit_writer import AuditWriter
from finops_operator.controllers.exemption_recorder import ExemptionRecorder
from finops_operator.controllers.informer_sync import WATCHED, InformerSync
from finops_operator.controllers.leadership import AlwaysLeader, Leadership
from finops_operator.controllers.policy_controller import EventPoster, PolicyController
from finops_operator.controllers.policy_report_writer import PolicyReportWriter
from finops_operator.controllers.report_controller import ReportController
from finops_operator.controllers.watch_feeds import LEAN_KINDS
from finops_operator.controllers.workload_audit import Violations, WorkloadAudit
from finops_operator.domain import conventions
from finops_operator.domain.config import Config, ReportApi
from finops_operator.domain.gpus.inventory import Inventory
from finops_operator.domain.policies.label_check import LabelPolicy
from finops_operator.ports import KubePort, MetricsPort, PrometheusPort


@dataclass
class OperatorState:
    """What the controllers and the servers share: the label policy, the namespace index,
    the GPU inventory and readiness."""

    config: Config
    namespace: str  # the operator's own
    # Why the configuration file was refused, when `config` is the safe default in its place.
    config_problem: str | None = None
    policy: LabelPolicy = field(init=False)
    namespaces: dict[str, dict[str, str]] = field(default_factory=dict)  # name -> labels
    inventory: Inventory = field(init=False)
    sync: InformerSync = field(  # `/readyz`
        default_factory=lambda: InformerSync(
            watched={kind: where for kind, where in WATCHED.items() if kind not in LEAN_KINDS}
        )
    )

    def __post_init__(self) -> None:
        self.policy = LabelPolicy(self.config)
        self.inventory = Inventory(self.policy.is_gpu, frozenset(self.config.gpu_dra_drivers))

    def index_namespace(self, type: str | None, body: Mapping[str, Any]) -> bool:
        """A watch event of a Namespace: its labels, read by admission, the audit and the
        CostPolicies' lanes. True when its team label changed (the lane of its policies)."""
        meta = body.get("metadata") or {}
        name = str(meta.get("name") or "")
        before = self.namespaces.get(name, {}).get(conventions.TEAM_LABEL)
        if type == "DELETED":
            self.namespaces.pop(name, None)
        else:
            self.namespaces[name] = dict(meta.get("labels") or {})
        self.sync.observe("Namespace", meta.get("uid"))
        return self.namespaces.get(name, {}).get(conventions.TEAM_LABEL) != before

    async def namespaces_indexed(self, check_seconds: float = 0.1) -> None:
        """Until every Namespace listed has been indexed: a workload is judged with the
        labels of its namespace, so the workloads' watches wait for this."""
        while "Namespace" in self.sync.missing() and not self.sync.synced:
            await asyncio.sleep(check_seconds)


@dataclass(frozen=True)
class RunOptions:
    """How `finops-operator run` serves: its flags (`cli/run.py` documents each)."""

    webhook_host: str
    webhook_port: int
    metrics_port: int
    webhook_cert: str | None = None
    webhook_key: str | None = None
    webhook_secret: str | None = None
    leader_election: bool = True
    lease_seconds: int = 15
    cert_reload_seconds: float = 10.0
    config_map: str | None = None
    drain_seconds: float = 5.0


def elect(
    leader_election: bool, kube: KubePort, identity: str, namespace: str, lease_seconds: int
) -> Leadership:
    """The leadership: a Lease of `lease_seconds`, renewed every third of it; or, without
    leader election, one that leads from the start and runs its rounds as often."""
    kind = Leadership if leader_election else AlwaysLeader
    return kind(kube, identity, namespace, duration=lease_seconds, renew_every=lease_seconds / 3)


@dataclass
class Controllers:
    """What one replica runs besides kopf, the servers and the watches."""

    leadership: Leadership
    writer: AuditWriter
    audit: WorkloadAudit
    policies: PolicyController
    reports: ReportController
    admission_policies: AdmissionPolicyController
    published: PolicyReportWriter | None  # None when `policyReports.api` is off

    def background(self) -> dict[str, Coroutine[Any, Any, None]]:
        """The loops to run as tasks, by name."""
        loops = {
            "cost-reports": self.reports.run_forever(),
            "rules-evaluating": self.policies.watch_rules_evaluating(),
        }
        if self.published is not None:
            loops["policy-reports"] = self.published.run_forever()
        return loops


def assemble(
    state: OperatorState,
    *,
    leadership: Leadership,
    kube: KubePort,
    post_event: EventPoster,
    metrics: MetricsPort,
    prometheus: PrometheusPort,
    heartbeat: PrometheusPort,
) -> Controllers:
    """The controllers over `kube` (the leader's writes), their callbacks on `leadership`."""
    config, namespace, namespaces, sync = (
        state.config,
        state.namespace,
        state.namespaces,
        state.sync,
    )

    def leading() -> bool:
        return leadership.is_leader

    writer = AuditWriter(kube, leading, leadership.identity)
    policies = PolicyController(
        config,
        namespace,
        kube,
        leading,
        post_event,
        metrics,
        prometheus=heartbeat,
        namespaces=namespaces,
    )
    reports = ReportController(
        config, kube, prometheus, policies.policies, metrics, leading, lanes=policies.lane
    )
    admission_policies = AdmissionPolicyController(config, namespace, kube, leading)
    published = None
    if config.policy_reports.api is not ReportApi.OFF:
        published = PolicyReportWriter(
            kube,
            config.policy_reports.api,
            metrics,
            leading=leading,
            ready=lambda: sync.synced,
            namespace_exists=lambda name: name in namespaces,
            debounce=config.policy_reports.debounce_seconds,
        )
    exemptions = ExemptionRecorder(kube, metrics, leading, leadership.identity)
    audit = WorkloadAudit(
        config,
        state.policy,
        namespaces,
        writer,
        Violations(metrics),
        published,
        sync.observe,
        exemptions,
    )
    leadership.on_elected += [policies.catch_up, reports.catch_up, admission_policies.ensure]
    if published is not None:
        leadership.on_elected.append(published.catch_up)
    leadership.while_leading += [writer.flush, exemptions.flush]
    return Controllers(leadership, writer, audit, policies, reports, admission_policies, published)
