"""The controllers of one replica, wired to one another and to the ports.

`operator.py` builds the adapters and hands them here as ports; `assemble`
builds the writers and gives the leadership its callbacks: on election, the
catch-up of every writer; at each round, the flush of the pending audit writes.
`elect` picks the leadership: a Lease (`Leadership`), or `AlwaysLeader` for
`--no-leader-election`. The callbacks are the same in both modes. They used to
be wired in `operator.py`, where `--no-leader-election` ran the catch-up once
and never the flush, so a failed audit write was never retried.
"""

from __future__ import annotations

from collections.abc import Coroutine, Mapping
from dataclasses import dataclass
from typing import Any

from finops_operator.controllers.admission_policy_controller import AdmissionPolicyController
from finops_operator.controllers.audit_writer import AuditWriter
from finops_operator.controllers.informer_sync import InformerSync
from finops_operator.controllers.leadership import AlwaysLeader, Leadership
from finops_operator.controllers.policy_controller import EventPoster, PolicyController
from finops_operator.controllers.policy_report_writer import PolicyReportWriter
from finops_operator.controllers.report_controller import ReportController
from finops_operator.controllers.workload_audit import Violations, WorkloadAudit
from finops_operator.domain.config import Config, ReportApi
from finops_operator.domain.policies.label_check import LabelPolicy
from finops_operator.ports import KubePort, MetricsPort, PrometheusPort


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
    *,
    config: Config,
    namespace: str,
    leadership: Leadership,
    kube: KubePort,
    post_event: EventPoster,
    metrics: MetricsPort,
    prometheus: PrometheusPort,
    heartbeat: PrometheusPort,
    policy: LabelPolicy,
    namespaces: Mapping[str, Mapping[str, str]],
    sync: InformerSync,
) -> Controllers:
    """The controllers over `kube` (the leader's writes), their callbacks on `leadership`."""

    def leading() -> bool:
        return leadership.is_leader

    writer = AuditWriter(kube, leading, leadership.identity)
    policies = PolicyController(
        config, namespace, kube, leading, post_event, metrics, prometheus=heartbeat
    )
    reports = ReportController(config, kube, prometheus, policies.policies, metrics, leading)
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
    audit = WorkloadAudit(
        config, policy, namespaces, writer, Violations(metrics), published, sync.observe
    )
    leadership.on_elected += [policies.catch_up, reports.catch_up, admission_policies.ensure]
    if published is not None:
        leadership.on_elected.append(published.catch_up)
    leadership.while_leading.append(writer.flush)
    return Controllers(leadership, writer, audit, policies, reports, admission_policies, published)
