"""The webhooks' own matchConditions: the API server admits what needs no judge without calling us.

Calling a webhook is what costs (issue 23: about 1.3 ms of API server CPU per pod
for TLS and JSON, while the check itself takes 0.12 ms). A GPU workload whose pod
(template) carries every required label with a valid value, and no exempt
annotation, gets a bare "allowed" from `/validate` in every mode; one that has
every required label, set and non-empty, gets no patch from `/mutate`. Both
facts are about the object alone, so CEL can see them, and the API server can
skip the call. These conditions say when to call (every matchCondition must be
true for the webhook to be called), so each is the negation of its skip:

- `not-plainly-compliant` (validating): a required label missing, empty or not
  accepted by its rule, or the exempt annotation present on the object or its
  template (honoured or not, an exempt annotation is answered with a warning);
- `cost-label-missing` (mutating): a required label missing or empty (only those
  are filled from the namespace).

The namespace's mode and labels are not visible to a matchCondition; neither
predicate needs them: a compliant object gets nothing from either webhook in
`enforce`, `audit` or `off`. Everything the webhooks still judge (a violation to
explain, an exemption, an owner claim, labels to inherit) fails its condition
and is sent.

The configuration is compiled in, as in the admission policies (`admission_policy`,
whose CEL pieces these reuse), so the operator writes these two conditions from
its own configuration into the webhook configurations (`controllers/webhook_tls`)
and the manifests ship without them: a manifest written for another
configuration could otherwise skip an object the operator would refuse.

Two parts of the manifests depend on the configuration too, and the operator
rewrites them in the same patch: the `gpu-workload` condition, which names the
GPU resources (a resource added to `gpuResources` but not to it would never be
sent: an untagged GPU admitted without a trace), and the namespaceSelector's
`kubernetes.io/metadata.name NotIn` list (`exemptNamespaces` and the operator's
own namespace). The manifests keep the values of the default configuration, so
an install works before the operator first starts.
`conditions_patch` is the JSON Patch that brings a stored configuration to them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from finops_operator.domain import conventions
from finops_operator.domain.config import Config
from finops_operator.domain.policies.admission_policy import (
    GPU_CONDITION,
    MUTATING_CONDITION,
    VALIDATING_CONDITION,
    compliant,
    is_gpu_workload,
    nothing_to_fill,
    pattern_problems,
)

# The conditions the operator appends; of the manifests' own (create-or-update,
# gpu-workload, not-created-by-a-controller) it rewrites gpu-workload in place.
OWNED: Final = frozenset({VALIDATING_CONDITION, MUTATING_CONDITION})
NAME_LABEL: Final = "kubernetes.io/metadata.name"

# Webhook name -> the operator's matchConditions for it, in order.
WebhookConditions = Mapping[str, list[dict[str, str]]]


@dataclass(frozen=True)
class WebhookSettings:
    """What the operator writes into its webhooks from its configuration; None leaves
    that part as it is."""

    conditions: WebhookConditions  # appended to each named webhook's own
    gpu_condition: dict[str, str] | None = None  # replaces each one's `gpu-workload`
    exempt_namespaces: tuple[str, ...] | None = None  # the namespaceSelector's name NotIn


def desired_conditions(config: Config) -> WebhookConditions:
    """The operator's matchConditions per webhook name; none when a pattern is not RE2.

    Without them every GPU workload is sent, which is always safe.
    """
    if pattern_problems(config):
        return {conventions.VALIDATING_WEBHOOK: [], conventions.MUTATING_WEBHOOK: []}
    return {
        conventions.VALIDATING_WEBHOOK: [
            {"name": VALIDATING_CONDITION, "expression": f"!({compliant(config)})"}
        ],
        conventions.MUTATING_WEBHOOK: [
            {"name": MUTATING_CONDITION, "expression": f"!({nothing_to_fill(config)})"}
        ],
    }


def gpu_condition(config: Config) -> dict[str, str]:
    """The webhooks' `gpu-workload`: the new or (on UPDATE) the old object is a GPU workload.

    `type(o) == map` skips a null object (oldObject on CREATE) without an
    evaluation error, which failurePolicy Fail would turn into a refusal.
    """
    gpu = is_gpu_workload("o", config.gpu_resources)
    return {
        "name": GPU_CONDITION,
        "expression": f"[object, oldObject].exists(o, type(o) == map && {gpu})",
    }


def webhook_settings(config: Config, namespace: str) -> WebhookSettings:
    """Everything the operator running in `namespace` writes into its webhooks."""
    exempt = tuple(dict.fromkeys([*config.exempt_namespaces, namespace]))
    return WebhookSettings(desired_conditions(config), gpu_condition(config), exempt)


def _selector(current: Mapping[str, Any] | None, exempt: tuple[str, ...]) -> dict[str, Any]:
    """`current` with its name NotIn list set to `exempt` (added first where there is none)."""
    expressions = [dict(e) for e in (current or {}).get("matchExpressions") or []]
    names = {"key": NAME_LABEL, "operator": "NotIn", "values": list(exempt)}
    for expression in expressions:
        if (expression.get("key"), expression.get("operator")) == (NAME_LABEL, "NotIn"):
            expression["values"] = names["values"]
            break
    else:
        expressions.insert(0, names)
    return {**(current or {}), "matchExpressions": expressions}


def _conditions(
    current: list[dict[str, Any]], gpu: dict[str, str] | None, ours: list[dict[str, str]]
) -> list[dict[str, Any]]:
    """`current` with `gpu` in place of its `gpu-workload` (first where there is none), the
    operator's old conditions removed and `ours` appended."""
    kept = [c for c in current if c.get("name") not in OWNED]
    names = [c.get("name") for c in kept]
    if gpu is not None and GPU_CONDITION in names:
        kept[names.index(GPU_CONDITION)] = gpu
    elif gpu is not None:
        kept.insert(0, gpu)
    return [*kept, *ours]


def conditions_patch(
    configuration: Mapping[str, Any], desired: WebhookSettings
) -> list[dict[str, Any]]:
    """JSON Patch operations giving each named webhook exactly the `desired` conditions
    of the operator's own (`OWNED`), after its others, kept in their order, with the
    desired `gpu-workload` in place of its own and the desired exempt namespaces in its
    namespaceSelector; [] when they are there.

    The lists are replaced whole, after a `test` that the configuration is still at
    the resourceVersion read, so a patch written against a configuration someone
    changed meanwhile fails instead of dropping their change. (Not a `test` of the
    list itself: the API server compares strings as its own JSON encoding writes them,
    `&&` as `\\u0026\\u0026`, so a list of CEL would never test equal.)
    """
    ops: list[dict[str, Any]] = []
    for index, hook in enumerate(configuration.get("webhooks") or []):
        name = hook.get("name")
        if name not in desired.conditions:
            continue
        current = hook.get("matchConditions") or []
        wanted = _conditions(current, desired.gpu_condition, desired.conditions[name])
        if wanted != current:
            ops.append({"op": "add", "path": f"/webhooks/{index}/matchConditions", "value": wanted})
        if desired.exempt_namespaces is None:
            continue
        selector = _selector(hook.get("namespaceSelector"), desired.exempt_namespaces)
        if selector != hook.get("namespaceSelector"):
            path = f"/webhooks/{index}/namespaceSelector"
            ops.append({"op": "add", "path": path, "value": selector})
    version = (configuration.get("metadata") or {}).get("resourceVersion")
    if ops and version is not None:
        ops.insert(0, {"op": "test", "path": "/metadata/resourceVersion", "value": version})
    return ops
