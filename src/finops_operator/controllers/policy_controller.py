"""Keeps each CostPolicy's PrometheusRule, and the shared recording rules, in step.

Level-based: whatever happened (a policy changed, its rule was edited or
deleted, the operator restarted), `reconcile` compares what is with what
`policy_reconciler` says should be, and writes only the difference. Failures
become a `Ready=False` condition, a Warning Event and a metric, so a tenant who
cannot read the operator's logs still sees them.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from finops_operator.controllers.apply import Applied, apply
from finops_operator.domain import conventions
from finops_operator.domain.config import Config
from finops_operator.domain.events import ObjectRef, event_body
from finops_operator.domain.rules.policy_lanes import Lane, budget_conflicts, lane_of
from finops_operator.domain.rules.policy_reconciler import (
    HEARTBEAT_QUERY,
    NOT_CHECKED,
    READY,
    PolicyPlan,
    RulesEvaluation,
    budget_claim,
    plan_policy,
    policy_status,
    rule_patch,
    rules_evaluation,
    status_patch,
)
from finops_operator.domain.rules.prometheus_rule import (
    legacy_rule_names,
    recording_rules_prometheus_rule,
    rule_conflict,
    rule_name_for,
)
from finops_operator.errors import KubeError, PrometheusError
from finops_operator.ports import KubePort, MetricsPort, PrometheusPort

logger = logging.getLogger(__name__)

RULES = ("monitoring.coreos.com", "v1", "prometheusrules")
POLICIES = (conventions.API_GROUP, conventions.API_VERSION, conventions.COSTPOLICY_PLURAL)
PolicyKey = tuple[str, str]  # namespace, name
EventPoster = Callable[
    [Mapping[str, Any], str, str, str], Awaitable[None]
]  # body, type, reason, message


@dataclass
class PolicyController:
    config: Config
    namespace: str
    kube: KubePort
    leading: Callable[[], bool]
    post_event: EventPoster
    metrics: MetricsPort
    # Where the RulesEvaluating condition is read; None: never asked (Unknown).
    prometheus: PrometheusPort | None = None
    rules: RulesEvaluation = NOT_CHECKED
    policies: dict[PolicyKey, dict[str, Any]] = field(default_factory=dict)
    # Namespace -> labels (the namespace index): a namespace's team label is its lane.
    namespaces: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    # The Conflict message of each policy sharing a team's budget, as last reconciled.
    conflicts: dict[PolicyKey, str] = field(default_factory=dict)
    # Each policy's plan, kept while its body (the same object) and its lane are: finding
    # a budget conflict looks at every policy, which must not render every policy again.
    plans: dict[PolicyKey, tuple[Mapping[str, Any], Lane, PolicyPlan]] = field(default_factory=dict)
    locks: defaultdict[PolicyKey, asyncio.Lock] = field(
        default_factory=lambda: defaultdict(asyncio.Lock)
    )

    def forget(self, key: PolicyKey) -> None:
        self.policies.pop(key, None)
        self.plans.pop(key, None)
        self.locks.pop(key, None)
        self.metrics.forget_policy(*key)

    def remember(self, body: Mapping[str, Any]) -> PolicyKey:
        meta = body.get("metadata") or {}
        key = (str(meta.get("namespace")), str(meta.get("name")))
        self.policies[key] = {
            **body,
            "apiVersion": conventions.API_GROUP_VERSION,
            "kind": conventions.COSTPOLICY_KIND,
        }
        return key

    def lane(self, namespace: str) -> Lane:
        """The teams the policies of `namespace` may act on (policy_lanes)."""
        return lane_of(namespace, self.namespaces.get(namespace), self.config, self.namespace)

    def plan(self, key: PolicyKey, body: Mapping[str, Any]) -> PolicyPlan:
        lane = self.lane(key[0])
        kept = self.plans.get(key)
        if kept is not None and kept[0] is body and kept[1] == lane:
            return kept[2]
        plan = plan_policy(body, self.config, lambda _: lane)
        self.plans[key] = (body, lane, plan)
        return plan

    def budget_conflict_messages(self) -> dict[PolicyKey, str]:
        """The Conflict message of every policy that shares its team's budget."""
        claims = (budget_claim(body, self.plan(key, body)) for key, body in self.policies.items())
        return budget_conflicts(claim for claim in claims if claim is not None)

    async def on_policy_event(self, type: str | None, body: Mapping[str, Any]) -> None:
        """A watch event of a CostPolicy: reconcile it, or drop a deleted one and its rule."""
        if type != "DELETED":
            key = self.remember(body)
            await self.reconcile(key)
            await self._reconcile_changed_conflicts(but=key)
            return
        meta = body.get("metadata") or {}
        self.forget((str(meta.get("namespace") or ""), str(meta.get("name") or "")))
        if self.leading():
            try:
                await self.delete_owned_rule(body)
            except KubeError as err:
                logger.error("Cannot delete the rule of a deleted CostPolicy: %s", err)
        await self._reconcile_changed_conflicts()

    async def on_namespace_changed(self, namespace: str) -> None:
        """A namespace's team label changed: its policies' lanes did."""
        for key in [key for key in self.policies if key[0] == namespace]:
            await self.reconcile(key)
        await self._reconcile_changed_conflicts()

    async def _reconcile_changed_conflicts(self, but: PolicyKey | None = None) -> None:
        """Policies whose Conflict changed with another's change: a Conflict is on both."""
        now = self.budget_conflict_messages()
        changed = {
            key
            for key in set(now) | set(self.conflicts)
            if now.get(key) != self.conflicts.get(key) and key != but and key in self.policies
        }
        self.conflicts = now
        for key in sorted(changed):
            await self.reconcile(key)

    async def on_rule_event(self, type: str | None, body: Mapping[str, Any]) -> None:
        """A watch event of a PrometheusRule we manage: an edit or a delete is undone."""
        seen = None if type == "DELETED" else body
        if self.is_recording_rules(body):
            await self.ensure_recording_rules(seen)
        elif (key := self.owner_of(body)) is not None:
            await self.reconcile(key, seen)

    async def reconcile(self, key: PolicyKey, rule_now: Mapping[str, Any] | None = None) -> None:
        """Bring the policy's rule and status in step; `rule_now` spares a read when known."""
        if not self.leading():
            return
        async with self.locks[key]:
            body = self.policies.get(key)
            if body is None:
                return
            plan = self.plan(key, body)
            if plan.out_of_lane is not None:
                logger.warning("CostPolicy %s/%s: %s", *key, plan.out_of_lane)
            error = conflict = None
            try:
                conflict = await self._apply_rule(key, body, plan, rule_now)
            except KubeError as err:
                error = f"cannot write the PrometheusRule: {err}"
            await self._write_status(key, body, plan, error, conflict)

    async def _apply_rule(
        self,
        key: PolicyKey,
        body: Mapping[str, Any],
        plan: PolicyPlan,
        rule_now: Mapping[str, Any] | None,
    ) -> str | None:
        """Write the policy's rule; the reason it is someone else's rule, if it is."""
        namespace = key[0]
        if plan.rule is None:
            await self.delete_owned_rule(body)
            return None
        desired = plan.rule
        name = desired["metadata"]["name"]
        if rule_now is not None and (rule_now.get("metadata") or {}).get("name") != name:
            rule_now = None  # a watch event of a rule under an earlier name
        conflict: str | None = None

        def diff(current: Mapping[str, Any]) -> dict[str, Any] | None:
            nonlocal conflict
            conflict = rule_conflict(current, desired)
            return None if conflict else rule_patch(current, desired)

        result = await apply(self.kube, RULES, desired, diff, current=rule_now or None)
        if conflict is not None:
            logger.warning("CostPolicy %s/%s: %s", *key, conflict)
            return conflict
        for legacy in legacy_rule_names(key[1]):
            await self.delete_owned_rule(body, legacy)
        if result.applied is Applied.CREATED:
            logger.info("Created PrometheusRule %s/%s", namespace, name)
        elif result.applied is Applied.PATCHED:
            logger.info("Brought PrometheusRule %s/%s back in step", namespace, name)
        return None

    async def _write_status(
        self,
        key: PolicyKey,
        body: Mapping[str, Any],
        plan: PolicyPlan,
        error: str | None,
        conflict: str | None = None,
    ) -> None:
        current = body.get("status") or {}
        desired = policy_status(
            current,
            generation=(body.get("metadata") or {}).get("generation"),
            plan=plan,
            apply_error=error,
            now=datetime.datetime.now(datetime.UTC),
            conflict=conflict,
            rules=self.rules,
            budget_conflict=self.budget_conflict_messages().get(key),
        )
        ready = desired["conditions"][0]
        self.metrics.mark_policy_ready(*key, ready=ready["status"] == "True")
        patch = status_patch(current, desired)
        if patch is None:
            return
        if ready["status"] == "False":
            self.metrics.count_policy_failure(key[0], ready["reason"])
            await self.post_event(body, "Warning", ready["reason"], ready["message"])
        elif _was_not_ready(current):
            await self.post_event(body, "Normal", ready["reason"], ready["message"])
        try:
            await self.kube.patch(*POLICIES, key[0], key[1], patch, status=True)
            self.policies[key] = {**body, "status": desired}
        except KubeError as err:
            logger.error("Cannot write the status of CostPolicy %s/%s: %s", *key, err)

    async def delete_owned_rule(self, body: Mapping[str, Any], name: str | None = None) -> None:
        """Remove the policy's rule (or the rule `name`), but only one this policy owns."""
        meta = body.get("metadata") or {}
        namespace, uid = meta.get("namespace"), meta.get("uid")
        name = name or rule_name_for(str(meta.get("name")))
        current = await self.kube.get(*RULES, namespace, name)
        owners = ((current or {}).get("metadata") or {}).get("ownerReferences") or []
        if current is not None and any(o.get("uid") == uid for o in owners):
            await self.kube.delete(*RULES, namespace, name)
            logger.info("Deleted PrometheusRule %s/%s", namespace, name)

    async def catch_up(self) -> None:
        """After becoming the leader (or at start, without election; or after the Lease
        had to be recreated): reconcile everything.

        The policies known from the watch are read again first: one the API no longer
        has (lost with its state, deleted while the watch was cut) is forgotten rather
        than given a rule again."""
        await self.ensure_recording_rules()
        for key in list(self.policies):
            if not self.leading():
                return
            try:
                fresh = await self.kube.get(*POLICIES, *key)
            except KubeError as err:
                logger.warning("Cannot read CostPolicy %s/%s again: %s", *key, err)
            else:
                if fresh is None:
                    logger.info("CostPolicy %s/%s is gone from the API: forgotten", *key)
                    self.forget(key)
                    continue
                if key in self.policies:
                    self.remember(fresh)
            await self.reconcile(key)

    async def ensure_recording_rules(self, rule_now: Mapping[str, Any] | None = None) -> None:
        if not self.leading():
            return
        desired = recording_rules_prometheus_rule(
            self.namespace,
            self.config.rule_labels,
            self.config.llm_gateway,
            self.config.cluster.label,
        )
        name = desired["metadata"]["name"]
        try:
            result = await apply(
                self.kube,
                RULES,
                desired,
                lambda current: rule_patch(current, desired),
                current=rule_now or None,
            )
            if result.applied is Applied.CREATED:
                logger.info("Created the shared recording rules %s/%s", self.namespace, name)
        except KubeError as err:
            logger.error(
                "Cannot write the shared recording rules %s/%s: %s (are the Prometheus "
                "Operator CRDs installed?)",
                self.namespace,
                name,
                err,
            )

    async def check_rules_evaluating(self, *, reconcile: bool = True) -> RulesEvaluation:
        """Ask Prometheus whether it evaluates the shared recording rules (the heartbeat).

        When the answer changes, every policy is reconciled so that its
        RulesEvaluating condition (and Ready) say so at once.
        """
        if self.prometheus is None or not self.leading():
            return self.rules
        answer: list[dict[str, Any]] | None = None
        error: str | None = None
        try:
            answer = await asyncio.to_thread(self.prometheus.evaluate, HEARTBEAT_QUERY, time.time())
        except PrometheusError as err:
            error = str(err)
        judged = rules_evaluation(
            answer,
            error=error,
            rule_labels=self.config.rule_labels,
            namespace=self.namespace,
            prometheus_url=self.prometheus.config.url,
        )
        if judged != self.rules:
            log = logger.warning if judged.evaluating is not True else logger.info
            log("RulesEvaluating=%s: %s", judged.evaluating, judged.message)
            self.rules = judged
            if reconcile:
                for key in list(self.policies):
                    await self.reconcile(key)
        return judged

    async def watch_rules_evaluating(self) -> None:
        """Check the heartbeat every `prometheus.rulesCheckSeconds`, for ever."""
        while True:
            await self.check_rules_evaluating()
            await asyncio.sleep(self.config.prometheus.rules_check_seconds)

    def owner_of(self, rule: Mapping[str, Any]) -> PolicyKey | None:
        meta = rule.get("metadata") or {}
        for ref in meta.get("ownerReferences") or []:
            if ref.get("kind") == conventions.COSTPOLICY_KIND and ref.get("controller"):
                return (str(meta.get("namespace")), str(ref.get("name")))
        return None

    def is_recording_rules(self, rule: Mapping[str, Any]) -> bool:
        meta = rule.get("metadata") or {}
        return (
            meta.get("namespace") == self.namespace
            and meta.get("name") == conventions.RECORDING_RULES_NAME
        )


def _was_not_ready(status: Mapping[str, Any]) -> bool:
    return any(
        c.get("type") == READY and c.get("status") == "False"
        for c in status.get("conditions") or []
    )


def event_poster(kube: KubePort, reporter: str) -> EventPoster:
    """Posts an Event about an object as `reporter`; a failure is logged, never raised."""

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
