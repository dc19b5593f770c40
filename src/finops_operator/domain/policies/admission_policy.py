"""The label rules as admission policies the API server enforces itself, without the operator.

From the configuration (required keys and their rules, GPU resource names, exempt
namespaces, the default mode, who may exempt) this module writes, as plain dicts:

- `finops-cost-labels`, a ValidatingAdmissionPolicy that denies a GPU workload
  whose cost labels are missing or invalid, with the webhook's one-line message
  (`violation_message`), bound with `validationActions: [Deny]` to the namespaces
  whose mode is `enforce`;
- `finops-cost-labels-warnings`, a ValidatingAdmissionPolicy with one validation
  per required label (one warning per problem, as the webhook warns), bound with
  `[Warn, Audit]` to every governed namespace (`enforce` and `audit`);
- `finops-cost-labels-inherit`, a MutatingAdmissionPolicy that fills missing
  labels from the namespace's labels (`namespaceObject`) and notes them in the
  `finops.resilio.tech/inherited-labels` annotation, when the server serves the API.

The decision is `verdict.judge`'s, step for step, in CEL: the same kinds and
template paths (`WorkloadKind`), the same GPU test, exemptions (with their
reason, and on `request.userInfo` the authority of whoever adds or changes one,
`exemption_variables`), modes (the namespace label overrides the configured
default), the same leniency for objects a workload controller made and for
updates that add no violation. Each piece is
a small function below; docs/admission.md ("Admission policies") explains the
choices, and tests/domain/policies/test_admission_policy.py evaluates the CEL
against `judge` object by object.

Each policy carries matchConditions (`skip_conditions`, `fill_conditions`): the
API server evaluates `judge`'s steps only for a GPU workload they can answer,
not for a plainly compliant one (issue 23's profile of kube-apiserver).

The configuration is compiled into the expressions (no paramKind): the operator
rewrites the policies when its configuration changes, as it does its recording
rules. A label pattern that RE2 cannot run is a configuration error here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from finops_operator.domain import conventions
from finops_operator.domain.config import Config, ExemptionsConfig, LabelRule, Mode
from finops_operator.domain.merge_patch import Compare, Wanted, merge_patch
from finops_operator.domain.policies.admission import PREDATES_NOTE, UNREASONED_NOTE
from finops_operator.domain.policies.cel import (
    anchored,
    cel_list,
    cel_string,
    gpu_name_test,
)
from finops_operator.domain.policies.owners import CONTROLLER_USERS
from finops_operator.domain.re2 import re2_problem
from finops_operator.domain.workloads import CONTROLLER_OWNERS, WorkloadKind
from finops_operator.errors import ConfigError

GROUP: Final = "admissionregistration.k8s.io"
VALIDATING_VERSION: Final = "v1"
# MutatingAdmissionPolicy: v1beta1 from Kubernetes 1.34 behind the feature gate
# MutatingAdmissionPolicy (off by default in 1.34 and 1.35); v1 once it is GA.
MUTATING_VERSIONS: Final = ("v1", "v1beta1")
DEFAULT_MUTATING_VERSION: Final = "v1beta1"

DENY_POLICY: Final = "finops-cost-labels"
DENY_BINDING: Final = "finops-cost-labels-enforce"
WARN_POLICY: Final = "finops-cost-labels-warnings"
WARN_BINDING: Final = "finops-cost-labels-warnings"
INHERIT_POLICY: Final = "finops-cost-labels-inherit"
INHERIT_BINDING: Final = "finops-cost-labels-inherit"

# (plural, kind) of each object this module writes, in the order they are applied.
VALIDATING_RESOURCES: Final = (
    ("validatingadmissionpolicies", "ValidatingAdmissionPolicy"),
    ("validatingadmissionpolicybindings", "ValidatingAdmissionPolicyBinding"),
)
MUTATING_RESOURCES: Final = (
    ("mutatingadmissionpolicies", "MutatingAdmissionPolicy"),
    ("mutatingadmissionpolicybindings", "MutatingAdmissionPolicyBinding"),
)
LABELS: Final = {
    "app.kubernetes.io/name": "finops-operator",
    "app.kubernetes.io/component": "admission-policy",
    conventions.MANAGED_BY_LABEL: conventions.MANAGED_BY,
}
_MODE_KEY: Final = cel_string(conventions.MODE_NAMESPACE_LABEL)
_EXEMPT_KEY: Final = cel_string(conventions.EXEMPT_ANNOTATION)
_REASON_KEY: Final = cel_string(conventions.EXEMPT_REASON_ANNOTATION)


# --- checking the configuration ------------------------------------------------------


def pattern_problems(config: Config) -> list[str]:
    """Each label pattern RE2 cannot run, named as the configuration file names it."""
    problems = []
    for key, rule in config.labels.items():
        if rule.pattern is not None and (why := re2_problem(rule.pattern)) is not None:
            problems.append(
                f"labels[{key!r}].pattern: {rule.pattern!r} uses {why}: admission policies "
                "run CEL's RE2 matches(); rewrite it without that construct"
            )
    return problems


def check_expressible(config: Config) -> None:
    """Raise ConfigError naming every label pattern the policies cannot carry."""
    problems = pattern_problems(config)
    if problems:
        raise ConfigError("cannot write admission policies:\n" + "\n".join(problems))


# --- CEL, one step at a time -----------------------------------------------------------


def _has_path(root: str, path: tuple[str, ...]) -> str:
    """`has(root.a) && has(root.a.b) ...` for every step of `path`."""
    return " && ".join(f"has({'.'.join((root, *path[: n + 1]))})" for n in range(len(path)))


def template_of(obj: str, kind: str = "variables.kind") -> str:
    """The pod (template) of `obj` by its kind: the Pod itself, or where the kind keeps it."""
    expression = "{}"
    by_path: dict[tuple[str, ...], list[WorkloadKind]] = {}
    for workload in WorkloadKind:
        by_path.setdefault(workload.template_path, []).append(workload)
    for path, kinds in sorted(by_path.items(), key=lambda item: len(item[0])):
        names = cel_list(k.value for k in kinds)
        value = obj if not path else f"({_has_path(obj, path)} ? {obj}.{'.'.join(path)} : {{}})"
        expression = f"{kind} in {names} ? {value} : {expression}"
    return expression


def asks_for_gpu(template: str, gpu_resources: tuple[str, ...]) -> str:
    """CEL for `workloads.asks_for_gpu` on a pod (template): a non-zero GPU, or a DRA claim.

    The quantity test is the webhooks' (manifests/base/webhooks.yaml): the API server
    sends quantities as canonical strings, and one is non-zero exactly when a digit
    1-9 comes before any unit or exponent.
    """
    spec = f"{template}.spec"
    name_test = gpu_name_test("name", gpu_resources)
    return (
        f"has({spec}) && (['containers', 'initContainers'].exists(field, field in {spec} && "
        f"{spec}[field].exists(c, has(c.resources) && "
        "['requests', 'limits'].exists(section, section in c.resources && "
        f"c.resources[section].exists(name, ({name_test}) && "
        "string(c.resources[section][name]).matches('^[+]?0*[.]?0*[1-9]'))))) || "
        f"('resourceClaims' in {spec} && {spec}.resourceClaims.exists(claim, "
        "(has(claim.resourceClaimTemplateName) && claim.resourceClaimTemplateName != '') || "
        "(has(claim.resourceClaimName) && claim.resourceClaimName != ''))))"
    )


def _metadatas(obj: str, template: str) -> str:
    return f"[{obj}.metadata, has({template}.metadata) ? {template}.metadata : {{}}]"


def exempt_reasons(obj: str, template: str) -> str:
    """CEL for the reasons of `find_exemption`'s annotations: the metadata (object first,
    then template) annotated exactly "true" with a reason beside it, mapped to the reason."""
    return (
        f"{_metadatas(obj, template)}.filter(m, has(m.annotations) && "
        f"{_EXEMPT_KEY} in m.annotations && m.annotations[{_EXEMPT_KEY}] == "
        f"{cel_string(conventions.EXEMPT_VALUE)} && {_REASON_KEY} in m.annotations && "
        f"m.annotations[{_REASON_KEY}] != '').map(m, m.annotations[{_REASON_KEY}])"
    )


def unreasoned(obj: str, template: str) -> str:
    """CEL for `unreasoned_exemption`: annotated "true", and never with a reason."""
    marked = (
        f"{_metadatas(obj, template)}.filter(m, has(m.annotations) && "
        f"{_EXEMPT_KEY} in m.annotations && m.annotations[{_EXEMPT_KEY}] == "
        f"{cel_string(conventions.EXEMPT_VALUE)})"
    )
    return (
        f"size({marked}) > 0 && {marked}.all(m, !({_REASON_KEY} in m.annotations) || "
        f"m.annotations[{_REASON_KEY}] == '')"
    )


def exempt_namespace(exempt_namespaces: tuple[str, ...]) -> str:
    if not exempt_namespaces:
        return "false"
    return f"request.namespace in {cel_list(exempt_namespaces)}"


def may_exempt(exemptions: ExemptionsConfig) -> str:
    """CEL for `ExemptionsConfig.allows` on `request.userInfo`."""
    tests = []
    if exemptions.allowed_users:
        tests.append(
            "has(request.userInfo.username) && "
            f"request.userInfo.username in {cel_list(exemptions.allowed_users)}"
        )
    if exemptions.allowed_groups:
        tests.append(
            "has(request.userInfo.groups) && request.userInfo.groups.exists(g, g in "
            f"{cel_list(exemptions.allowed_groups)})"
        )
    return " || ".join(f"({test})" for test in tests) or "false"


def exemption_variables(config: Config) -> list[dict[str, str]]:
    """The steps of `find_exemption` and `exemption_honoured`, after `kind`, `template`,
    `oldTemplate`, `gpu`, `oldGpu`, `controlled` and the label checks of both objects."""
    rules = config.labels
    return [
        _variable("exemptNamespace", exempt_namespace(config.exempt_namespaces)),
        _variable("reasons", exempt_reasons("object", "variables.template")),
        _variable(
            "oldReasons",
            f"type(oldObject) == map ? ({exempt_reasons('oldObject', 'variables.oldTemplate')})"
            " : []",
        ),
        _variable("mayExempt", may_exempt(config.exemptions)),
        _variable("checks", check_labels(rules, "variables.labels")),
        _variable(
            "problems",
            "variables.checks.filter(p, p.startsWith('missing ')) + "
            "variables.checks.filter(p, p.startsWith('invalid '))",
        ),
        _variable(
            "oldAll",
            f"variables.oldGpu ? {check_labels(rules, 'variables.oldLabels')}"
            ".filter(p, p != '') : []",
        ),
        _variable(
            "kept",
            "variables.oldGpu && size(variables.reasons) > 0 && "
            "size(variables.oldReasons) > 0 && variables.reasons[0] == variables.oldReasons[0] "
            "&& variables.problems.all(p, p in variables.oldAll)",
        ),
        _variable(
            "honoured",
            "size(variables.reasons) > 0 && (variables.controlled || variables.mayExempt || "
            "variables.kept)",
        ),
        _variable(
            "refused",
            "!variables.exemptNamespace && size(variables.reasons) > 0 && !variables.honoured",
        ),
        _variable("exempt", "variables.exemptNamespace || variables.honoured"),
    ]


def misspelt(obj: str, template: str) -> str:
    """CEL for `misspelt_exemption`: the values of exempt annotations that do not exempt."""
    return (
        f"{_metadatas(obj, template)}.filter(m, has(m.annotations) && {_EXEMPT_KEY} in "
        f"m.annotations && m.annotations[{_EXEMPT_KEY}] != "
        f"{cel_string(conventions.EXEMPT_VALUE)}).map(m, m.annotations[{_EXEMPT_KEY}])"
    )


def pod_labels(template: str) -> str:
    return f"{_has_path(template, ('metadata', 'labels'))} ? {template}.metadata.labels : {{}}"


def accepts(rule: LabelRule, value: str) -> str:
    """CEL for `LabelRule.accepts`: one of the values and/or a full match of the pattern."""
    tests = []
    if rule.values is not None:
        tests.append(f"{value} in {cel_list(rule.values)}")
    if rule.pattern is not None:
        tests.append(f"{value}.matches({cel_string(anchored(rule.pattern))})")
    return " && ".join(tests) or "true"


def check_label(key: str, rule: LabelRule, labels: str) -> str:
    """CEL for one key of `check_labels`: '' when fine, else the problem as the webhook words it."""
    k = cel_string(key)
    value = f"{labels}[{k}]"
    invalid = cel_string(f"invalid {key}='")
    rest = cel_string(f"' ({rule.describe()})")
    return (
        f"!({k} in {labels}) || {value} == '' ? {cel_string('missing ' + key)} : "
        f"!({accepts(rule, value)}) ? {invalid} + {value} + {rest} : ''"
    )


def check_labels(rules: Mapping[str, LabelRule], labels: str) -> str:
    """A list, one entry per rule in order: '' or that label's problem."""
    return "[" + ", ".join(f"({check_label(k, r, labels)})" for k, r in rules.items()) + "]"


def created_by_controller() -> str:
    """CEL for `verdict.judge`'s owner rule at admission: a controller ownerReference of
    a kind that makes this kind, in its own API group (`CONTROLLER_OWNERS`), on an
    object the kube-controller-manager writes (`owners.CONTROLLER_USERS`). CEL cannot
    look an owner up; the writer is what it can check (docs/admission.md)."""
    cases = []
    for child, owners in CONTROLLER_OWNERS.items():
        by_group: dict[str, list[str]] = {}
        for owner in sorted(owners):
            by_group.setdefault(owner.group, []).append(owner.value)
        tests = " || ".join(
            f"(ref.apiVersion.matches({cel_string(f'^{group}/[^/]*$')}) && "
            f"ref.kind in {cel_list(kinds)})"
            for group, kinds in sorted(by_group.items())
        )
        cases.append(f"(variables.kind == {cel_string(child.value)} && ({tests}))")
    return (
        "has(request.userInfo.username) && "
        f"request.userInfo.username in {cel_list(sorted(CONTROLLER_USERS))} && "
        "has(object.metadata.ownerReferences) && object.metadata.ownerReferences.exists(ref, "
        "has(ref.controller) && ref.controller == true && has(ref.kind) && "
        f"has(ref.apiVersion) && ({' || '.join(cases)}))"
    )


def effective_mode(default: Mode) -> str:
    """CEL for `verdict.effective_mode`: the namespace's mode label when valid, else `default`."""
    labels = "namespaceObject.metadata.labels"
    return (
        f"has(namespaceObject.metadata.labels) && {_MODE_KEY} in {labels} && "
        f"{labels}[{_MODE_KEY}] in {cel_list(m.value for m in Mode)} ? "
        f"{labels}[{_MODE_KEY}] : {cel_string(default.value)}"
    )


def labels_path() -> str:
    """Where the kind keeps its pods' labels, as `violation_message` says it."""
    expression = cel_string("spec.template.metadata.labels")
    for workload in WorkloadKind:
        path = ".".join((*workload.template_path, "metadata", "labels"))
        if path != "spec.template.metadata.labels":
            test = f"variables.kind == {cel_string(workload.value)}"
            expression = f"{test} ? {cel_string(path)} : {expression}"
    return expression


def _variable(name: str, expression: str) -> dict[str, str]:
    return {"name": name, "expression": expression}


def _object_variables(config: Config) -> list[dict[str, str]]:
    """The object, the old object and their labels, then whether an exemption counts."""
    gpus = config.gpu_resources
    old = "variables.oldTemplate"
    return [
        _variable("kind", "request.kind.kind"),
        _variable("template", template_of("object")),
        _variable("gpu", asks_for_gpu("variables.template", gpus)),
        _variable("controlled", created_by_controller()),
        _variable("oldTemplate", f"type(oldObject) == map ? ({template_of('oldObject')}) : {{}}"),
        _variable(
            "oldGpu",
            "request.operation == 'UPDATE' && type(oldObject) == map && "
            f"({asks_for_gpu(old, gpus)})",
        ),
        _variable("labels", pod_labels("variables.template")),
        _variable("oldLabels", pod_labels(old)),
        *exemption_variables(config),
    ]


def validating_variables(config: Config) -> list[dict[str, str]]:
    """The steps of `judge`, named, in the order CEL evaluates them."""
    return [
        *_object_variables(config),
        _variable("judged", "variables.gpu && !variables.exempt"),
        _variable("mode", effective_mode(config.mode)),
        _variable(
            "oldJudged",
            "variables.oldGpu && !variables.exemptNamespace && size(variables.oldReasons) == 0",
        ),
        _variable("oldProblems", "variables.oldJudged ? variables.oldAll : []"),
        _variable(
            "predates",
            "variables.oldJudged && variables.problems.all(p, p in variables.oldProblems)",
        ),
        _variable(
            "name",
            "request.name != '' ? request.name : "
            "has(object.metadata.name) && object.metadata.name != '' ? object.metadata.name : "
            "has(object.metadata.generateName) && object.metadata.generateName != '' ? "
            "object.metadata.generateName : '(unnamed)'",
        ),
        _variable("ref", "variables.kind + ' ' + request.namespace + '/' + variables.name"),
        _variable("misspelt", misspelt("object", "variables.template")),
        _variable("unreasoned", unreasoned("object", "variables.template")),
        _variable(
            "notHonoured",
            "'The exempt annotation is not honoured: ' + "
            "(has(request.userInfo.username) && request.userInfo.username != '' ? "
            "request.userInfo.username : '(unknown user)') + "
            f"{cel_string(f' may not exempt (only {config.exemptions.who_may} may).')}",
        ),
    ]


DENIES: Final = (
    "variables.judged && variables.mode == 'enforce' && size(variables.problems) > 0 && "
    "!variables.controlled && !variables.predates"
)
DENY_MESSAGE: Final = (
    "variables.ref + ' asks for a GPU but its cost labels are missing or invalid: ' + "
    "variables.problems.join('; ') + '. Set them under ' + variables.labelsPath + "
    "' (or label the namespace to inherit them).' + "
    "(variables.refused ? ' ' + variables.notHonoured : '')"
)


def warn_validations(config: Config) -> list[dict[str, str]]:
    """One validation per required label, then the two notes the webhook adds."""
    warned = "variables.judged && variables.mode != 'off'"
    found = [
        {
            "expression": f"!({warned} && variables.checks[{index}] != '')",
            "messageExpression": f"'finops: ' + variables.ref + ': ' + variables.checks[{index}]",
            "reason": "Invalid",
        }
        for index in range(len(config.labels))
    ]
    exempt_note = (
        f"'finops: {conventions.EXEMPT_ANNOTATION}=\\'' + variables.misspelt[0] + "
        f"'\\' does not exempt; only \\'{conventions.EXEMPT_VALUE}\\' does (put the reason "
        f"in {conventions.EXEMPT_REASON_ANNOTATION})'"
    )
    honoured = cel_string(
        f" is exempt from the cost label check by {conventions.EXEMPT_ANNOTATION} "
        f"(reason in {conventions.EXEMPT_REASON_ANNOTATION})"
    )
    return [
        *found,
        {
            "expression": (
                f"!({warned} && size(variables.problems) > 0 && size(variables.misspelt) > 0)"
            ),
            "messageExpression": exempt_note,
            "reason": "Invalid",
        },
        {
            "expression": f"!({warned} && size(variables.problems) > 0 && variables.unreasoned)",
            "message": UNREASONED_NOTE,
            "reason": "Invalid",
        },
        {
            "expression": f"!({warned} && variables.refused)",
            "messageExpression": "'finops: ' + variables.ref + ': ' + variables.notHonoured",
            "reason": "Forbidden",
        },
        {
            "expression": (
                "!(variables.gpu && !variables.exemptNamespace && variables.honoured && "
                "variables.mode != 'off')"
            ),
            "messageExpression": f"'finops: ' + variables.ref + {honoured}",
            "reason": "Invalid",
        },
        {
            "expression": (
                "!(variables.judged && variables.mode == 'enforce' && "
                "size(variables.problems) > 0 && !variables.controlled && variables.predates)"
            ),
            "message": PREDATES_NOTE,
            "reason": "Invalid",
        },
    ]


# --- the objects -----------------------------------------------------------------------


def _resource_rules() -> list[dict[str, Any]]:
    by_group: dict[str, list[str]] = {}
    for workload in WorkloadKind:
        by_group.setdefault(workload.group, []).append(workload.plural)
    return [
        {
            "apiGroups": [group],
            "apiVersions": ["v1"],
            "operations": ["CREATE", "UPDATE"],
            "resources": plurals,
            "scope": "Namespaced",
        }
        for group, plurals in by_group.items()
    ]


def namespace_selector(config: Config, modes: frozenset[Mode]) -> dict[str, Any]:
    """The namespaces whose effective mode is one of `modes`, exempt namespaces left out.

    A namespace without the mode label, or with a value that is no mode, has the
    configured default: NotIn matches it, In does not.
    """
    expressions: list[dict[str, Any]] = []
    if config.exempt_namespaces:
        expressions.append(
            {
                "key": "kubernetes.io/metadata.name",
                "operator": "NotIn",
                "values": list(config.exempt_namespaces),
            }
        )
    key = conventions.MODE_NAMESPACE_LABEL
    if config.mode in modes:
        others = [m.value for m in Mode if m not in modes]
        expressions.append({"key": key, "operator": "NotIn", "values": others})
    else:
        chosen = [m.value for m in Mode if m in modes]
        expressions.append({"key": key, "operator": "In", "values": chosen})
    return {"matchExpressions": expressions}


ENFORCED: Final = frozenset({Mode.ENFORCE})
GOVERNED: Final = frozenset({Mode.ENFORCE, Mode.AUDIT})


def _meta(name: str, owner: Mapping[str, Any] | None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "labels": dict(LABELS)}
    if owner is not None:
        meta["ownerReferences"] = [dict(owner)]
    return meta


def _match_constraints(config: Config) -> dict[str, Any]:
    return {
        "resourceRules": _resource_rules(),
        "matchPolicy": "Equivalent",
        "namespaceSelector": namespace_selector(config, GOVERNED),
    }


# The matchConditions' names, shared by the admission policies and the webhooks.
GPU_CONDITION: Final = "gpu-workload"
VALIDATING_CONDITION: Final = "not-plainly-compliant"
MUTATING_CONDITION: Final = "cost-label-missing"


def is_gpu_workload(obj: str, gpu_resources: tuple[str, ...]) -> str:
    """CEL for `workloads.is_gpu_workload` on the request's object `obj` (a map)."""
    template = template_of(obj, kind="request.kind.kind")
    return f"[{template}].all(t, {asks_for_gpu('t', gpu_resources)})"


def _gpu_condition(config: Config) -> dict[str, str]:
    return {"name": GPU_CONDITION, "expression": is_gpu_workload("object", config.gpu_resources)}


def _with_labels(predicate: str) -> str:
    """`predicate` over `t` (the pod template) and `labels` (its labels), each bound once.

    A one-element list and `all` bind a name in standard CEL, so the template path
    is walked once however many labels the predicate reads.
    """
    template = template_of("object", kind="request.kind.kind")
    return (
        f"type(object) == map && has(object.metadata) && [{template}].all(t, "
        f"[{pod_labels('t')}].all(labels, {predicate}))"
    )


def compliant(config: Config) -> str:
    """CEL true when `/validate` would answer a bare allowed: every label set and accepted,
    and no exempt annotation on the object or its template."""
    checks = [
        f"({cel_string(key)} in labels && labels[{cel_string(key)}] != '' && "
        f"{accepts(rule, f'labels[{cel_string(key)}]')})"
        for key, rule in config.labels.items()
    ]
    unannotated = (
        "[object.metadata, has(t.metadata) ? t.metadata : {}].all(m, "
        f"!has(m.annotations) || !({_EXEMPT_KEY} in m.annotations))"
    )
    return _with_labels(" && ".join([*checks, unannotated]))


def nothing_to_fill(config: Config) -> str:
    """CEL true when `/mutate` would answer no patch: every required label set, non-empty."""
    keys = cel_list(config.labels)
    return _with_labels(f"{keys}.all(k, k in labels && labels[k] != '')")


def skip_conditions(config: Config) -> list[dict[str, str]]:
    """The validating policies' matchConditions: what the API server checks before
    evaluating a single variable, so that an object neither policy can answer
    (denial or warning) costs it two short expressions instead of `judge`'s steps.

    - `gpu-workload`: the pod (template) asks for a GPU. Every validation of both
      policies needs `variables.gpu` (through `judged` or directly), so an object
      that asks for none can only pass.
    - `not-plainly-compliant`: the webhooks' own predicate (`compliant`, which
      `webhook_conditions` writes into them):
      every label set and accepted, no exempt annotation. Then `checks` are all '',
      `problems` and `reasons` empty, and no validation of either policy fails,
      in every mode, for a create or an update.

    docs/benchmarks.md ("Why the ValidatingAdmissionPolicy costs CPU") has the profile
    that asked for them.
    """
    return [
        _gpu_condition(config),
        {"name": VALIDATING_CONDITION, "expression": f"!({compliant(config)})"},
    ]


def fill_conditions(config: Config) -> list[dict[str, str]]:
    """The mutating policy's matchConditions, for the same reason: it patches only a
    GPU workload (`judged` needs `gpu`) with a required label missing or empty
    (`fill` holds only those), the mutating webhook's `cost-label-missing`."""
    return [
        _gpu_condition(config),
        {"name": MUTATING_CONDITION, "expression": f"!({nothing_to_fill(config)})"},
    ]


def deny_policy(config: Config, owner: Mapping[str, Any] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VALIDATING_VERSION}",
        "kind": "ValidatingAdmissionPolicy",
        "metadata": _meta(DENY_POLICY, owner),
        "spec": {
            # Fail: an expression that cannot be evaluated denies, as the webhook's Fail.
            "failurePolicy": "Fail",
            "matchConstraints": _match_constraints(config),
            "matchConditions": skip_conditions(config),
            "variables": [
                *validating_variables(config),
                _variable("labelsPath", labels_path()),
            ],
            "validations": [
                {
                    "expression": f"!({DENIES})",
                    "messageExpression": DENY_MESSAGE,
                    "reason": "Forbidden",
                }
            ],
        },
    }


def warn_policy(config: Config, owner: Mapping[str, Any] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VALIDATING_VERSION}",
        "kind": "ValidatingAdmissionPolicy",
        "metadata": _meta(WARN_POLICY, owner),
        "spec": {
            # Ignore: a warning that cannot be computed must never refuse a request.
            "failurePolicy": "Ignore",
            "matchConstraints": _match_constraints(config),
            "matchConditions": skip_conditions(config),
            "variables": validating_variables(config),
            "validations": warn_validations(config),
        },
    }


def validating_binding(
    config: Config,
    name: str,
    policy: str,
    actions: list[str],
    modes: frozenset[Mode],
    owner: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VALIDATING_VERSION}",
        "kind": "ValidatingAdmissionPolicyBinding",
        "metadata": _meta(name, owner),
        "spec": {
            "policyName": policy,
            "validationActions": actions,
            "matchResources": {"namespaceSelector": namespace_selector(config, modes)},
        },
    }


def mutating_variables(config: Config) -> list[dict[str, str]]:
    keys = cel_list(config.labels)
    sorted_keys = cel_list(sorted(config.labels))
    inherited = cel_string(conventions.INHERITED_ANNOTATION)
    prefix = cel_string("")
    for workload in WorkloadKind:
        if workload.template_path:
            pointer = cel_string("/" + "/".join(workload.template_path))
            prefix = f"variables.kind == {cel_string(workload.value)} ? {pointer} : {prefix}"
    annotations = "variables.template.metadata.annotations"
    return [
        *_object_variables(config),
        _variable("prefix", prefix),
        _variable(
            "judged",
            f"variables.gpu && !variables.exempt && ({effective_mode(config.mode)}) != 'off'",
        ),
        _variable(
            "namespaceLabels",
            "has(namespaceObject.metadata.labels) ? namespaceObject.metadata.labels : {}",
        ),
        _variable(
            "fill",
            f"variables.judged ? {keys}.filter(k, (!(k in variables.labels) || "
            "variables.labels[k] == '') && k in variables.namespaceLabels) : []",
        ),
        _variable(
            "earlier",
            f"{_has_path('variables.template', ('metadata', 'annotations'))} && "
            f"{inherited} in {annotations} ? {annotations}[{inherited}].split(',') : []",
        ),
        _variable(
            "noted",
            f"({sorted_keys}.filter(k, k in variables.fill || k in variables.earlier) + "
            f"variables.earlier.filter(k, k != '' && !(k in {sorted_keys}))).join(',')",
        ),
    ]


def _add(path: str, value: str) -> str:
    return f"JSONPatch{{op: 'add', path: {path}, value: {value}}}"


def inherit_patch() -> str:
    """CEL for `admission.inherit_patch`: a JSONPatch adding the namespace's labels."""
    meta = "variables.prefix + '/metadata'"
    has_meta = "has(variables.template.metadata)"
    inherited = cel_string(conventions.INHERITED_ANNOTATION)
    add_meta = _add(meta, "{}")
    add_labels = _add(meta + " + '/labels'", "{}")
    add_label = _add(
        meta + " + '/labels/' + jsonpatch.escapeKey(k)", "variables.namespaceLabels[k]"
    )
    add_annotations = _add(meta + " + '/annotations'", "{}")
    note = _add(meta + f" + '/annotations/' + jsonpatch.escapeKey({inherited})", "variables.noted")
    return (
        "size(variables.fill) == 0 ? [] : "
        f"({has_meta} ? [] : [{add_meta}]) + "
        f"({has_meta} && has(variables.template.metadata.labels) ? [] : [{add_labels}]) + "
        f"variables.fill.map(k, {add_label}) + "
        f"({has_meta} && has(variables.template.metadata.annotations) ? [] : "
        f"[{add_annotations}]) + [{note}]"
    )


def mutating_policy(
    config: Config,
    version: str = DEFAULT_MUTATING_VERSION,
    owner: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{version}",
        "kind": "MutatingAdmissionPolicy",
        "metadata": _meta(INHERIT_POLICY, owner),
        "spec": {
            # Ignore: filling labels is a convenience, as the mutating webhook's Ignore.
            "failurePolicy": "Ignore",
            # IfNeeded: called again when a later mutation changed the object.
            "reinvocationPolicy": "IfNeeded",
            "matchConstraints": _match_constraints(config),
            "matchConditions": fill_conditions(config),
            "variables": mutating_variables(config),
            "mutations": [{"patchType": "JSONPatch", "jsonPatch": {"expression": inherit_patch()}}],
        },
    }


def mutating_binding(
    config: Config,
    version: str = DEFAULT_MUTATING_VERSION,
    owner: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{version}",
        "kind": "MutatingAdmissionPolicyBinding",
        "metadata": _meta(INHERIT_BINDING, owner),
        "spec": {
            "policyName": INHERIT_POLICY,
            "matchResources": {"namespaceSelector": namespace_selector(config, GOVERNED)},
        },
    }


def admission_policies(
    config: Config,
    mutating_version: str | None = DEFAULT_MUTATING_VERSION,
    owner: Mapping[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Every object, policies before their bindings; no mutating ones when the version is None.

    Raises ConfigError when a label pattern cannot be written for RE2.
    """
    check_expressible(config)
    objects = [
        deny_policy(config, owner),
        warn_policy(config, owner),
        validating_binding(config, DENY_BINDING, DENY_POLICY, ["Deny"], ENFORCED, owner),
        validating_binding(config, WARN_BINDING, WARN_POLICY, ["Warn", "Audit"], GOVERNED, owner),
    ]
    if mutating_version is not None:
        objects += [
            mutating_policy(config, mutating_version, owner),
            mutating_binding(config, mutating_version, owner),
        ]
    return objects


# --- keeping them in step --------------------------------------------------------------


# Labels and spec as contained: the API server adds defaults (an empty objectSelector,
# matchPolicy) that an exact comparison would take for a change on every pass.
_KEPT: Final = (
    Wanted(("metadata", "labels"), Compare.CONTAINS),
    Wanted(("metadata", "ownerReferences"), Compare.EXACT),
    Wanted(("spec",), Compare.CONTAINS),
)


def policy_patch(current: Mapping[str, Any], desired: Mapping[str, Any]) -> dict[str, Any] | None:
    """A merge patch bringing a stored policy or binding to `desired`; None when it is there.

    Fields the API server defaults (an empty objectSelector, matchPolicy) are left
    alone; a spec that lacks or changed anything desired is sent whole.
    """
    return merge_patch(current, desired, _KEPT)


def is_ours(obj: Mapping[str, Any] | None) -> bool:
    """Written by the operator (its managed-by label): the only ones it deletes."""
    labels = ((obj or {}).get("metadata") or {}).get("labels") or {}
    return bool(labels.get(conventions.MANAGED_BY_LABEL) == conventions.MANAGED_BY)


def owner_reference(namespace: Mapping[str, Any]) -> dict[str, Any]:
    """The operator's Namespace as the owner: policies go with `kubectl delete namespace`."""
    meta = namespace["metadata"]
    return {"apiVersion": "v1", "kind": "Namespace", "name": meta["name"], "uid": meta["uid"]}
