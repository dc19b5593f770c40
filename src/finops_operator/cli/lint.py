"""`finops-operator lint`: the admission check, offline, for manifests in CI.

Reads files, folders (walked for *.yaml / *.yml) and stdin, understands
multi-document files and `kind: List`, and reports each GPU workload whose pod
labels break the policy, with the same check the admission webhook runs. Input
that cannot be read or parsed is named and skipped; everything else is still
checked (docs/lint.md has the rules).

Input is hostile until read: only regular files and stdin are read (a FIFO or a
device such as /dev/zero is named and skipped, never waited on), at most
`MAX_INPUT_BYTES` of each, and a document whose aliases would expand to more than
`MAX_EXPANDED_NODES` nodes (a "billion laughs" YAML bomb) is refused before it is
built, so `lint` ends with exit 2 and a message, never a MemoryError or a hang.
"""

from __future__ import annotations

import argparse
import json
import os
import stat
import sys
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import yaml

from finops_operator.adapters.config_file import load_config
from finops_operator.domain.policies.label_check import LabelPolicy, Violations, object_ref
from finops_operator.domain.policies.verdict import judge
from finops_operator.errors import UnreadableInputError

STDIN = "-"
STDIN_NAME = "<stdin>"
YAML_SUFFIXES = (".yaml", ".yml")

_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

# A Helm chart's whole rendered output is a few MB; the API server takes 3 MiB a request.
MAX_INPUT_BYTES = 32 * 1024 * 1024
# Nodes of one document with every alias expanded: ~30 times the largest real manifest.
MAX_EXPANDED_NODES = 1_000_000


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


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def expanded_nodes(root: yaml.Node, limit: int = MAX_EXPANDED_NODES) -> int:
    """How many nodes `root` stands for with every alias expanded, counted up to limit + 1.

    An aliased node is one object in the composed graph, so each is counted once and
    its size reused (no expansion happens); an alias inside its own anchor is infinite.
    """
    sizes: dict[int, int] = {}
    expanding: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_counted = stack.pop()
        key = id(node)
        if children_counted:
            total = 1 + sum(sizes[id(child)] for child in _children(node))
            sizes[key] = min(total, limit + 1)
            expanding.discard(key)
        elif key not in sizes:
            if key in expanding:
                return limit + 1
            expanding.add(key)
            stack.append((node, True))
            stack.extend((child, False) for child in _children(node) if id(child) not in sizes)
    return sizes[id(root)]


def _documents(text: str) -> Iterator[tuple[Any, int]]:
    """Each document of the stream and its expanded node count; a bomb is not built."""
    loader = _Loader(text)
    try:
        while loader.check_node():
            node = loader.get_node()
            size = expanded_nodes(node)
            yield (None if size > MAX_EXPANDED_NODES else loader.construct_document(node)), size
    finally:
        loader.dispose()


def parse_documents(text: str, source: str) -> tuple[list[Mapping[str, Any]], list[str]]:
    """Every object in a YAML stream, and a message for each part that is not one.

    Documents before a YAML syntax error are kept (the parser cannot resume after
    one); a document that is not a mapping, or whose aliases expand past
    `MAX_EXPANDED_NODES`, is named and the rest are kept.
    """
    objects: list[Mapping[str, Any]] = []
    errors: list[str] = []
    try:
        for index, (document, size) in enumerate(_documents(text), start=1):
            where = f"{source}: document {index}"
            if size > MAX_EXPANDED_NODES:
                errors.append(
                    f"{where}: its aliases expand to more than {MAX_EXPANDED_NODES:,} nodes "
                    "(a YAML alias bomb?); not read"
                )
                continue
            if document is None:
                continue
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


def _too_large() -> UnreadableInputError:
    return UnreadableInputError(f"larger than {MAX_INPUT_BYTES:,} bytes, the limit of one input")


def read_input(file: str, stdin: TextIO) -> str:
    """The text of `file` (or stdin for `-`), refusing what could hang or exhaust memory."""
    if file == STDIN:
        text = stdin.read(MAX_INPUT_BYTES + 1)
        if len(text) > MAX_INPUT_BYTES:
            raise _too_large()
        return text
    # O_NONBLOCK: opening a FIFO waits for a writer otherwise (no effect on a regular file).
    descriptor = os.open(file, os.O_RDONLY | os.O_NONBLOCK)
    with os.fdopen(descriptor, "rb") as handle:
        if not stat.S_ISREG(os.fstat(descriptor).st_mode):
            raise UnreadableInputError(
                "not a regular file (a FIFO, socket or device is never read)"
            )
        data = handle.read(MAX_INPUT_BYTES + 1)
    if len(data) > MAX_INPUT_BYTES:
        raise _too_large()
    return data.decode("utf-8")


def lint_paths(paths: Iterable[str], policy: LabelPolicy, stdin: TextIO = sys.stdin) -> LintResult:
    result = LintResult()
    for file in expand_paths(paths, result.errors):
        source = STDIN_NAME if file == STDIN else file
        try:
            text = read_input(file, stdin)
        except UnreadableInputError as err:
            result.errors.append(f"{source}: not read: {err}")
            continue
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
    parser.add_argument(
        "paths",
        nargs="*",
        metavar="PATH",
        help="files, folders, or - for stdin; none with --config: check the configuration only",
    )
    parser.add_argument("--format", choices=("text", "json"), default="text")
    parser.add_argument("--config", help="configuration file (default: $FINOPS_CONFIG or built in)")


def run(args: argparse.Namespace) -> int:
    config = load_config(args.config)  # a bad one: ConfigError, exit 2 naming each key
    if not args.paths:
        if args.config is None:
            print("error: nothing to check: give a PATH, or --config FILE alone", file=sys.stderr)
            return 2
        # The operator's ConfigMap checked in CI, before a typo reaches a restart.
        print(f"{args.config}: a valid configuration (mode {config.mode})")
        return 0
    result = lint_paths(args.paths, LabelPolicy(config))
    for error in result.errors:
        print(f"error: {error}", file=sys.stderr)
    print(format_json(result) if args.format == "json" else format_text(result))
    return result.exit_code
