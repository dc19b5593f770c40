"""Check an object against a CRD the way an API server would, without an API server.

The Kubernetes emulator used in tests does no schema validation, so tests call
`validate_against_crd` on every object the operator writes or a user applies:
apiVersion and kind, metadata name and label syntax, the served version's
openAPIV3Schema (with jsonschema), unique items of `x-kubernetes-list-type: set`,
and its CEL `x-kubernetes-validations` (with cel-python, plus the Kubernetes
list functions the rules use).
"""

from __future__ import annotations

import functools
import itertools
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import celpy
import jsonschema
import pytest
import yaml
from celpy import celtypes

from tests.support.paths import ROOT

# The third-party CRDs, fetched from their Go modules at pinned versions by
# scripts/fetch-upstream-crds.sh (which scripts/bootstrap.sh runs): never copied into
# the repository, never read from outside it.
UPSTREAM_CRDS = ROOT / ".cache" / "upstream-crds"
PROMETHEUS_RULE_CRD = UPSTREAM_CRDS / "monitoring.coreos.com_prometheusrules.yaml"


def upstream_crd(file_name: str) -> Path:
    """The path of an upstream CRD; skips (a failure under CI) when it was never fetched."""
    path = UPSTREAM_CRDS / file_name
    if not path.is_file():
        pytest.skip(
            f"the upstream CRD {file_name} is not in {UPSTREAM_CRDS}: "
            "run scripts/bootstrap.sh (it runs scripts/fetch-upstream-crds.sh)"
        )
    return path


_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
_LABEL_KEY = re.compile(
    r"([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?"
)
_LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")


class CrdValidationError(AssertionError):
    """The object would be refused; `errors` lists each problem with its path."""

    def __init__(self, errors: list[str]) -> None:
        self.errors = errors
        super().__init__("\n".join(errors))


def _load_crd(crd_path: str) -> dict[str, Any]:
    path = Path(crd_path)
    if path.parent == UPSTREAM_CRDS:
        upstream_crd(path.name)
    return _read_crd(crd_path)


@functools.cache
def _read_crd(crd_path: str) -> dict[str, Any]:
    crd: dict[str, Any] = yaml.safe_load(Path(crd_path).read_text(encoding="utf-8"))
    return crd


def _python_pattern(pattern: str) -> str:
    # Go's RE2 allows inline flags anywhere, e.g. `^(?i)(abort|warn)?$`; Python wants them first.
    flags = "".join(re.findall(r"\(\?([a-z]+)\)", pattern))
    if not flags:
        return pattern
    return f"(?{flags})" + re.sub(r"\(\?[a-z]+\)", "", pattern)


def _to_json_schema(node: Any) -> Any:
    if isinstance(node, list):
        return [_to_json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {}
    for key, value in node.items():
        if key == "pattern" and isinstance(value, str):
            out[key] = _python_pattern(value)
        elif key in ("properties", "patternProperties"):
            out[key] = {name: _to_json_schema(sub) for name, sub in value.items()}
        else:
            out[key] = _to_json_schema(value)
    if out.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
    return out


def served_schema(crd_path: str | Path, version: str | None = None) -> dict[str, Any]:
    """The openAPIV3Schema of `version`, or of the storage version, of a CRD file."""
    crd = _load_crd(str(crd_path))
    versions = [v for v in crd["spec"]["versions"] if v.get("served")]
    if version is not None:
        versions = [v for v in versions if v["name"] == version]
    else:
        versions = [v for v in versions if v.get("storage")] or versions
    if not versions:
        raise LookupError(f"{crd_path}: no served version {version or ''}")
    schema: dict[str, Any] = versions[0]["schema"]["openAPIV3Schema"]
    return schema


def _path(parts: Any) -> str:
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else f".{part}"
    return text.lstrip(".") or "(top level)"


def _metadata_errors(obj: Mapping[str, Any], namespaced: bool) -> Iterator[str]:
    metadata = obj.get("metadata")
    if not isinstance(metadata, Mapping):
        yield "metadata: required"
        return
    name = metadata.get("name")
    if not isinstance(name, str) or len(name) > 253 or not _DNS_SUBDOMAIN.fullmatch(name):
        yield f"metadata.name: {name!r} is not a DNS subdomain name"
    namespace = metadata.get("namespace")
    if namespaced and (not isinstance(namespace, str) or not _DNS_LABEL.fullmatch(namespace)):
        yield f"metadata.namespace: {namespace!r} is not a namespace name"
    for key, value in (metadata.get("labels") or {}).items():
        if not _LABEL_KEY.fullmatch(key) or len(key.rpartition("/")[2]) > 63:
            yield f"metadata.labels: {key!r} is not a label key"
        if not isinstance(value, str) or len(value) > 63 or not _LABEL_VALUE.fullmatch(value):
            yield f"metadata.labels.{key}: {value!r} is not a label value"


def _cel_value(value: Any, schema: Mapping[str, Any]) -> Any:
    # The API server hands CEL a `type: number` field as a double even when written as 1.
    kind = schema.get("type")
    if kind == "number" and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, dict):
        props = schema.get("properties", {})
        extra = schema.get("additionalProperties")
        return {
            key: _cel_value(sub, props.get(key) or (extra if isinstance(extra, dict) else {}))
            for key, sub in value.items()
        }
    if isinstance(value, list):
        return [_cel_value(item, schema.get("items", {})) for item in value]
    return value


def _is_sorted(items: Any) -> celtypes.BoolType:
    values = list(items)
    return celtypes.BoolType(all(a <= b for a, b in itertools.pairwise(values)))


_KUBERNETES_CEL_FUNCTIONS = {"isSorted": _is_sorted}


@functools.cache
def _cel_program(rule: str) -> celpy.Runner:
    env = celpy.Environment()
    return env.program(env.compile(rule), functions=_KUBERNETES_CEL_FUNCTIONS)


def _cel_errors(value: Any, schema: Mapping[str, Any], path: list[Any]) -> Iterator[str]:
    if schema.get("x-kubernetes-list-type") == "set" and isinstance(value, list):
        seen: list[Any] = []
        for item in value:
            if item in seen:
                yield f"{_path(path)}: duplicate value {item!r} in a list of unique values"
            seen.append(item)
    for validation in schema.get("x-kubernetes-validations", []):
        if "oldSelf" in validation["rule"]:
            continue  # a transition rule: the API server checks it on updates only
        program = _cel_program(validation["rule"])
        result = program.evaluate({"self": celpy.json_to_cel(_cel_value(value, schema))})
        if isinstance(result, Exception) or not bool(result):
            yield f"{_path(path)}: {validation.get('message', validation['rule'])}"
    if isinstance(value, dict):
        props = schema.get("properties", {})
        extra = schema.get("additionalProperties")
        for key, sub in value.items():
            sub_schema = props.get(key) or (extra if isinstance(extra, dict) else None)
            if sub_schema is not None:
                yield from _cel_errors(sub, sub_schema, [*path, key])
    elif isinstance(value, list) and "items" in schema:
        for index, item in enumerate(value):
            yield from _cel_errors(item, schema["items"], [*path, index])


def crd_errors(obj: Any, crd_path: str | Path) -> list[str]:
    """Every reason the API server would refuse `obj` under the CRD at `crd_path`."""
    crd = _load_crd(str(crd_path))
    group, names = crd["spec"]["group"], crd["spec"]["names"]
    if not isinstance(obj, Mapping):
        return [f"(top level): an object is a mapping, not {type(obj).__name__}"]
    errors: list[str] = []
    api_version = str(obj.get("apiVersion", ""))
    obj_group, _, version = api_version.rpartition("/")
    if obj_group != group:
        errors.append(f"apiVersion: {api_version!r} is not in group {group}")
    if obj.get("kind") != names["kind"]:
        errors.append(f"kind: {obj.get('kind')!r} is not {names['kind']}")
    try:
        schema = served_schema(crd_path, version or None)
    except LookupError as err:
        return [*errors, f"apiVersion: {err}"]
    errors += _metadata_errors(obj, crd["spec"]["scope"] == "Namespaced")
    validator = jsonschema.Draft4Validator(_to_json_schema(schema))
    schema_errors = sorted(validator.iter_errors(dict(obj)), key=lambda e: list(e.absolute_path))
    errors += [f"{_path(err.absolute_path)}: {err.message}" for err in schema_errors]
    if not schema_errors:
        errors += _cel_errors(dict(obj), schema, [])
    return errors


def validate_against_crd(obj: Any, crd_path: str | Path) -> None:
    """Raise CrdValidationError when the API server would refuse `obj` under this CRD."""
    errors = crd_errors(obj, crd_path)
    if errors:
        raise CrdValidationError(errors)


def untyped_nodes(node: Any, path: str = "") -> list[str]:
    """Paths of schema nodes without a `type`: a structural schema has none."""
    if not isinstance(node, dict):
        return []
    missing = []
    exempt = node.get("x-kubernetes-int-or-string") or node.get(
        "x-kubernetes-preserve-unknown-fields"
    )
    if "type" not in node and not exempt:
        missing.append(path)
    for name, sub in node.get("properties", {}).items():
        missing += untyped_nodes(sub, f"{path}.{name}")
    for key in ("items", "additionalProperties"):
        if isinstance(node.get(key), dict):
            missing += untyped_nodes(node[key], f"{path}.{key}")
    return missing
