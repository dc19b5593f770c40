"""`finops-operator lint`: the admission check, offline, for manifests in CI.

Reads files, folders (walked for *.yaml / *.yml) and stdin, understands
multi-document files and `kind: List`, and reports each GPU workload whose pod
labels break the policy, with the same check the admission webhook runs. Input
that cannot be read or parsed is named and skipped; everything else is still
checked (docs/lint.md has the rules).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import yaml

from finops_operator.adapters.config_file import load_config
from finops_operator.domain.policies.label_check import LabelPolicy, Violations, object_ref
from finops_operator.domain.policies.verdict import judge

STDIN = "-"
STDIN_NAME = "<stdin>"
YAML_SUFFIXES = (".yaml", ".yml")

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
    """Files to read, each once, in a stable order; folders are walked for YAML files."""
    seen: set[str] = set()
    for raw in paths:
        if raw == STDIN:
            files = [STDIN]
        else:
            path = Path(raw)
            if path.is_dir():
                files = sorted(
                    str(p) for p in path.rglob("*") if p.suffix in YAML_SUFFIXES and p.is_file()
                )
            elif path.exists():
                files = [raw]
            else:
                errors.append(f"{raw}: no such file or folder")
                continue
        for file in files:
            if file not in seen:
                seen.add(file)
                yield file


def _describe(value: Any) -> str:
    """What a YAML value is, in YAML's words: 'a string', 'a list'."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    return "null" if value is None else f"a {type(value).__name__}"


def _objects(
    document: Mapping[str, Any], where: str, errors: list[str]
) -> Iterator[Mapping[str, Any]]:
    kind = document.get("kind")
    items = document.get("items")
    if isinstance(kind, str) and kind.endswith("List") and isinstance(items, list):
        for index, item in enumerate(items):
            if isinstance(item, Mapping):
                yield from _objects(item, f"{where}, item {index}", errors)
            else:
                errors.append(f"{where}, item {index} is {_describe(item)}, not an object")
    else:
        yield document


def parse_documents(text: str, source: str) -> tuple[list[Mapping[str, Any]], list[str]]:
    """Every object in a YAML stream, and a message for each part that is not one.

    Documents before a YAML syntax error are kept (the parser cannot resume after
    one); a document that is not a mapping is named and the rest are kept.
    """
    objects: list[Mapping[str, Any]] = []
    errors: list[str] = []
    try:
        for index, document in enumerate(yaml.load_all(text, Loader=_Loader), start=1):
            if document is None:
                continue
            where = f"{source}: document {index}"
            if isinstance(document, Mapping):
                objects.extend(_objects(document, where, errors))
            else:
                errors.append(f"{where} is {_describe(document)}, not a Kubernetes object")
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        errors.append(f"{source}: cannot parse YAML{where}: {problem}")
    except (ValueError, RecursionError) as err:
        # A value PyYAML cannot build (an integer of more than 4,300 digits), or nesting
        # too deep for the pure-Python parser: the file is named, never a traceback.
        reason = str(err).split(":")[0] or type(err).__name__
        errors.append(f"{source}: cannot parse YAML: {reason}")
    return objects, errors


def _text(value: Any) -> str | None:
    if value is None or value == "":
        return None
    return value if isinstance(value, str) else str(value)


def lint_objects(
    objects: Iterable[Mapping[str, Any]], source: str, policy: LabelPolicy, result: LintResult
) -> None:
    """Check each workload; `checked` counts objects of the seven workload kinds.

    A manifest has no namespace labels and no operation: lint reports the verdict's
    violations whatever the mode, and also for objects a controller would create.
    """
    for obj in objects:
        meta = obj.get("metadata")
        if not isinstance(meta, Mapping):
            meta = {}
        namespace = _text(meta.get("namespace"))
        verdict = judge(obj, policy=policy, namespace=namespace)
        if not verdict.is_workload:
            continue
        result.checked += 1
        found = verdict.violations
        if found:
            name = _text(meta.get("name")) or _text(meta.get("generateName"))
            result.findings.append(Finding(source, obj["kind"], namespace, name, found))


def lint_paths(paths: Iterable[str], policy: LabelPolicy, stdin: TextIO = sys.stdin) -> LintResult:
    result = LintResult()
    for file in expand_paths(paths, result.errors):
        source = STDIN_NAME if file == STDIN else file
        try:
            text = stdin.read() if file == STDIN else Path(file).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as err:
            reason = getattr(err, "strerror", None) or str(err)
            result.errors.append(f"{source}: cannot read: {reason}")
            continue
        objects, errors = parse_documents(text, source)
        result.errors.extend(errors)
        lint_objects(objects, source, policy, result)
    return result


def format_text(result: LintResult) -> str:
    """One line per finding (file, object, each problem with its rule) and a summary."""
    lines = []
    for f in result.findings:
        problems = "; ".join(f.violations.problems())
        lines.append(f"{f.file}: {object_ref(f.kind, f.namespace, f.name)}: {problems}")
    lines.append(
        f"checked {result.checked} workload(s): {len(result.findings)} with cost-label violations"
        + (f", {len(result.errors)} input error(s)" if result.errors else "")
    )
    return "\n".join(lines)


def format_json(result: LintResult) -> str:
    """The JSON contract of DESIGN.md; `errors` is added only when there were some."""
    body: dict[str, Any] = {
        "checked": result.checked,
        "findings": [f.as_json() for f in result.findings],
    }
    if result.errors:
        body["errors"] = result.errors
    return json.dumps(body, indent=2)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="+", metavar="PATH", help="files, folders, or - for stdin")
    parser.add_argument("--format", choices=("text", "json"), default="text")
    parser.add_argument("--config", help="configuration file (default: $FINOPS_CONFIG or built in)")


def run(args: argparse.Namespace) -> int:
    result = lint_paths(args.paths, LabelPolicy(load_config(args.config)))
    for error in result.errors:
        print(f"error: {error}", file=sys.stderr)
    print(format_json(result) if args.format == "json" else format_text(result))
    return result.exit_code
