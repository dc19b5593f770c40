"""The admission policies controller: writes what the configuration asks for, only that.

Against FakeKube: created once with the operator's Namespace as owner, nothing
written when unchanged, an edit undone, the MutatingAdmissionPolicy only where
discovery lists it (else skipped with the reason logged), everything of its own
deleted when the feature is off, never someone else's, and nothing at all from a
replica that does not lead.
"""

from __future__ import annotations

import logging

import pytest

from finops_operator.controllers.admission_policy_controller import (
    MUTATING_BINDINGS_BETA,
    MUTATING_POLICIES,
    MUTATING_POLICIES_BETA,
    VALIDATING_BINDINGS,
    VALIDATING_POLICIES,
    AdmissionPolicyController,
)
from finops_operator.domain.config import parse_config
from finops_operator.domain.policies import admission_policy as ap
from tests.support.fakes import FakeKube

GROUP = "admissionregistration.k8s.io"
NAMESPACE = {
    "apiVersion": "v1",
    "kind": "Namespace",
    "metadata": {"name": "finops-system", "uid": "ns-uid"},
}


def kube(*, mutating: str | None = "v1beta1") -> FakeKube:
    fake = FakeKube()
    fake.put_raw("/api/v1/namespaces/finops-system", NAMESPACE)
    fake.served[f"{GROUP}/v1"] = frozenset({"validatingadmissionpolicies"})
    if mutating is not None:
        served = fake.served.get(f"{GROUP}/{mutating}", frozenset())
        fake.served[f"{GROUP}/{mutating}"] = served | {"mutatingadmissionpolicies"}
    return fake


def controller(fake: FakeKube, leading: bool = True, **settings: bool) -> AdmissionPolicyController:
    config = parse_config({"admissionPolicies": {"enabled": True, **settings}})
    return AdmissionPolicyController(config, "finops-system", fake, lambda: leading)


async def test_creates_every_object_owned_by_the_namespace_then_writes_nothing() -> None:
    fake = kube()
    await controller(fake).ensure()
    created = [c for c in fake.writes if c.verb == "create"]
    assert [(c.resource, c.name) for c in created] == [
        ("validatingadmissionpolicies", ap.DENY_POLICY),
        ("validatingadmissionpolicies", ap.WARN_POLICY),
        ("validatingadmissionpolicybindings", ap.DENY_BINDING),
        ("validatingadmissionpolicybindings", ap.WARN_BINDING),
        ("mutatingadmissionpolicies", ap.INHERIT_POLICY),
        ("mutatingadmissionpolicybindings", ap.INHERIT_BINDING),
    ]
    stored = fake.stored(MUTATING_POLICIES_BETA, None, ap.INHERIT_POLICY)
    assert stored is not None
    assert stored["metadata"]["ownerReferences"] == [
        {"apiVersion": "v1", "kind": "Namespace", "name": "finops-system", "uid": "ns-uid"}
    ]
    before = len(fake.writes)
    await controller(fake).ensure()
    assert len(fake.writes) == before, "an unchanged policy is never written"


async def test_an_edited_policy_is_brought_back_and_server_defaults_are_left_alone() -> None:
    fake = kube()
    await controller(fake).ensure()
    key = (*VALIDATING_POLICIES, None, ap.DENY_POLICY)
    fake.objects[key]["spec"]["matchConstraints"]["objectSelector"] = {}  # a server default
    await controller(fake).ensure()
    assert not [c for c in fake.writes if c.verb == "patch"]
    fake.objects[key]["spec"]["validations"] = []  # someone edited the rules away
    await controller(fake).ensure()
    [patched] = [c for c in fake.writes if c.verb == "patch"]
    assert patched.name == ap.DENY_POLICY
    restored = fake.stored(VALIDATING_POLICIES, None, ap.DENY_POLICY) or {}
    assert (
        restored["spec"]["validations"]
        == ap.deny_policy(controller(fake).config)["spec"]["validations"]
    )


async def test_without_served_mutating_policies_they_are_skipped_with_the_reason(
    caplog: pytest.LogCaptureFixture,
) -> None:
    fake = kube(mutating=None)
    # one the operator wrote earlier, under a version no longer wanted
    fake.put(MUTATING_BINDINGS_BETA, ap.mutating_binding(controller(fake).config))
    with caplog.at_level(logging.WARNING):
        await controller(fake).ensure()
    assert "serves no mutatingadmissionpolicies" in caplog.text
    assert not [c for c in fake.writes if c.verb == "create" and "mutating" in c.resource]
    assert fake.stored(MUTATING_BINDINGS_BETA, None, ap.INHERIT_BINDING) is None
    assert fake.stored(VALIDATING_BINDINGS, None, ap.DENY_BINDING) is not None


async def test_v1_is_preferred_when_the_server_serves_it() -> None:
    fake = kube(mutating="v1")
    fake.served[f"{GROUP}/v1beta1"] = frozenset({"mutatingadmissionpolicies"})
    await controller(fake).ensure()
    assert fake.stored(MUTATING_POLICIES, None, ap.INHERIT_POLICY) is not None
    assert fake.stored(MUTATING_POLICIES_BETA, None, ap.INHERIT_POLICY) is None


async def test_turned_off_deletes_its_own_objects_and_never_someone_elses() -> None:
    fake = kube()
    await controller(fake).ensure()
    foreign = ap.warn_policy(controller(fake).config)
    foreign["metadata"]["labels"] = {"app.kubernetes.io/managed-by": "kyverno"}
    fake.objects[(*VALIDATING_POLICIES, None, ap.WARN_POLICY)] = foreign
    off = AdmissionPolicyController(parse_config({}), "finops-system", fake, lambda: True)
    await off.ensure()
    assert fake.stored(VALIDATING_POLICIES, None, ap.DENY_POLICY) is None
    assert fake.stored(MUTATING_POLICIES_BETA, None, ap.INHERIT_POLICY) is None
    assert fake.stored(VALIDATING_POLICIES, None, ap.WARN_POLICY) is not None


async def test_a_replica_that_does_not_lead_writes_nothing() -> None:
    fake = kube()
    await controller(fake, leading=False).ensure()
    assert fake.calls == []


async def test_an_api_outage_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    fake = kube()
    fake.outage = True
    await controller(fake).ensure()
    assert "Cannot keep the admission policies in step" in caplog.text
    fake.outage = False
    await controller(fake).ensure()
    assert fake.stored(VALIDATING_POLICIES, None, ap.DENY_POLICY) is not None
