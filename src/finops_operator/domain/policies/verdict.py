"""One verdict on one workload: the whole label decision, made once.

`judge` takes the object, its namespace and that namespace's labels, the policy,
and for an admission request the operation and the old object. It returns a
`Verdict` that says everything the callers need, so that each of them only
translates it and none of them decides:

- `admission.validate` turns it into allowed, denied or warned;
- `admission.mutate` turns its inheritable labels into a JSONPatch;
- `audit.audit_workload` turns it into the violations annotation;
- `lint` turns it into a finding.

The order of the checks is the order of `Skip`: an object first has to be
something the policy judges at all (an operation on a workload kind that asks
for a GPU), then not be exempt, then the mode decides. The labels are checked
for every GPU workload that is not exempt, whatever the mode: lint reports them
whatever the cluster's mode is, and the mode only decides what admission and the
audit do with them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final

from finops_operator.domain import conventions
from finops_operator.domain.config import Mode
from finops_operator.domain.policies.label_check import (
    NO_VIOLATIONS,
    ExemptBy,
    Exemption,
    LabelPolicy,
    Requester,
    Violations,
    check_labels,
    find_exemption,
    misspelt_exemption,
    unreasoned_exemption,
)
from finops_operator.domain.policies.owners import (
    OwnerLookup,
    Vouch,
    vouch,
    written_by_controller,
)
from finops_operator.domain.workloads import (
    WorkloadKind,
    asks_for_gpu,
    created_by_controller,
    is_workload,
    pod_labels,
)


class Operation(StrEnum):
    """AdmissionRequest operations (the API server sends them in capitals)."""

    CREATE = "CREATE"
    UPDATE = "UPDATE"
    DELETE = "DELETE"
    CONNECT = "CONNECT"


JUDGED_OPERATIONS: Final = frozenset({Operation.CREATE, Operation.UPDATE})


class Skip(StrEnum):
    """Why an object is not judged, in the order the reasons are checked."""

    OPERATION = "operation not judged"  # DELETE, CONNECT
    SUBRESOURCE = "subresource"  # status, scale
    NO_OBJECT = "no object"
    NOT_A_WORKLOAD = "not a workload kind"  # ConfigMaps, Services, custom resources
    OTHER_API_GROUP = "a workload kind's name in another API group"  # Volcano's Job
    NO_GPU = "asks for no GPU"
    EXEMPT_NAMESPACE = "exempt namespace"
    EXEMPT_ANNOTATION = "exempt annotation"
    MODE_OFF = "mode off"

    @property
    def lets_through(self) -> bool:
        """A GPU workload the policy covers but lets through (admission says `exempt`)."""
        return self in _LETS_THROUGH


_LETS_THROUGH: Final = frozenset({Skip.EXEMPT_NAMESPACE, Skip.EXEMPT_ANNOTATION, Skip.MODE_OFF})
_NOT_WORKLOADS: Final = frozenset({Skip.NOT_A_WORKLOAD, Skip.OTHER_API_GROUP})
_SKIP_FOR_EXEMPTION: Final = {
    ExemptBy.NAMESPACE: Skip.EXEMPT_NAMESPACE,
    ExemptBy.ANNOTATION: Skip.EXEMPT_ANNOTATION,
}


class Leniency(StrEnum):
    """Why violations are admitted with warnings instead of denied, in order of precedence."""

    AUDIT_MODE = "audit mode"
    CREATED_BY_CONTROLLER = "created by a workload controller"  # vouched for: judged with its owner
    PREDATES_UPDATE = "the violations predate this update"  # an UPDATE that adds none


@dataclass(frozen=True)
class Verdict:
    """Everything the policy says about one object.

    `violations` are what the pod labels lack, for every GPU workload that is not
    exempt, also when the mode is `off` (`skip` then says so); they are empty when
    the object is skipped for any other reason. `inheritable` are the missing labels
    the namespace supplies. `old_violations` are the old object's on an UPDATE, and
    only when the old object was itself judged (it asked for a GPU and was not
    exempt, under the same mode): otherwise None, and nothing can predate the update.
    `misspelt_exemption` is the value of an exempt annotation that does not exempt,
    `unreasoned_exemption` says an exempt annotation lacks its reason, and
    `refused_exemption` is the requester whose exempt annotation was not honoured
    at admission (the object is then judged as if it had none).
    `created_by_controller` says that someone vouches for the object's owner claim
    (`owners.py`): at admission its writer, the kube-controller-manager; in the
    audit its owner, found in the cache. `owner` is what the audit's cache said of
    the claim (None at admission and for an object that is not judged).
    """

    skip: Skip | None
    mode: Mode
    kind: WorkloadKind | None = None
    exemption: Exemption | None = None
    violations: Violations = NO_VIOLATIONS
    inheritable: Mapping[str, str] = field(default_factory=dict)
    created_by_controller: bool = False
    old_violations: Violations | None = None
    misspelt_exemption: str | None = None
    unreasoned_exemption: bool = False
    refused_exemption: Requester | None = None
    owner: Vouch | None = None

    @property
    def judged(self) -> bool:
        return self.skip is None

    @property
    def is_workload(self) -> bool:
        """One of the seven kinds in its own API group (skipped or not for other reasons)."""
        return self.kind is not None and self.skip not in _NOT_WORKLOADS

    @property
    def predates_update(self) -> bool:
        """Every violation was already one of the old object's: the update adds none."""
        return (
            bool(self.violations)
            and self.old_violations is not None
            and self.violations.is_subset_of(self.old_violations)
        )

    @property
    def leniency(self) -> Leniency | None:
        """Why a judged object's violations are admitted; None when they are denied."""
        if not self.judged or not self.violations:
            return None
        if self.mode == Mode.AUDIT:
            return Leniency.AUDIT_MODE
        if self.created_by_controller:
            return Leniency.CREATED_BY_CONTROLLER
        if self.predates_update:
            return Leniency.PREDATES_UPDATE
        return None

    @property
    def denied(self) -> bool:
        return self.judged and bool(self.violations) and self.leniency is None


def effective_mode(default: Mode, namespace_labels: Mapping[str, str] | None) -> Mode:
    """The namespace's `finops.resilio.tech/mode` label when valid, else the cluster default."""
    chosen = Mode.parse((namespace_labels or {}).get(conventions.MODE_NAMESPACE_LABEL))
    return default if chosen is None else chosen


def judge(
    obj: Mapping[str, Any] | None,
    *,
    policy: LabelPolicy,
    namespace: str | None,
    namespace_labels: Mapping[str, str] | None = None,
    kind: str | None = None,
    operation: str | None = None,
    sub_resource: str = "",
    old: Mapping[str, Any] | None = None,
    requester: Requester | None = None,
    owners: OwnerLookup | None = None,
) -> Verdict:
    """The verdict on `obj`, in `namespace` whose labels are `namespace_labels`.

    `kind` overrides the object's own (an AdmissionRequest and a watch name the
    kind beside the object). `operation` and `sub_resource` are an admission
    request's; None for an object that is not being written (the audit, lint).
    `old` is the object before an UPDATE. Its violations excuse the new object's
    (`predates_update`) only when the old object was judged itself: adding a GPU to
    an untagged workload, or removing its exempt annotation, is judged like a CREATE.

    `requester` is who writes the object at admission; None when nobody does (the
    audit, lint), and then an exempt annotation counts as the object states it.
    At admission it counts only when `exemption_honoured` says so.

    An owner claim (`created_by_controller`) counts when someone vouches for it
    (`owners.py`): at admission (a `requester`) the kube-controller-manager must be
    the writer; otherwise the owner, looked up with `owners`, must vouch for the
    object (no lookup: lint, it counts for nothing).
    """
    mode = effective_mode(policy.config.mode, namespace_labels)
    if operation is not None and operation not in JUDGED_OPERATIONS:
        return Verdict(Skip.OPERATION, mode)
    if sub_resource:
        return Verdict(Skip.SUBRESOURCE, mode)
    if obj is None:
        return Verdict(Skip.NO_OBJECT, mode)
    workload = obj if kind is None else {**obj, "kind": kind}
    workload_kind = WorkloadKind.of(workload.get("kind"))
    if workload_kind is None:
        return Verdict(Skip.NOT_A_WORKLOAD, mode)
    if not is_workload(workload):
        return Verdict(Skip.OTHER_API_GROUP, mode, workload_kind)
    claimed = created_by_controller(workload)
    if not asks_for_gpu(workload, policy.is_gpu):
        return Verdict(Skip.NO_GPU, mode, workload_kind)
    owner = None
    if not claimed:
        controlled = False
    elif requester is not None:
        controlled = written_by_controller(requester)
    else:
        owner = vouch(workload, namespace, owners, policy, namespace_labels)
        controlled = owner is Vouch.VOUCHED
    exempt = find_exemption(workload, namespace, policy.config)
    refused = None
    if (
        exempt is not None
        and requester is not None
        and not exemption_honoured(exempt, workload, old, operation, requester, policy, controlled)
    ):
        exempt, refused = None, requester
    if exempt is not None:
        skip = _SKIP_FOR_EXEMPTION[exempt.by]
        return Verdict(
            skip, mode, workload_kind, exempt, created_by_controller=controlled, owner=owner
        )
    rules = policy.config.labels
    found = check_labels(pod_labels(workload), rules)
    supplied = namespace_labels or {}
    before = None
    if operation == Operation.UPDATE and old is not None:
        earlier = judge(
            old,
            policy=policy,
            namespace=namespace,
            namespace_labels=namespace_labels,
            kind=workload_kind.value,
        )
        if earlier.judged:
            before = earlier.violations
    return Verdict(
        skip=Skip.MODE_OFF if mode == Mode.OFF else None,
        mode=mode,
        kind=workload_kind,
        violations=found,
        inheritable={key: supplied[key] for key in found.missing if key in supplied},
        created_by_controller=controlled,
        old_violations=before,
        misspelt_exemption=misspelt_exemption(workload),
        unreasoned_exemption=unreasoned_exemption(workload),
        refused_exemption=refused,
        owner=owner,
    )


def exemption_honoured(
    exempt: Exemption,
    obj: Mapping[str, Any],
    old: Mapping[str, Any] | None,
    operation: str | None,
    requester: Requester,
    policy: LabelPolicy,
    controlled: bool,
) -> bool:
    """Whether an exemption counts for an admission request (docs/admission.md, "Who may exempt").

    A namespace exempt by configuration always counts. An exempt annotation counts
    when the requester may exempt (`exemptions.allowedGroups`/`allowedUsers`); when
    the kube-controller-manager made the object from its owner's template (judged
    when the owner was written; `controlled`, see `owners.py`); or when an UPDATE keeps
    the exemption the old object had, with the same reason, on a GPU workload, and
    adds no violation. The last rule lets anyone scale, roll or patch an exempt
    workload without locking it, while stripping labels from an object that was
    compliant, or changing the reason, needs someone who may exempt.
    """
    if exempt.by is ExemptBy.NAMESPACE or controlled:
        return True
    if policy.config.exemptions.allows(requester.username, requester.groups):
        return True
    if operation != Operation.UPDATE or old is None:
        return False
    before = {**old, "kind": obj["kind"]}
    if not is_workload(before) or not asks_for_gpu(before, policy.is_gpu):
        return False
    if find_exemption(before, None, policy.config) != exempt:
        return False
    rules = policy.config.labels
    return check_labels(pod_labels(obj), rules).is_subset_of(
        check_labels(pod_labels(before), rules)
    )
