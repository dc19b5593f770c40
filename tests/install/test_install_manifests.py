"""The install: manifests/ (a kustomize base and a cert-manager overlay), the image, the lock.

The manifests are rendered by a small kustomize resolver in this file (resources,
JSON 6902 and delete patches, images) and, where `kubectl` is installed, compared
with `kubectl kustomize`. Every rendered object is checked against the official
Kubernetes schemas (strict) and the upstream Prometheus Operator CRDs. RBAC is
compared with the verbs the code really uses, derived from the source: the kopf
watches in operator.py, the KubeApi calls everywhere, kopf's own Event posting and
handler patches, plus a short table of what cannot be derived. The webhook
configurations' contract is tested in tests/test_manifests.py (on
manifests/base/webhooks.yaml); here only that the install ships them unchanged.
"""

from __future__ import annotations

import ast
import copy
import functools
import importlib
import itertools
import re
import shlex
import shutil
import subprocess
import tomllib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from finops_operator.adapters.config_file import load_config
from finops_operator.adapters.metrics import OperatorMetrics
from finops_operator.cli import build_parser
from finops_operator.domain import conventions, lease
from finops_operator.domain.policies.policy_reports import PUBLISHED_APIS
from finops_operator.domain.workloads import WORKLOAD_KINDS
from tests.support.crd_schema import upstream_crd, validate_against_crd
from tests.support.paths import ROOT
from tests.support.tools import needs_tool

MANIFESTS = ROOT / "manifests"
BASE = MANIFESTS / "base"
CERT_MANAGER = MANIFESTS / "cert-manager"
SRC = ROOT / "src" / "finops_operator"
PROMTOOL = shutil.which("promtool")
KUBECTL = shutil.which("kubectl")
KUBERNETES_VERSIONS = ("1.30", kubernetes_validate.latest_version())

NAMESPACE = conventions.OPERATOR_NAMESPACE
SERVICE_ACCOUNT = "finops-operator"
WEBHOOK_CONFIGURATION = "finops-operator"
WEBHOOK_SECRET = "finops-operator-webhook-tls"
LEASE = "finops-operator"
JOB = "finops-operator"  # the metrics Service's name, hence the scraped `job`


# --- a small kustomize ---------------------------------------------------------------

KUSTOMIZATION_KEYS = {"apiVersion", "kind", "resources", "patches", "images"}


def _load_documents(file: Path) -> list[dict[str, Any]]:
    with file.open(encoding="utf-8") as stream:
        return [doc for doc in yaml.safe_load_all(stream) if doc is not None]


def _pointer(path: str) -> list[str]:
    return [part.replace("~1", "/").replace("~0", "~") for part in path.split("/")[1:]]


def _json_patch(obj: dict[str, Any], operations: list[dict[str, Any]]) -> None:
    """RFC 6902 add, replace and remove: what the overlay uses."""
    for operation in operations:
        *parents, last = _pointer(operation["path"])
        node: Any = obj
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        op = operation["op"]
        if isinstance(node, list):
            index = len(node) if last == "-" else int(last)
            if op == "add":
                node.insert(index, copy.deepcopy(operation["value"]))
            elif op == "replace":
                node[index] = copy.deepcopy(operation["value"])
            elif op == "remove":
                del node[index]
            else:
                raise AssertionError(f"JSON patch op {op!r} is not supported here")
        elif op in ("add", "replace"):
            if op == "replace" and last not in node:
                raise AssertionError(f"replace of a missing {operation['path']}")
            node[last] = copy.deepcopy(operation["value"])
        elif op == "remove":
            del node[last]
        else:
            raise AssertionError(f"JSON patch op {op!r} is not supported here")


def _group(api_version: str) -> str:
    return api_version.rpartition("/")[0]


def _matches(obj: Mapping[str, Any], target: Mapping[str, Any]) -> bool:
    meta = obj.get("metadata") or {}
    wanted = {
        "group": _group(str(obj.get("apiVersion"))),
        "version": str(obj.get("apiVersion")).rpartition("/")[2],
        "kind": obj.get("kind"),
        "name": meta.get("name"),
        "namespace": meta.get("namespace"),
    }
    return all(wanted.get(key) == value for key, value in target.items())


def render(folder: Path) -> list[dict[str, Any]]:
    """The objects `kubectl kustomize folder` prints, for what our kustomizations use."""
    kustomization = yaml.safe_load((folder / "kustomization.yaml").read_text(encoding="utf-8"))
    unknown = set(kustomization) - KUSTOMIZATION_KEYS
    assert not unknown, f"{folder}: this test's kustomize does not know {sorted(unknown)}"
    objects: list[dict[str, Any]] = []
    for entry in kustomization.get("resources", []):
        path = (folder / entry).resolve()
        objects += render(path) if path.is_dir() else _load_documents(path)
    for patch in kustomization.get("patches", []):
        body = (
            yaml.safe_load((folder / patch["path"]).read_text(encoding="utf-8"))
            if "path" in patch
            else yaml.safe_load(patch["patch"])
        )
        if isinstance(body, list):  # JSON 6902, applied to its target
            targets = [obj for obj in objects if _matches(obj, patch["target"])]
            assert len(targets) == 1, f"{folder}: patch target {patch['target']}"
            _json_patch(targets[0], body)
        else:  # a strategic merge patch; only `$patch: delete` is used
            assert body.get("$patch") == "delete", f"{folder}: unsupported patch {body}"
            target = {
                "group": _group(body["apiVersion"]),
                "kind": body["kind"],
                "name": body["metadata"]["name"],
                "namespace": body["metadata"].get("namespace"),
            }
            before = len(objects)
            objects = [obj for obj in objects if not _matches(obj, target)]
            assert len(objects) == before - 1, f"{folder}: nothing to delete for {target}"
    for image in kustomization.get("images", []):
        for obj in objects:
            for container in _containers(obj):
                name, _, _ = container["image"].partition(":")
                if name == image["name"]:
                    new_name = image.get("newName", name)
                    container["image"] = f"{new_name}:{image['newTag']}"
    return objects


def _containers(obj: Mapping[str, Any]) -> list[dict[str, Any]]:
    spec = ((obj.get("spec") or {}).get("template") or {}).get("spec") or {}
    return [*spec.get("containers", []), *spec.get("initContainers", [])]


def _key(obj: Mapping[str, Any]) -> tuple[str, str, str, str]:
    meta = obj.get("metadata") or {}
    return (obj["apiVersion"], obj["kind"], meta.get("namespace") or "", meta["name"])


INSTALLS = {"base": render(MANIFESTS), "cert-manager": render(CERT_MANAGER)}


def _one(install: str, kind: str, name: str | None = None) -> dict[str, Any]:
    found = [
        obj
        for obj in INSTALLS[install]
        if obj["kind"] == kind and name in (None, obj["metadata"]["name"])
    ]
    assert len(found) == 1, f"{install}: expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def _all(install: str, kind: str) -> list[dict[str, Any]]:
    return [obj for obj in INSTALLS[install] if obj["kind"] == kind]


def _where(obj: Mapping[str, Any]) -> str:
    return "/".join(part for part in _key(obj)[1:] if part)


EACH_OBJECT = [
    pytest.param(install, obj, id=f"{install}:{_where(obj)}")
    for install, objects in INSTALLS.items()
    for obj in objects
]
EACH_INSTALL = pytest.mark.parametrize("install", list(INSTALLS))


# --- the manifests as kustomize sees them ---------------------------------------------


def _referenced_files(folder: Path) -> set[Path]:
    kustomization = yaml.safe_load((folder / "kustomization.yaml").read_text(encoding="utf-8"))
    files = {folder / "kustomization.yaml"}
    for entry in kustomization.get("resources", []):
        path = (folder / entry).resolve()
        if path.is_dir():
            files |= _referenced_files(path)
        else:
            files.add(path)
    files |= {
        (folder / p["path"]).resolve() for p in kustomization.get("patches", []) if "path" in p
    }
    return files


def test_every_file_a_kustomization_lists_exists() -> None:
    for folder in (MANIFESTS, BASE, CERT_MANAGER):
        for file in _referenced_files(folder):
            assert file.is_file(), f"{folder.relative_to(ROOT)} lists a missing {file}"


def test_every_manifest_of_the_install_is_listed_by_a_kustomization() -> None:
    on_disk = {
        path.resolve()
        for folder in (BASE, CERT_MANAGER)
        for path in folder.rglob("*")
        if path.is_file()
    } | {(MANIFESTS / "kustomization.yaml").resolve()}
    listed = _referenced_files(MANIFESTS) | _referenced_files(CERT_MANAGER)
    assert on_disk - listed == set(), "files kustomize would never apply"


def test_the_base_carries_exact_copies_of_the_crds() -> None:
    # kustomize reads only files under the kustomization's folder, hence copies.
    originals = sorted((ROOT / "crds").glob("*.yaml"))
    assert originals
    for crd in originals:
        copy_ = BASE / "crds" / crd.name
        assert copy_.is_file(), f"manifests/base/crds/{crd.name} is missing: cp crds/*.yaml {BASE}"
        assert copy_.read_bytes() == crd.read_bytes(), (
            f"manifests/base/crds/{crd.name} differs from crds/{crd.name}: "
            "cp crds/*.yaml manifests/base/crds/"
        )
    assert sorted(p.name for p in (BASE / "crds").glob("*")) == [p.name for p in originals]


@needs_tool("kubectl")
@EACH_INSTALL
def test_kubectl_kustomize_renders_exactly_what_these_tests_check(install: str) -> None:
    folder = MANIFESTS if install == "base" else CERT_MANAGER
    result = subprocess.run(
        [str(KUBECTL), "kustomize", str(folder)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    rendered = {_key(doc): doc for doc in yaml.safe_load_all(result.stdout) if doc}
    ours = {_key(doc): doc for doc in INSTALLS[install]}
    assert sorted(rendered) == sorted(ours)
    for key, doc in ours.items():
        assert rendered[key] == doc, key


def test_everything_namespaced_lives_in_the_operator_namespace() -> None:
    for install, objects in INSTALLS.items():
        for obj in objects:
            namespace = obj["metadata"].get("namespace")
            assert namespace in (None, NAMESPACE), f"{install}: {_where(obj)}"
    assert _one("base", "Namespace")["metadata"]["name"] == NAMESPACE


# --- schemas ----------------------------------------------------------------------------

UPSTREAM_CRD_OF_KIND = {
    "ServiceMonitor": "monitoring.coreos.com_servicemonitors.yaml",
    "PrometheusRule": "monitoring.coreos.com_prometheusrules.yaml",
}
# No schema for cert-manager's kinds is available offline; their fields are checked
# one by one in the cert-manager tests below.
CERT_MANAGER_KINDS = {"Issuer", "Certificate"}


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize(("install", "obj"), EACH_OBJECT)
def test_every_object_is_valid_against_the_official_or_upstream_schema(
    install: str, obj: dict[str, Any], version: str
) -> None:
    if obj["kind"] in UPSTREAM_CRD_OF_KIND:
        crd = upstream_crd(UPSTREAM_CRD_OF_KIND[obj["kind"]])
        validate_against_crd(obj, crd)
        return
    if obj["kind"] in CERT_MANAGER_KINDS:
        assert obj["apiVersion"] == "cert-manager.io/v1"
        return
    try:
        kubernetes_validate.validate(obj, version, strict=True)
    except kubernetes_validate.ValidationError as err:
        path = ".".join(str(part) for part in err.absolute_path) or "(top level)"
        pytest.fail(f"{_where(obj)} is not valid Kubernetes {version}: {path}: {err.message}")


# --- RBAC: granted versus used ------------------------------------------------------------

Permission = tuple[str, str, str]  # API group, resource (or resource/subresource), verb

KOPF_WATCH_VERBS = ("list", "watch")  # kopf lists, then watches from that resourceVersion
KUBE_API_VERBS = {"get": "get", "create": "create", "patch": "patch", "delete": "delete"}
KOPF_ON_WITHOUT_RBAC = {"startup", "cleanup", "login", "probe"}  # no API object involved

# What the source cannot tell, with why. Keep it short: everything else is derived.
NOT_DERIVABLE: dict[Permission, str] = {
    # kopf's resource scanning watches CRDs, so it notices resources that appear
    # later (e.g. the Prometheus Operator CRDs installed after the operator).
    ("apiextensions.k8s.io", "customresourcedefinitions", "list"): "kopf resource scanning",
    ("apiextensions.k8s.io", "customresourcedefinitions", "watch"): "kopf resource scanning",
}
# Resources a controller takes from its configuration (`self.resource`): every one it may be.
CONFIGURED_RESOURCES: dict[str, list[tuple[str, str, str]]] = {
    "self.resource": [api.resource for api in PUBLISHED_APIS],
}
# KubeApi methods whose requests are neither (group, version, plural) calls nor raw
# requests by path (which are derived), and what each needs.
KUBE_API_SPECIAL: dict[str, set[Permission]] = {
    # Discovery (/apis/GROUP/VERSION): every authenticated user may read it (system:discovery).
    "served_resources": set(),
    # A view of the same client whose writes wait for leadership; closing stops its threads.
    "writing_only_while": set(),
    "close": set(),
    "patch_workload": {(group, plural, "patch") for group, plural, _ in WORKLOAD_KINDS.values()},
    "get_workload": {(group, plural, "get") for group, plural, _ in WORKLOAD_KINDS.values()},
}
HTTP_VERBS = {"GET": "get", "POST": "create", "PATCH": "patch", "PUT": "update", "DELETE": "delete"}
# Granted only in the operator's namespace (a Role), with the one name each is for.
OPERATOR_NAMESPACE_ONLY = {
    ("coordination.k8s.io", "leases"),
    ("", "secrets"),
    ("", "configmaps"),
}
RESOURCE_NAMES = {
    ("coordination.k8s.io", "leases"): LEASE,
    ("", "secrets"): WEBHOOK_SECRET,
    ("", "configmaps"): conventions.CONFIG_MAP,
    ("admissionregistration.k8s.io", "validatingwebhookconfigurations"): WEBHOOK_CONFIGURATION,
    ("admissionregistration.k8s.io", "mutatingwebhookconfigurations"): WEBHOOK_CONFIGURATION,
}
# The one get → create → patch helper: its calls take the resource as a parameter, so its
# permissions are derived where it is called, `apply(kube, RESOURCE, ..., status=...)`.
WATCH_MODULE = "finops_operator.controllers.watch_feeds"
APPLY_MODULE = "finops_operator.controllers.apply"
CONFIG_MODULE = "finops_operator.controllers.config_watch"  # watches the operator's ConfigMap
APPLY_VERBS = ("get", "create", "patch")
# Verbs the API server cannot limit to resourceNames (the name is not known yet).
UNNAMEABLE_VERBS = {"create", "list", "watch", "deletecollection"}


def _modules() -> Iterator[tuple[str, ast.Module]]:
    for file in sorted(SRC.rglob("*.py")):
        name = ".".join(file.relative_to(SRC.parent).with_suffix("").parts)
        yield name, ast.parse(file.read_text(encoding="utf-8"), filename=str(file))


def _parents(tree: ast.AST) -> dict[ast.AST, ast.AST]:
    return {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return "?"


# Loops over what an object was configured with, read as the module constant that is the
# most it can hold: the readiness check lists at most `WATCHED` (the operator passes the
# kinds kopf still watches, a subset).
LOOP_STAND_INS: dict[str, str] = {"self.watched.items()": "WATCHED.items()"}


def _loop_bindings(
    node: ast.AST, parents: dict[ast.AST, ast.AST], scope: dict[str, Any]
) -> list[dict[str, Any]]:
    """Every binding of the enclosing for-loops' names, evaluated in module scope."""
    loops = []
    while node in parents:
        node = parents[node]
        if isinstance(node, ast.For):
            loops.append(node)
    bindings: list[dict[str, Any]] = [{}]
    for loop in reversed(loops):
        target = ast.unparse(loop.target)
        iterable = ast.unparse(loop.iter)
        iterable = LOOP_STAND_INS.get(iterable, iterable)
        expanded = []
        for binding in bindings:
            for item in eval(iterable, scope, binding):
                namespace: dict[str, Any] = {"__item": item}
                exec(f"{target} = __item", scope, namespace)
                namespace.pop("__item")
                expanded.append({**binding, **namespace})
        bindings = expanded
    return bindings


def _constant_or_loop_bindings(
    node: ast.AST, call: ast.Call, parents: dict[ast.AST, ast.AST], scope: dict[str, Any]
) -> list[dict[str, Any]]:
    """No binding when `node` is a module constant, else the enclosing loops' bindings."""
    try:
        eval(ast.unparse(node), scope)
    except NameError:
        return _loop_bindings(call, parents, scope)
    return [{}]


def _arguments(call: ast.Call, scope: dict[str, Any], binding: dict[str, Any]) -> list[Any]:
    values: list[Any] = []
    for arg in call.args:
        if isinstance(arg, ast.Starred):
            values += list(eval(ast.unparse(arg.value), scope, binding))
        else:
            values.append(eval(ast.unparse(arg), scope, binding))
    return values


def _kopf_resource(args: list[Any]) -> tuple[str, str]:
    """(group, plural) of kopf.on.event(group, version, plural) or (version, plural)."""
    if len(args) == 3:
        return str(args[0]), str(args[2])
    if len(args) == 2 and re.fullmatch(r"v\d+\w*", str(args[0])):
        return "", str(args[1])
    raise AssertionError(f"kopf.on.event{tuple(args)}: teach this test how to read it")


def _handler_of(call: ast.Call, parents: dict[ast.AST, ast.AST], tree: ast.Module) -> ast.AST:
    """The function a kopf.on.event(...) call registers."""
    parent = parents[call]
    if isinstance(parent, ast.FunctionDef | ast.AsyncFunctionDef):
        return parent
    assert isinstance(parent, ast.Call) and parent.func is call, ast.unparse(parent)
    registered = parent.args[0]
    if isinstance(registered, ast.Name):  # handler = make_handler(...); kopf.on.event(...)(handler)
        variable = registered.id
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Assign)
                and [ast.unparse(target) for target in node.targets] == [variable]
                and isinstance(node.value, ast.Call)
            ):
                registered = node.value
    factory = registered.func if isinstance(registered, ast.Call) else registered
    assert isinstance(factory, ast.Name), ast.unparse(registered)
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == factory.id:
            return node
    raise AssertionError(f"cannot find the handler {factory.id}")


def _writes_kopf_patch(handler: ast.AST) -> bool:
    """The handler fills kopf's `patch`, which kopf then applies to the object."""
    for node in ast.walk(handler):
        targets = node.targets if isinstance(node, ast.Assign) else []
        if isinstance(node, ast.AugAssign | ast.AnnAssign):
            targets = [node.target]
        for target in targets:
            root = target
            while isinstance(root, ast.Attribute | ast.Subscript):
                root = root.value
            if isinstance(root, ast.Name) and root.id == "patch":
                return True
    return False


def _path_template(
    node: ast.AST, function: ast.AST, scope: dict[str, Any], binding: dict[str, Any]
) -> str:
    """A request path with `{}` for what only run time knows (a namespace, a name)."""
    if isinstance(node, ast.Name) and node.id not in binding and node.id not in scope:
        assigned = [
            n.value
            for n in ast.walk(function)
            if isinstance(n, ast.Assign) and [ast.unparse(x) for x in n.targets] == [node.id]
        ]
        assert len(assigned) == 1, f"cannot tell the path {node.id}"
        return _path_template(assigned[0], function, scope, binding)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        # a path + a query string (paged lists): what run time adds stays `{}`
        try:
            right = _path_template(node.right, function, scope, binding)
        except NameError:
            right = "{}"
        return _path_template(node.left, function, scope, binding) + right
    if isinstance(node, ast.JoinedStr):
        parts = []
        for value in node.values:
            if isinstance(value, ast.Constant):
                parts.append(str(value.value))
                continue
            assert isinstance(value, ast.FormattedValue)
            try:
                parts.append(str(eval(ast.unparse(value.value), scope, binding)))
            except NameError:
                parts.append("{}")
        return "".join(parts)
    return str(eval(ast.unparse(node), scope, binding))


def _path_resource(path: str) -> tuple[str, str]:
    """(group, resource) of /api/v1/[namespaces/NS/]PLURAL[/NAME[/SUB]] or /apis/G/V/..."""
    parts = path.partition("?")[0].strip("/").split("/")
    group, rest = ("", parts[2:]) if parts[0] == "api" else (parts[1], parts[3:])
    if rest[:1] == ["namespaces"] and len(rest) > 2:
        rest = rest[2:]
    return group, rest[0] if len(rest) < 3 else f"{rest[0]}/{rest[2]}"


def _raw_permissions(
    call: ast.Call, tree: ast.Module, parents: dict[ast.AST, ast.AST], scope: dict[str, Any]
) -> set[Permission]:
    """What a raw request by path (KubeApi.raw / _raw) needs: verb from the HTTP method."""
    function: ast.AST = call
    while not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef | ast.Module):
        function = parents[function]
    args = call.args
    if _dotted(call.func).endswith("partial"):  # partial(self._raw, METHOD, PATH, ...)
        args = args[1:]
    method = ast.literal_eval(args[0])
    found = set()
    for binding in _loop_bindings(call, parents, scope):
        path = _path_template(args[1], function, scope, binding)
        group, resource = _path_resource(path)
        verb = HTTP_VERBS[method]
        if verb == "get" and _is_collection(path):
            verb = "list"  # a GET of a collection is the `list` verb
        found.add((group, resource, verb))
    return found


def _is_collection(path: str) -> bool:
    """/api/v1/[namespaces/NS/]PLURAL or /apis/G/V/[namespaces/NS/]PLURAL, without a name."""
    parts = path.strip("/").split("/")
    rest = parts[2:] if parts[0] == "api" else parts[3:]
    if rest[:1] == ["namespaces"] and len(rest) > 2:
        rest = rest[2:]
    return len(rest) == 1


def _is_raw_request(call: ast.Call) -> bool:
    name = _dotted(call.func)
    if name.endswith("partial") and call.args:
        name = _dotted(call.args[0])
    return bool(re.fullmatch(r"(self|.*kube)\._?raw", name))


def kube_api_methods() -> dict[str, set[Permission]]:
    """KubeApi's methods that send raw requests by path, and what those need."""
    module = "finops_operator.adapters.kube_api"
    tree = ast.parse((SRC / "adapters" / "kube_api.py").read_text(encoding="utf-8"))
    scope, parents = vars(importlib.import_module(module)), _parents(tree)
    [api] = [n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "KubeApi"]
    methods = {}
    for function in api.body:
        if (
            isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef)
            and function.name not in KUBE_API_SPECIAL
        ):
            calls = [n for n in ast.walk(function) if isinstance(n, ast.Call)]
            raw = [c for c in calls if _is_raw_request(c) and function.name not in ("raw", "_raw")]
            if raw:
                methods[function.name] = set().union(
                    *(_raw_permissions(c, tree, parents, scope) for c in raw)
                )
    return methods


def _called_resources(
    node: ast.AST, call: ast.Call, parents: dict[ast.AST, ast.AST], scope: dict[str, Any]
) -> list[tuple[str, str, str]]:
    """The (group, version, plural)s a call names: a module constant, a loop over module
    constants, or a configured one."""
    expression = ast.unparse(node)
    if expression in CONFIGURED_RESOURCES:
        return CONFIGURED_RESOURCES[expression]
    return [
        eval(expression, scope, binding)
        for binding in _constant_or_loop_bindings(node, call, parents, scope)
    ]


@functools.cache
def used_permissions() -> dict[Permission, str]:
    """Every (group, resource, verb) the operator's code uses, with where it comes from."""
    from kopf._cogs.structs import references

    used: dict[Permission, str] = {}
    by_path = kube_api_methods()
    for module_name, tree in _modules():
        scope = vars(importlib.import_module(module_name))
        parents = _parents(tree)
        for call in (n for n in ast.walk(tree) if isinstance(n, ast.Call)):
            where = f"{module_name}:{call.lineno}"
            name = _dotted(call.func)
            if name.startswith("kopf.on."):
                if name.rpartition(".")[2] in KOPF_ON_WITHOUT_RBAC:
                    continue
                assert name == "kopf.on.event", f"{where}: {name} needs RBAC this test can't tell"
                patches = _writes_kopf_patch(_handler_of(call, parents, tree))
                for binding in _loop_bindings(call, parents, scope):
                    group, plural = _kopf_resource(_arguments(call, scope, binding))
                    for verb in (*KOPF_WATCH_VERBS, *(("patch",) if patches else ())):
                        used.setdefault((group, plural, verb), where)
            elif (name == "ListWatch" or name == "open_watch") and module_name == CONFIG_MODULE:
                # The operator's own ConfigMap, by name, in its namespace (config_watch).
                for verb in ("list", "watch"):
                    used.setdefault(("", "configmaps", verb), where)
            elif name == "ListWatch" or name == "open_watch":
                # Our own list-and-watch: opened by watch_feeds.watch_lean_kinds only, for the
                # paths of LIST_WATCHED and DRA_WATCHED (the DRA kinds, where the API serves
                # them), by contract; the operator hands it ListWatch.
                assert module_name == WATCH_MODULE and name == "open_watch", (
                    f"{where}: {name}: open list-and-watches in {WATCH_MODULE}, over LIST_WATCHED"
                )
                path = ast.unparse(call.args[0]) if call.args else ""
                assert path == "path", f"{where}: open_watch of {path!r}: a LIST_WATCHED path"
                watched = [*scope["LIST_WATCHED"].values(), *scope["DRA_WATCHED"].values()]
                for group, plural in watched:
                    for verb in ("list", "watch"):
                        used.setdefault((group, plural, verb), where)
            elif name == "kopf.event":
                # kopf posts its Events to the core v1 API (references.EVENTS).
                used.setdefault((references.EVENTS.group or "", "events", "create"), where)
            elif name.rpartition(".")[2] == "apply" and re.fullmatch(
                r"(.*\.)?kube", _dotted(call.args[0]) if call.args else ""
            ):
                status = any(
                    kw.arg == "status" and ast.unparse(kw.value) == "True" for kw in call.keywords
                )
                # a module constant, a loop over module constants, or a configured one
                for group, _, plural in _called_resources(call.args[1], call, parents, scope):
                    for verb in APPLY_VERBS:
                        resource = f"{plural}/status" if status and verb == "patch" else plural
                        used.setdefault((group, resource, verb), where)
            elif re.fullmatch(r"(.*\.)?kube\.\w+", name) and module_name != APPLY_MODULE:
                method = name.rpartition(".")[2]
                if method == "raw":
                    for permission in _raw_permissions(call, tree, parents, scope):
                        used.setdefault(permission, where)
                    continue
                if method in KUBE_API_SPECIAL or method in by_path:
                    needs = (
                        KUBE_API_SPECIAL[method] if method in KUBE_API_SPECIAL else by_path[method]
                    )
                    for permission in needs:
                        used.setdefault(permission, where)
                    continue
                assert method in KUBE_API_VERBS, (
                    f"{where}: KubeApi.{method} is not mapped to RBAC: add it to KUBE_API_SPECIAL"
                )
                assert call.args and isinstance(call.args[0], ast.Starred), (
                    f"{where}: {name} without a (group, version, plural) tuple as *ARGS"
                )
                # a module constant, e.g. RULES = ("monitoring.coreos.com", "v1",
                # "prometheusrules"), a loop over module constants, or a configured one
                status = any(
                    kw.arg == "status" and ast.unparse(kw.value) == "True" for kw in call.keywords
                )
                resource_node = call.args[0].value
                for group, _, plural in _called_resources(resource_node, call, parents, scope):
                    resource = f"{plural}/status" if status else plural
                    used.setdefault((group, resource, KUBE_API_VERBS[method]), where)
    return used


def _rules(obj: Mapping[str, Any]) -> Iterator[tuple[Permission, tuple[str, ...]]]:
    for rule in obj.get("rules", []):
        names = tuple(rule.get("resourceNames", ()))
        for group, resource, verb in itertools.product(
            rule["apiGroups"], rule["resources"], rule["verbs"]
        ):
            yield (group, resource, verb), names


def _roles_of_the_operator(install: str) -> list[dict[str, Any]]:
    """The Roles and ClusterRoles bound to the operator's ServiceAccount."""
    bound = set()
    for binding in [*_all(install, "RoleBinding"), *_all(install, "ClusterRoleBinding")]:
        for subject in binding["subjects"]:
            if (subject["kind"], subject["name"], subject.get("namespace")) == (
                "ServiceAccount",
                SERVICE_ACCOUNT,
                NAMESPACE,
            ):
                namespace = binding["metadata"].get("namespace")
                bound.add((binding["roleRef"]["kind"], binding["roleRef"]["name"], namespace))
    return [
        role
        for role in [*_all(install, "Role"), *_all(install, "ClusterRole")]
        if (role["kind"], role["metadata"]["name"], role["metadata"].get("namespace")) in bound
    ]


def granted_permissions(install: str) -> dict[Permission, list[tuple[str, tuple[str, ...]]]]:
    granted: dict[Permission, list[tuple[str, tuple[str, ...]]]] = {}
    for role in _roles_of_the_operator(install):
        for permission, names in _rules(role):
            granted.setdefault(permission, []).append((_where(role), names))
    return granted


@EACH_INSTALL
def test_no_rbac_rule_has_a_wildcard(install: str) -> None:
    for role in [*_all(install, "Role"), *_all(install, "ClusterRole")]:
        assert "aggregationRule" not in role
        for rule in role["rules"]:
            assert "nonResourceURLs" not in rule, _where(role)
            for field in ("apiGroups", "resources", "verbs", "resourceNames"):
                for value in rule.get(field, []):
                    assert "*" not in value, f"{_where(role)}: {field} {value!r}"


def test_the_derivation_finds_the_watches_writes_and_events_of_the_code() -> None:
    # A guard for the derivation itself: were it to find nothing, RBAC would pass vacuously.
    for group, plural, _ in WORKLOAD_KINDS.values():
        assert (group, plural, "watch") in used_permissions()
        assert (group, plural, "patch") in used_permissions()
    for permission in [
        ("", "namespaces", "watch"),
        ("", "nodes", "list"),
        ("", "events", "create"),
        ("monitoring.coreos.com", "prometheusrules", "delete"),
        (conventions.API_GROUP, "costpolicies/status", "patch"),
        (conventions.API_GROUP, "costreports", "create"),
    ]:
        assert permission in used_permissions(), permission


def test_the_derivation_finds_both_report_apis_the_configuration_can_choose() -> None:
    used = used_permissions()
    for group, plural in (("wgpolicyk8s.io", "policyreports"), ("openreports.io", "reports")):
        for verb in ("get", "list", "watch", "create", "patch", "delete"):
            assert (group, plural, verb) in used, (group, plural, verb)


def test_the_operator_is_granted_every_permission_its_code_uses() -> None:
    granted = granted_permissions("base")
    needed = {**used_permissions(), **NOT_DERIVABLE}
    missing = {p: where for p, where in needed.items() if p not in granted}
    assert not missing, f"used by the code but not granted: {missing}"


def test_the_operator_is_granted_nothing_its_code_does_not_use() -> None:
    granted = granted_permissions("base")
    unused = sorted(p for p in granted if p not in used_permissions() and p not in NOT_DERIVABLE)
    assert not unused, f"granted but used nowhere in src/: {unused}"


def test_with_cert_manager_the_operator_gets_no_access_to_secrets_or_webhook_configurations() -> (
    None
):
    granted = granted_permissions("cert-manager")
    for group, resource, verb in granted:
        assert resource != "secrets", (group, resource, verb)
        assert not resource.endswith("webhookconfigurations"), (group, resource, verb)
    # Everything else stays.
    used = set(used_permissions())
    certificate = {p for p in used if p[1] == "secrets" or p[1].endswith("webhookconfigurations")}
    assert set(granted) >= used - certificate


@EACH_INSTALL
def test_leases_and_secrets_are_granted_only_in_the_operator_namespace(install: str) -> None:
    for role in _roles_of_the_operator(install):
        for (group, resource, _), _names in _rules(role):
            if (group, resource) in OPERATOR_NAMESPACE_ONLY:
                assert role["kind"] == "Role", _where(role)
                assert role["metadata"]["namespace"] == NAMESPACE


@EACH_INSTALL
def test_every_grant_that_can_name_its_object_does(install: str) -> None:
    for permission, grants in granted_permissions(install).items():
        group, resource, verb = permission
        name = RESOURCE_NAMES.get((group, resource))
        if name is None or verb in UNNAMEABLE_VERBS:
            continue
        for role, names in grants:
            assert names == (name,), f"{role}: {permission} should be limited to {name!r}"


def test_the_lease_is_the_one_the_code_elects_with() -> None:
    assert lease.LEASE_NAME == LEASE


def test_the_deployment_runs_as_the_service_account_the_roles_are_bound_to() -> None:
    deployment = _one("base", "Deployment")
    assert deployment["spec"]["template"]["spec"]["serviceAccountName"] == SERVICE_ACCOUNT
    _one("base", "ServiceAccount", SERVICE_ACCOUNT)
    kinds = {role["kind"] for role in _roles_of_the_operator("base")}
    assert kinds == {"Role", "ClusterRole"}
    for binding in [*_all("base", "RoleBinding"), *_all("base", "ClusterRoleBinding")]:
        ref = binding["roleRef"]
        assert any(
            role["kind"] == ref["kind"] and role["metadata"]["name"] == ref["name"]
            for role in _roles_of_the_operator("base")
        ), f"{_where(binding)} binds a role that does not exist"


# --- the Deployment -----------------------------------------------------------------------


def _pod_spec(install: str = "base") -> dict[str, Any]:
    spec: dict[str, Any] = _one(install, "Deployment")["spec"]["template"]["spec"]
    return spec


def _operator_container(install: str = "base") -> dict[str, Any]:
    [container] = _pod_spec(install)["containers"]
    return dict(container)


def test_the_deployment_runs_two_replicas_that_never_all_go_at_once() -> None:
    deployment = _one("base", "Deployment")
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    pdb = _one("base", "PodDisruptionBudget")
    assert pdb["spec"]["minAvailable"] == 1
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()


def test_the_replicas_are_spread_across_nodes() -> None:
    spec = _pod_spec()
    spread = {c["topologyKey"] for c in spec.get("topologySpreadConstraints", [])}
    preferred = spec.get("affinity", {}).get("podAntiAffinity", {})
    anti = {
        term["podAffinityTerm"]["topologyKey"]
        for term in preferred.get("preferredDuringSchedulingIgnoredDuringExecution", [])
    }
    assert "kubernetes.io/hostname" in spread | anti


@EACH_INSTALL
def test_the_operator_runs_hardened(install: str) -> None:
    pod = _pod_spec(install)["securityContext"]
    container = _operator_container(install)["securityContext"]
    assert pod["runAsNonRoot"] is True and pod["runAsUser"] == 65532
    assert pod["seccompProfile"] == {"type": "RuntimeDefault"}
    assert container["runAsNonRoot"] is True and container["runAsUser"] == 65532
    assert container["readOnlyRootFilesystem"] is True
    assert container["allowPrivilegeEscalation"] is False
    assert container["capabilities"] == {"drop": ["ALL"]}
    assert container.get("privileged", False) is False
    assert container["seccompProfile"] == {"type": "RuntimeDefault"}


@EACH_INSTALL
def test_the_only_writable_place_is_an_empty_dir_at_tmp(install: str) -> None:
    volumes = {volume["name"]: volume for volume in _pod_spec(install)["volumes"]}
    for mount in _operator_container(install)["volumeMounts"]:
        volume = volumes[mount["name"]]
        if mount["mountPath"] == "/tmp":
            assert "emptyDir" in volume
        else:
            assert mount.get("readOnly") is True, mount


def test_the_operator_has_requests_and_limits() -> None:
    resources = _operator_container()["resources"]
    for section in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(resources[section]), section


def test_the_probes_ask_readyz_and_healthz_on_the_metrics_port() -> None:
    container = _operator_container()
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    assert ports["metrics"] == 8080
    for probe, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")):
        get = container[probe]["httpGet"]
        assert get["path"] == path
        assert ports.get(get["port"], get["port"]) == 8080


def test_the_operator_knows_its_namespace_from_the_downward_api() -> None:
    env = {item["name"]: item for item in _operator_container()["env"]}
    assert env["POD_NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace"


def _run_options(install: str) -> dict[str, str]:
    args = _operator_container(install)["args"]
    assert args[0] == "run"
    return dict(zip(args[1::2], args[2::2], strict=True))


@EACH_INSTALL
def test_the_deployment_arguments_are_ones_the_command_line_accepts(install: str) -> None:
    args = _operator_container(install)["args"]
    known = {
        option
        for action in build_parser()._subparsers._group_actions[0].choices["run"]._actions  # type: ignore[union-attr]
        for option in action.option_strings
    }
    missing = [arg for arg in args if arg.startswith("--") and arg not in known]
    assert not missing, f"unknown options of `finops-operator run`: {missing}"
    build_parser().parse_args(args)


@EACH_INSTALL
def test_the_pause_and_the_drain_leave_half_the_grace_period_to_stop(install: str) -> None:
    """A deleted replica serves through the preStop pause, then drains at its SIGTERM
    (`run --webhook-drain-seconds`, docs/install.md); kubelet's SIGKILL must not cut it."""
    container = _operator_container(install)
    pause = container["lifecycle"]["preStop"]["sleep"]["seconds"]
    drain = build_parser().parse_args(container["args"]).webhook_drain_seconds
    assert drain > 0  # the Deployment keeps the default drain
    assert pause + drain <= _pod_spec(install)["terminationGracePeriodSeconds"] / 2


def test_the_base_install_serves_the_operator_managed_certificate() -> None:
    options = _run_options("base")
    assert options["--webhook-secret"] == WEBHOOK_SECRET
    assert "--webhook-cert" not in options


def test_the_configuration_in_the_config_map_is_valid_and_mounted_where_run_reads_it(
    tmp_path: Path,
) -> None:
    config_map = _one("base", "ConfigMap", "finops-operator-config")
    file = tmp_path / "config.yaml"
    file.write_text(config_map["data"]["config.yaml"], encoding="utf-8")
    config = load_config(file)
    # The webhooks' namespaceSelector must leave out exactly the exempt namespaces.
    webhook = _one("base", "ValidatingWebhookConfiguration")["webhooks"][0]
    [names] = [
        e["values"]
        for e in webhook["namespaceSelector"]["matchExpressions"]
        if e["key"] == "kubernetes.io/metadata.name"
    ]
    assert sorted(config.exempt_namespaces) == sorted(names)
    mounts = {m["name"]: m["mountPath"] for m in _operator_container()["volumeMounts"]}
    volume = next(v for v in _pod_spec()["volumes"] if v.get("configMap"))
    assert volume["configMap"]["name"] == "finops-operator-config"
    assert _run_options("base")["--config"] == f"{mounts[volume['name']]}/config.yaml"


def test_the_image_tag_is_the_project_version() -> None:
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert _operator_container()["image"] == f"finops-operator:{version}"


# --- Services, webhooks, ServiceMonitor ------------------------------------------------------


def _selects_the_operator(service: Mapping[str, Any]) -> bool:
    labels = _one("base", "Deployment")["spec"]["template"]["metadata"]["labels"]
    return bool(service["spec"]["selector"].items() <= labels.items())


def test_the_install_ships_the_webhook_configurations_of_webhooks_yaml_unchanged() -> None:
    # Their contract is tested in tests/test_manifests.py on that file.
    shipped = {_key(doc): doc for doc in _load_documents(BASE / "webhooks.yaml")}
    for key, doc in shipped.items():
        rendered = [obj for obj in INSTALLS["base"] if _key(obj) == key]
        assert rendered == [doc], key


def test_the_webhook_service_reaches_the_operators_https_port() -> None:
    service = _one("base", "Service", "finops-operator-webhook")
    assert _selects_the_operator(service)
    ports = {p["containerPort"] for p in _operator_container()["ports"]}
    assert {p["targetPort"] for p in service["spec"]["ports"]} <= ports


def test_the_service_monitor_honours_labels_on_a_port_the_metrics_service_has() -> None:
    monitor = _one("base", "ServiceMonitor")
    services = [
        s
        for s in _all("base", "Service")
        if monitor["spec"]["selector"]["matchLabels"].items() <= s["metadata"]["labels"].items()
    ]
    assert [s["metadata"]["name"] for s in services] == [JOB]
    [service] = services
    assert _selects_the_operator(service)
    container_ports = {p["name"] for p in _operator_container()["ports"]}
    service_ports = {p["name"]: p for p in service["spec"]["ports"]}
    assert monitor["spec"]["endpoints"]
    for endpoint in monitor["spec"]["endpoints"]:
        assert endpoint["honorLabels"] is True
        assert endpoint["port"] in service_ports
        assert service_ports[endpoint["port"]]["targetPort"] in container_ports


def test_kube_prometheus_stack_picks_up_the_service_monitor_and_the_rules() -> None:
    for kind in ("ServiceMonitor", "PrometheusRule"):
        assert _one("base", kind)["metadata"]["labels"]["release"] == "kube-prometheus-stack"


# --- the operator's health alerts -----------------------------------------------------------


def _health_rules() -> dict[str, Any]:
    return dict(_one("base", "PrometheusRule", "finops-operator-health")["spec"])


def _alerts() -> list[dict[str, Any]]:
    return [rule for group in _health_rules()["groups"] for rule in group["rules"]]


HEALTH_TEST = ROOT / "tests" / "promtool" / "operator_health.test.yaml"


def _exported_metric_names() -> set[str]:
    names = {"up"}
    for family in OperatorMetrics().registry.collect():
        for sample in family.samples:
            names.add(sample.name)
        names.add(family.name)
        if family.type == "counter":
            names.add(f"{family.name}_total")
        if family.type == "histogram":
            names |= {f"{family.name}_bucket", f"{family.name}_sum", f"{family.name}_count"}
    return names


def test_every_health_alert_reads_only_series_the_operator_exports_under_its_job() -> None:
    exported = _exported_metric_names()
    for alert in _alerts():
        selectors = re.findall(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\{([^}]*)\}", alert["expr"])
        assert selectors, alert["alert"]
        for metric, matchers in selectors:
            assert metric in exported, f"{alert['alert']}: {metric} is not exported"
            assert f'job="{JOB}"' in matchers, f"{alert['alert']}: {metric} without its job"


@needs_tool("promtool")
def test_the_health_alerts_pass_promtool_check_rules(tmp_path: Path) -> None:
    rules = tmp_path / "operator-health.yaml"
    rules.write_text(yaml.safe_dump(_health_rules(), sort_keys=False), encoding="utf-8")
    result = subprocess.run(
        [str(PROMTOOL), "check", "rules", str(rules)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@needs_tool("promtool")
def test_the_health_alerts_fire_on_their_planted_conditions_and_only_then(tmp_path: Path) -> None:
    (tmp_path / "operator-health.yaml").write_text(
        yaml.safe_dump(_health_rules(), sort_keys=False), encoding="utf-8"
    )
    shutil.copy(HEALTH_TEST, tmp_path / HEALTH_TEST.name)
    result = subprocess.run(
        [str(PROMTOOL), "test", "rules", HEALTH_TEST.name],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_health_alert_is_proven_to_fire_and_to_stay_silent() -> None:
    fired, silent = set(), set()
    for test in yaml.safe_load(HEALTH_TEST.read_text(encoding="utf-8"))["tests"]:
        for case in test.get("alert_rule_test", []):
            (fired if case.get("exp_alerts") else silent).add(case["alertname"])
    names = {alert["alert"] for alert in _alerts()}
    assert fired == names
    assert silent == names


def test_every_health_alert_has_a_severity_a_summary_and_a_wait() -> None:
    for alert in _alerts():
        assert alert["labels"]["severity"] in ("critical", "warning", "info"), alert["alert"]
        assert alert["annotations"]["summary"] and alert["annotations"]["description"]
        assert alert.get("for"), alert["alert"]


# --- the cert-manager overlay -----------------------------------------------------------------


def test_with_cert_manager_the_replicas_serve_the_certificate_cert_manager_issues() -> None:
    certificate = _one("cert-manager", "Certificate")
    options = _run_options("cert-manager")
    assert "--webhook-secret" not in options
    mounts = {
        m["name"]: m["mountPath"] for m in _operator_container("cert-manager")["volumeMounts"]
    }
    [volume] = [v for v in _pod_spec("cert-manager")["volumes"] if "secret" in v]
    assert volume["secret"]["secretName"] == certificate["spec"]["secretName"]
    folder = mounts[volume["name"]]
    assert options["--webhook-cert"] == f"{folder}/tls.crt"
    assert options["--webhook-key"] == f"{folder}/tls.key"


def test_with_cert_manager_the_certificate_names_the_webhook_service() -> None:
    certificate = _one("cert-manager", "Certificate")
    service = _one("cert-manager", "Service", "finops-operator-webhook")
    host = f"{service['metadata']['name']}.{service['metadata']['namespace']}.svc"
    assert host in certificate["spec"]["dnsNames"]
    issuer = _one("cert-manager", "Issuer")
    assert certificate["spec"]["issuerRef"]["name"] == issuer["metadata"]["name"]
    assert certificate["spec"]["issuerRef"]["kind"] == "Issuer"


def test_with_cert_manager_the_ca_injector_fills_both_webhook_configurations() -> None:
    certificate = _one("cert-manager", "Certificate")
    expected = f"{certificate['metadata']['namespace']}/{certificate['metadata']['name']}"
    for kind in ("ValidatingWebhookConfiguration", "MutatingWebhookConfiguration"):
        configuration = _one("cert-manager", kind)
        assert configuration["metadata"]["annotations"] == {
            "cert-manager.io/inject-ca-from": expected
        }
        # Otherwise unchanged from the base.
        base = copy.deepcopy(configuration)
        del base["metadata"]["annotations"]
        assert base == _one("base", kind)


# --- the image ----------------------------------------------------------------------------------

DOCKERFILE = ROOT / "Dockerfile"
LOCK = ROOT / "requirements.lock"


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text(encoding="utf-8"))
    lines = (line.strip() for line in text.splitlines())
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line else "")
        for line in lines
        if line and not line.startswith("#")
    ]


def _global_args() -> dict[str, str]:
    """The ARGs before the first FROM (the ones a FROM may use): name -> default."""
    found: dict[str, str] = {}
    for instruction, arguments in _instructions():
        if instruction == "FROM":
            break
        assert instruction == "ARG", f"{instruction} before the first FROM"
        name, _, default = arguments.partition("=")
        found[name] = default
    return found


def _stages() -> list[list[tuple[str, str]]]:
    stages: list[list[tuple[str, str]]] = []
    for instruction in _instructions():
        if instruction[0] == "FROM":
            stages.append([])
        if stages:
            stages[-1].append(instruction)
    return stages


def _commands(stage: list[tuple[str, str]]) -> list[str]:
    return [
        command.strip()
        for instruction, arguments in stage
        if instruction == "RUN"
        for command in re.split(r"&&|;", arguments)
    ]


def test_the_image_is_built_in_two_stages_on_one_base_given_as_a_build_argument() -> None:
    stages = _stages()
    assert len(stages) >= 2
    bases = {stage[0][1].split()[0] for stage in stages}
    assert bases == {"${BASE}"}, "the runtime copies the builder's /opt/venv: same base"
    # scripts/build-image.sh gives another (a base made from Debian packages, no registry).
    default = _global_args()["BASE"]
    assert re.fullmatch(
        r"docker\.io/library/python:3\.11(\.\d+)?-slim-bookworm(@sha256:[0-9a-f]{64})?", default
    ), default


def test_the_image_runs_as_a_numeric_non_root_user() -> None:
    users = [arguments for instruction, arguments in _stages()[-1] if instruction == "USER"]
    assert users == ["65532:65532"]


def test_the_image_starts_the_operator() -> None:
    final = dict(_stages()[-1])
    assert final["ENTRYPOINT"] == '["finops-operator"]'
    assert final["CMD"] == '["run"]'


def test_the_runtime_stage_has_no_build_tools_and_no_sources() -> None:
    final = _stages()[-1]
    text = " ".join(arguments for _, arguments in final)
    for tool in ("gcc", "build-essential", "apt-get", "make ", "pip install", "setuptools"):
        assert tool not in text, tool
    copies = [arguments for instruction, arguments in final if instruction in ("COPY", "ADD")]
    assert copies == ["--from=builder /opt/venv /opt/venv"]


def test_every_pip_install_uses_the_lock_or_exact_pins_without_dependencies() -> None:
    installs = [c for stage in _stages() for c in _commands(stage) if " install " in f" {c} "]
    installs = [c for c in installs if "pip" in c]
    assert installs
    locked = False
    for command in installs:
        words = shlex.split(command)
        assert "--no-deps" in words, command
        if "-r" in words:
            assert words[words.index("-r") + 1] == "requirements.lock", command
            assert "--require-hashes" in words and "--only-binary=:all:" in words, command
            locked = True
            continue
        packages = [w for w in words[words.index("install") + 1 :] if not w.startswith("-")]
        for package in packages:
            assert "==" in package or package.endswith(".whl"), f"{command}: {package} unpinned"
    assert locked, "no pip install from requirements.lock"


def test_the_runtime_writes_nowhere_but_tmp() -> None:
    env = " ".join(arguments for instruction, arguments in _stages()[-1] if instruction == "ENV")
    assert "PYTHONDONTWRITEBYTECODE=1" in env
    assert "HOME=/tmp" in env


def test_the_build_context_holds_only_what_the_dockerfile_copies() -> None:
    ignore = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert ignore[0] == "*", "start from excluding everything"
    included = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    copied = set()
    for stage in _stages():
        for instruction, arguments in stage:
            if instruction == "COPY" and not arguments.startswith("--from"):
                copied |= {word.rstrip("/") for word in arguments.split()[:-1]}
    assert copied == included
    for path in copied:
        assert (ROOT / path).exists(), path


# --- the lock -------------------------------------------------------------------------------------


def _locked() -> dict[str, str]:
    pins = re.findall(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)", LOCK.read_text(), re.MULTILINE)
    return {re.sub(r"[-_.]+", "-", name).lower(): version for name, version in pins}


def test_every_locked_package_is_pinned_with_hashes() -> None:
    text = LOCK.read_text(encoding="utf-8")
    # One entry per requirement: its line, then its indented --hash and `# via` lines.
    entries = [e for e in re.split(r"\n(?=\S)", text) if not e.startswith("#")]
    assert len(entries) == len(_locked()) > 0
    for entry in entries:
        assert re.match(r"^[A-Za-z0-9][A-Za-z0-9._-]*==\S+ \\$", entry.splitlines()[0]), entry
        assert "--hash=sha256:" in entry, entry.splitlines()[0]


def test_the_lock_satisfies_every_runtime_dependency_of_the_project() -> None:
    from packaging.requirements import Requirement

    locked = _locked()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for line in project["dependencies"]:
        requirement = Requirement(line)
        name = re.sub(r"[-_.]+", "-", requirement.name).lower()
        assert name in locked, f"{name} is not in requirements.lock: scripts/check_lock.sh --update"
        assert requirement.specifier.contains(locked[name], prereleases=True), (
            f"requirements.lock has {name}=={locked[name]}, pyproject.toml wants {requirement}"
        )


def test_the_lock_holds_no_test_or_build_tools() -> None:
    locked = _locked()
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    test_tools = {
        re.sub(r"[-_.]+", "-", re.split(r"[<>=!~\[ ]", line)[0]).lower()
        for line in extras["optional-dependencies"]["test"]
    }
    assert not test_tools & set(locked) - {"jsonschema"}, test_tools & set(locked)
    for tool in ("pip", "setuptools", "wheel", "pytest", "ruff", "mypy"):
        assert tool not in locked, tool
