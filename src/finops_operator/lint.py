"""`finops-operator lint`: the admission check, offline, for manifests in CI.

Reads files, folders (walked for *.yaml / *.yml) and stdin, understands
multi-document files and `kind: List`, and reports each GPU workload whose pod
labels break the policy. A file that cannot be read or parsed is named and
skipped; the others are still checked.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import yaml

from finops_operator.label_check import LabelPolicy, Violations, object_ref
from finops_operator.workloads import is_workload_kind

STDIN = "-"

_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass(frozen=True)
class Finding:
    file: str
    kind: str
    namespace: str | None
    name: str | None
    violations: Violations

    def as_json(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "kind": self.kind,
            "namespace": self.namespace,
            "name": self.name,
            **self.violations.as_dict(),
        }


@dataclass
class LintResult:
    checked: int = 0
    findings: list[Finding] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        if self.errors:
            return 2
        return 1 if self.findings else 0


def expand_paths(paths: Iterable[str], errors: list[str]) -> Iterator[str]:
    """Files to read, in a stable order; folders are walked for YAML files."""
    for raw in paths:
        if raw == STDIN:
            yield STDIN
            continue
        path = Path(raw)
        if path.is_dir():
            yield from sorted(
                str(p) for p in path.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file()
            )
        elif path.exists():
            yield str(path)
        else:
            errors.append(f"{raw}: no such file or folder")


def _objects(document: Any) -> Iterator[Mapping[str, Any]]:
    if not isinstance(document, Mapping):
        return
    if document.get("kind") == "List" or (
        isinstance(document.get("kind"), str)
        and document["kind"].endswith("List")
        and isinstance(document.get("items"), list)
    ):
        for item in document.get("items") or []:
            yield from _objects(item)
    else:
        yield document


def parse_documents(text: str, source: str) -> list[Mapping[str, Any]]:
    """Every object in a YAML stream; raises ValueError naming the file and the place."""
    try:
        documents = list(yaml.load_all(text, Loader=_Loader))
    except yaml.YAMLError as err:
        where = ""
        mark = getattr(err, "problem_mark", None)
        if mark is not None:
            where = f" at line {mark.line + 1}, column {mark.column + 1}"
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ValueError(f"{source}: cannot parse YAML{where}: {problem}") from None
    objects: list[Mapping[str, Any]] = []
    for index, document in enumerate(documents, start=1):
        if document is None:
            continue
        if not isinstance(document, Mapping):
            raise ValueError(
                f"{source}: document {index} is a {type(document).__name__}, "
                "not a Kubernetes object"
            )
        objects.extend(_objects(document))
    return objects


def lint_objects(
    objects: Iterable[Mapping[str, Any]], source: str, policy: LabelPolicy, result: LintResult
) -> None:
    for obj in objects:
        if not is_workload_kind(obj.get("kind")):
            continue
        result.checked += 1
        meta = obj.get("metadata")
        if not isinstance(meta, Mapping):
            meta = {}
        found = policy.check_workload(obj, meta.get("namespace"))
        if found:
            result.findings.append(
                Finding(source, obj["kind"], meta.get("namespace"), meta.get("name"), found)
            )


def lint_paths(paths: Iterable[str], policy: LabelPolicy, stdin: TextIO = sys.stdin) -> LintResult:
    result = LintResult()
    for source in expand_paths(paths, result.errors):
        try:
            text = stdin.read() if source == STDIN else Path(source).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as err:
            result.errors.append(f"{source}: cannot read: {err}")
            continue
        try:
            objects = parse_documents(text, "<stdin>" if source == STDIN else source)
        except ValueError as err:
            result.errors.append(str(err))
            continue
        lint_objects(objects, "<stdin>" if source == STDIN else source, policy, result)
    return result


def format_text(result: LintResult) -> str:
    lines = []
    for f in result.findings:
        problems = "; ".join(f.violations.problems())
        lines.append(f"{f.file}: {object_ref(f.kind, f.namespace, f.name)}: {problems}")
    lines.append(
        f"checked {result.checked} workload(s): {len(result.findings)} with cost-label violations"
        + (f", {len(result.errors)} file(s) unreadable" if result.errors else "")
    )
    return "\n".join(lines)


def format_json(result: LintResult) -> str:
    body: dict[str, Any] = {
        "checked": result.checked,
        "findings": [f.as_json() for f in result.findings],
    }
    if result.errors:
        body["errors"] = result.errors
    return json.dumps(body, indent=2)
