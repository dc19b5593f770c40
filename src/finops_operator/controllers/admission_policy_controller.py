"""Keeps the generated admission policies and their bindings in step with the configuration.

The leader writes what `domain.policies.admission_policy` generates, through
`apply` (get, create, on 409 patch; nothing written when unchanged), after each
election and whenever one of the objects is edited or deleted (a watch on the
managed-by label). Without `admissionPolicies.enabled` it deletes the ones it
wrote earlier, so turning the feature off really turns enforcement off.

The MutatingAdmissionPolicy is written only where the API server serves it
(discovery of v1, then v1beta1); otherwise a log line says why it is skipped, and
one written earlier under the other version is removed. The objects are owned by
the operator's Namespace (cluster-scoped objects cannot be owned by a namespaced
Deployment), so deleting the install removes them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from finops_operator.controllers.apply import Applied, apply
from finops_operator.domain.config import Config
from finops_operator.domain.policies import admission_policy as ap
from finops_operator.errors import ConfigError, KubeError
from finops_operator.ports import KubePort

logger = logging.getLogger(__name__)

GROUP: Final = ap.GROUP
VALIDATING_POLICIES: Final = (GROUP, "v1", "validatingadmissionpolicies")
VALIDATING_BINDINGS: Final = (GROUP, "v1", "validatingadmissionpolicybindings")
MUTATING_POLICIES: Final = (GROUP, "v1", "mutatingadmissionpolicies")
MUTATING_BINDINGS: Final = (GROUP, "v1", "mutatingadmissionpolicybindings")
MUTATING_POLICIES_BETA: Final = (GROUP, "v1beta1", "mutatingadmissionpolicies")
MUTATING_BINDINGS_BETA: Final = (GROUP, "v1beta1", "mutatingadmissionpolicybindings")
# The generated policies and bindings, watched so that an edit or a delete is undone.
WATCHED_RESOURCES: Final = (
    VALIDATING_POLICIES,
    VALIDATING_BINDINGS,
    MUTATING_POLICIES,
    MUTATING_BINDINGS,
    MUTATING_POLICIES_BETA,
    MUTATING_BINDINGS_BETA,
)
# (resource, name) of every object the operator may have written, for removal.
VALIDATING_OBJECTS: Final = (
    (VALIDATING_POLICIES, ap.DENY_POLICY),
    (VALIDATING_POLICIES, ap.WARN_POLICY),
    (VALIDATING_BINDINGS, ap.DENY_BINDING),
    (VALIDATING_BINDINGS, ap.WARN_BINDING),
)
MUTATING_OBJECTS: Final = {
    "v1": ((MUTATING_POLICIES, ap.INHERIT_POLICY), (MUTATING_BINDINGS, ap.INHERIT_BINDING)),
    "v1beta1": (
        (MUTATING_POLICIES_BETA, ap.INHERIT_POLICY),
        (MUTATING_BINDINGS_BETA, ap.INHERIT_BINDING),
    ),
}
OWNED_OBJECTS: Final = (*VALIDATING_OBJECTS, *MUTATING_OBJECTS["v1"], *MUTATING_OBJECTS["v1beta1"])
RESOURCE_FOR: Final = {
    ("v1", "ValidatingAdmissionPolicy"): VALIDATING_POLICIES,
    ("v1", "ValidatingAdmissionPolicyBinding"): VALIDATING_BINDINGS,
    ("v1", "MutatingAdmissionPolicy"): MUTATING_POLICIES,
    ("v1", "MutatingAdmissionPolicyBinding"): MUTATING_BINDINGS,
    ("v1beta1", "MutatingAdmissionPolicy"): MUTATING_POLICIES_BETA,
    ("v1beta1", "MutatingAdmissionPolicyBinding"): MUTATING_BINDINGS_BETA,
}


@dataclass
class AdmissionPolicyController:
    config: Config
    namespace: str  # the operator's own, whose Namespace owns the objects
    kube: KubePort
    leading: Callable[[], bool]
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    skipped_reason: str | None = None  # why the mutating policy is not written, if it is not

    async def mutating_version(self) -> str | None:
        """The version of MutatingAdmissionPolicy the server serves, preferring v1; else None."""
        for version in ap.MUTATING_VERSIONS:
            served = await self.kube.served_resources(GROUP, version)
            if served is not None and "mutatingadmissionpolicies" in served:
                return version
        return None

    async def ensure(self) -> None:
        """Write what the configuration asks for, remove what it no longer does (leader only)."""
        if not self.leading():
            return
        async with self.lock:
            try:
                await self._ensure()
            except KubeError as err:
                logger.error("Cannot keep the admission policies in step: %s", err)
            except ConfigError as err:
                logger.error("Cannot write the admission policies: %s", err)

    async def _ensure(self) -> None:
        settings = self.config.admission_policies
        if not settings.enabled:
            for served in ("v1", "v1beta1"):
                await self._remove(MUTATING_OBJECTS[served])
            await self._remove(VALIDATING_OBJECTS)
            return
        version = await self.mutating_version() if settings.mutating else None
        reason: str | None = None
        if not settings.mutating:
            reason = "admissionPolicies.mutating is false"
        elif version is None:
            reason = (
                "the API server serves no mutatingadmissionpolicies (v1, or v1beta1 with the "
                "feature gate MutatingAdmissionPolicy and runtime-config "
                "admissionregistration.k8s.io/v1beta1=true); namespace labels are inherited "
                "only by the mutating webhook"
            )
        if reason != self.skipped_reason and reason is not None:
            logger.warning("Not writing the MutatingAdmissionPolicy: %s", reason)
        self.skipped_reason = reason
        namespace = await self.kube.raw("GET", f"/api/v1/namespaces/{self.namespace}")
        owner = ap.owner_reference(namespace)
        for desired in ap.admission_policies(self.config, version, owner):
            await self._apply(desired)
        for other in ("v1", "v1beta1"):
            if other != version:
                await self._remove(MUTATING_OBJECTS[other])

    async def _apply(self, desired: dict[str, Any]) -> None:
        version = desired["apiVersion"].rpartition("/")[2]
        wanted = RESOURCE_FOR[(version, desired["kind"])]
        # One loop over the module's constants, so that tests/install can tell the RBAC.
        for resource in RESOURCE_FOR.values():
            if resource == wanted:
                result = await apply(
                    self.kube,
                    resource,
                    desired,
                    lambda current: ap.policy_patch(current, desired),
                )
        name = desired["metadata"]["name"]
        if result.applied is Applied.CREATED:
            logger.info("Created %s %s", desired["kind"], name)
        elif result.applied is Applied.PATCHED:
            logger.info("Brought %s %s back in step", desired["kind"], name)

    async def _remove(self, objects: tuple[tuple[tuple[str, str, str], str], ...]) -> None:
        for resource, name in OWNED_OBJECTS:
            if (resource, name) not in objects:
                continue
            current = await self.kube.get(*resource, None, name)
            if current is not None and ap.is_ours(current):
                await self.kube.delete(*resource, None, name)
                logger.info("Deleted %s %s", resource[2], name)

    def is_ours(self, body: Mapping[str, Any]) -> bool:
        return ap.is_ours(body)
