"""Admission, the audit and lint agree on every object of a seeded-random corpus.

They share one verdict, so they must tell the same story: the same problems in the
admission warnings, the audit annotation and the lint finding; a denial exactly
when the mode is `enforce` and no leniency applies; nothing where the mode is `off`
(except lint, which knows no mode) or an owner is left to answer.

Admission alone knows who writes the object; the audit and lint take an exempt
annotation as the object states it. So the agreement is checked for a writer who
may exempt (a cluster admin); test_exemption_authority.py covers the others.
An owner claim counts at admission when the kube-controller-manager writes the
object, and in the audit when the owner vouches for it: every other case that
claims an owner is written by the ReplicaSet controller, and the audit's owner
cache holds an owner with the object's own template (test_owners.py covers the
claims nobody vouches for).
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from finops_devtools.devcluster.reviews import CLUSTER_ADMIN, REPLICASET_CONTROLLER, review
from finops_operator.cli.lint import LintResult, lint_objects
from finops_operator.domain.config import Config, Mode
from finops_operator.domain.policies import admission
from finops_operator.domain.policies.admission import Outcome
from finops_operator.domain.policies.audit import AuditReason, audit_workload
from finops_operator.domain.policies.label_check import NO_VIOLATIONS, Violations
from finops_operator.domain.policies.owners import OwnerLookup, OwnerRecord, owner_record
from finops_operator.domain.policies.verdict import effective_mode, judge
from finops_operator.domain.workloads import created_by_controller
from tests.domain.policies.test_admission import apply_patch
from tests.domain.policies.workload_corpus import Case, corpus

CASES = list(corpus())
EXEMPT_NAMESPACES = Config().exempt_namespaces


def lint_finding(case: Case) -> Violations:
    result = LintResult()
    lint_objects([case.obj], "f.yaml", case.policy, result)
    assert len(result.findings) <= 1
    return result.findings[0].violations if result.findings else NO_VIOLATIONS


def owner_like(case: Case) -> OwnerLookup:
    """An owner cache whose every owner has the uid the corpus claims and the object's template."""
    record = owner_record(
        {**case.obj, "metadata": {**case.obj["metadata"], "uid": "u"}}, case.policy
    )

    def lookup(kind: str, namespace: str, name: str) -> OwnerRecord | None:
        return record

    return lookup


def mode_of(case: Case) -> Mode:
    return effective_mode(case.policy.config.mode, case.namespaces.get(case.namespace or ""))


def test_the_corpus_covers_every_outcome() -> None:
    outcomes = {
        admission.validate(admission.parse_review(review(c.obj)), c.policy, c.namespaces).outcome
        for c in CASES
    }
    assert outcomes == {Outcome.SKIPPED, Outcome.EXEMPT, Outcome.COMPLIANT, Outcome.WARNED} | {
        Outcome.DENIED
    }
    reasons = {audit_workload(c.obj, c.policy, None, owner_like(c)).reason for c in CASES}
    assert reasons == set(AuditReason)


@pytest.mark.parametrize("index", range(0, len(CASES), 50), ids=lambda i: f"cases {i}+")
def test_admission_audit_and_lint_agree_on_a_create(index: int) -> None:
    for case in CASES[index : index + 50]:
        found = lint_finding(case)
        claimed = created_by_controller(case.obj)
        by_controller = claimed and len(found.missing) % 2 == 0  # the others: a forged claim
        user = REPLICASET_CONTROLLER if by_controller else CLUSTER_ADMIN
        request = admission.parse_review(review(case.obj, user=user))
        decision = admission.validate(request, case.policy, case.namespaces)
        labels = case.namespaces.get(case.namespace or "")
        outcome = audit_workload(case.obj, case.policy, labels, owner_like(case))
        mode = mode_of(case)
        where = json.dumps(case.obj, default=str)[:300]

        # the warnings and the audit annotation tell the lint finding's problems
        if decision.outcome in (Outcome.WARNED, Outcome.DENIED):
            warnings = [w for w in decision.warnings if "does not exempt" not in w]
            problems = [w.partition(": ")[2].partition(": ")[2] for w in warnings]
            assert problems == found.problems(), where
            assert decision.audit_annotations == {"violations": found.annotation()}, where
        elif decision.outcome is Outcome.EXEMPT and request.namespace not in EXEMPT_NAMESPACES:
            assert decision.warnings in ((), (admission.exempt_note(request.ref),)), where
        else:
            assert decision.warnings == () and not decision.audit_annotations, where
            assert decision.outcome is Outcome.COMPLIANT or not found or mode is Mode.OFF, where

        # denied exactly when enforced, violating, and not made by the controller manager
        denied = bool(found) and mode is Mode.ENFORCE and not by_controller
        assert (decision.outcome is Outcome.DENIED) is denied, where
        assert decision.allowed is not denied, where

        # the audit reports the lint finding, unless the mode is off or an owner answers
        expected = NO_VIOLATIONS if mode is Mode.OFF or claimed else found
        assert outcome.violations == expected, where
        assert outcome.desired == (expected.annotation() if expected else None), where


@pytest.mark.parametrize("index", range(0, len(CASES), 50), ids=lambda i: f"cases {i}+")
def test_an_update_is_never_stricter_than_a_create(index: int) -> None:
    for case in CASES[index : index + 50]:
        create = admission.parse_review(review(case.obj, user=case.user))
        update = admission.parse_review(review(case.obj, "UPDATE", old=case.old, user=case.user))
        on_create = admission.validate(create, case.policy, case.namespaces)
        on_update = admission.validate(update, case.policy, case.namespaces)
        if on_create.allowed:
            assert on_update.allowed
        else:
            predates = any("predate" in w for w in on_update.warnings)
            kept = on_update.outcome is Outcome.EXEMPT  # an exemption it had, nothing added
            assert on_update.allowed is (predates or kept)
            if kept:
                continue
            assert on_update.warnings[: len(on_create.warnings)] == on_create.warnings


@pytest.mark.parametrize("index", range(0, len(CASES), 50), ids=lambda i: f"cases {i}+")
def test_after_mutation_no_label_the_namespace_supplies_is_missing(index: int) -> None:
    for case in CASES[index : index + 50]:
        request = admission.parse_review(review(case.obj, user=CLUSTER_ADMIN))
        mutation = admission.mutate(request, case.policy, case.namespaces)
        patched = apply_patch(copy.deepcopy(case.obj), mutation.patch or [])
        supplied = case.namespaces.get(case.namespace or "", {})
        before = judge(case.obj, policy=case.policy, namespace=case.namespace)
        after = judge(patched, policy=case.policy, namespace=case.namespace)
        if mutation.outcome is Outcome.MUTATED:
            assert set(after.violations.missing) == set(before.violations.missing) - set(supplied)
        else:
            assert patched == case.obj


def test_check_workload_is_the_verdicts_violations() -> None:
    for case in CASES:
        verdict = judge(case.obj, policy=case.policy, namespace=case.namespace)
        assert case.policy.check_workload(case.obj) == verdict.violations


def test_the_corpus_is_varied() -> None:
    kinds: set[Any] = {c.obj["kind"] for c in CASES}
    assert len(kinds) == 7
    assert sum(1 for c in CASES if created_by_controller(c.obj)) > 30
    assert {mode_of(c) for c in CASES} == set(Mode)
