"""`finops-operator render`: print what the operator would write, offline.

The PrometheusRule a CostPolicy becomes, the shared recording rules, or
(`--admission-policy`) the ValidatingAdmissionPolicy pair, the
MutatingAdmissionPolicy and their bindings generated from the configuration's
label rules, or (`--dashboards`) the two Grafana showback dashboards in the
configuration's currency, GPU metrics and LLM gateway (`--out DIR` writes them as
files, `--check` compares a folder with them). Users check a policy in CI or
review its PromQL or CEL before applying it; the golden files under tests/golden/
and manifests/dashboards/ are this command's output.
Exit 0 with YAML on stdout, or exit 2 with one line per problem on stderr, each
naming the field.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml

from finops_operator.adapters.config_file import load_config
from finops_operator.domain import conventions
from finops_operator.domain.config import Config
from finops_operator.domain.policies.admission_policy import (
    DEFAULT_MUTATING_VERSION,
    admission_policies,
)
from finops_operator.domain.rules.alert_rules import AlertOptions
from finops_operator.domain.rules.prometheus_rule import (
    recording_rules_prometheus_rule,
    render_policy,
    rule_groups_file,
)
from finops_operator.errors import ConfigError, CostPolicyError
from finops_operator.views import dashboards


class _Dumper(yaml.SafeDumper):
    pass


def _str_representer(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    # PromQL reads best as a literal block; YAML cannot keep trailing spaces in one.
    if "\n" in value and not any(line != line.rstrip() for line in value.splitlines()):
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|")
    return dumper.represent_scalar("tag:yaml.org,2002:str", value)


_Dumper.add_representer(str, _str_representer)


def dump_yaml(documents: list[dict[str, Any]]) -> str:
    """YAML documents as the command prints them: key order kept, PromQL as literal blocks."""
    return yaml.dump_all(documents, Dumper=_Dumper, sort_keys=False, width=10_000)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "policy",
        nargs="?",
        metavar="POLICY.yaml",
        help="a file of one or more CostPolicy documents, or - for stdin",
    )
    parser.add_argument(
        "--recording-rules",
        action="store_true",
        help="print the operator's shared recording-rules PrometheusRule instead",
    )
    parser.add_argument(
        "--admission-policy",
        action="store_true",
        help="print the admission policies and bindings generated from the configuration's "
        "label rules instead (the MutatingAdmissionPolicy unless admissionPolicies.mutating "
        "is false)",
    )
    parser.add_argument(
        "--dashboards",
        action="store_true",
        help="print the Grafana showback dashboards (ConfigMaps for the Grafana sidecar) "
        "instead, in the configuration's currency, gpuMetrics and llmGateway",
    )
    parser.add_argument(
        "--out",
        type=Path,
        metavar="DIR",
        help="with --dashboards: write the dashboards and their kustomization.yaml into DIR",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="with --dashboards --out DIR: write nothing, exit 1 if DIR differs",
    )
    parser.add_argument(
        "--mutating-version",
        choices=("v1beta1", "v1"),
        default=DEFAULT_MUTATING_VERSION,
        help="API version of the MutatingAdmissionPolicy objects (default: %(default)s)",
    )
    parser.add_argument(
        "--namespace",
        default=conventions.OPERATOR_NAMESPACE,
        help="namespace of the recording-rules PrometheusRule (default: %(default)s)",
    )
    parser.add_argument(
        "--label",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="label for the recording-rules PrometheusRule, e.g. release=kube-prometheus-stack",
    )
    parser.add_argument(
        "--format",
        choices=("prometheusrule", "groups"),
        default="prometheusrule",
        help="'groups' prints the plain rule file Prometheus and promtool read",
    )
    parser.add_argument("--config", help="configuration file (default: $FINOPS_CONFIG or built in)")


def _read_documents(path: str) -> list[Any]:
    text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    return [doc for doc in yaml.safe_load_all(text) if doc is not None]


def _policies(documents: list[Any]) -> list[Any]:
    policies: list[Any] = []
    for doc in documents:
        if isinstance(doc, dict) and doc.get("kind") == "List":
            policies.extend(doc.get("items") or [])
        else:
            policies.append(doc)
    return policies


def _labels(pairs: list[str]) -> dict[str, str]:
    labels = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"--label {pair!r}: write it as KEY=VALUE")
        labels[key] = value
    return labels


def render_admission_policies(
    config: Config, mutating_version: str = DEFAULT_MUTATING_VERSION
) -> list[dict[str, Any]]:
    """The objects `--admission-policy` prints; ConfigError for a pattern RE2 cannot run."""
    return admission_policies(
        config, mutating_version if config.admission_policies.mutating else None
    )


def _render(args: argparse.Namespace, config: Config) -> list[dict[str, Any]]:
    if args.admission_policy:
        return render_admission_policies(config, args.mutating_version)
    if args.recording_rules:
        labels = {**config.rule_labels, **_labels(args.label)}
        return [
            recording_rules_prometheus_rule(
                args.namespace, labels, config.llm_gateway, config.cluster.label
            )
        ]
    options = AlertOptions.from_config(config)
    source = "<stdin>" if args.policy == "-" else args.policy
    documents = _policies(_read_documents(args.policy))
    if not documents:
        raise ValueError(f"{source}: no CostPolicy found")
    return [
        render_policy(
            doc,
            options,
            label_rules=config.labels,
            source=source if len(documents) == 1 else f"{source}[{index}]",
        )
        for index, doc in enumerate(documents)
    ]


def _usage_error(args: argparse.Namespace) -> str | None:
    """What is wrong with the combination of arguments, if anything."""
    chosen = (args.recording_rules, args.policy, args.admission_policy, args.dashboards)
    if sum(bool(choice) for choice in chosen) != 1:
        return "give one of POLICY.yaml, --recording-rules, --admission-policy or --dashboards"
    for flag in ("admission_policy", "dashboards"):
        if getattr(args, flag) and args.format != "prometheusrule":
            return f"--format applies to PrometheusRules, not --{flag.replace('_', '-')}"
    if not args.dashboards and (args.out is not None or args.check):
        return "--out and --check apply to --dashboards"
    if args.check and args.out is None:
        return "--check compares a folder: give --out DIR"
    return None


def _write_dashboards(files: dict[str, str], out: Path | None, check: bool) -> int:
    """Print the dashboards, write them into `out`, or (`check`) compare `out` with them."""
    if out is None:
        boards = [
            content for name, content in files.items() if name != dashboards.KUSTOMIZATION_FILE
        ]
        sys.stdout.write("---\n".join(boards))
        return 0
    if check:
        stale = [
            name
            for name, content in files.items()
            if not (out / name).is_file() or (out / name).read_text(encoding="utf-8") != content
        ]
        for name in stale:
            print(
                f"{out / name} is out of date: run finops-operator render --dashboards --out {out}",
                file=sys.stderr,
            )
        return 1 if stale else 0
    out.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        (out / name).write_text(content, encoding="utf-8")
    return 0


def run(args: argparse.Namespace) -> int:
    usage = _usage_error(args)
    if usage:
        print(f"error: {usage}", file=sys.stderr)
        return 2
    try:
        config = load_config(args.config)
        if args.dashboards:
            return _write_dashboards(dashboards.render(config), args.out, args.check)
        rules = _render(args, config)
    except CostPolicyError as err:
        for problem in err.problems:
            where = f"{err.source}: " if err.source else ""
            print(f"error: {where}{problem}", file=sys.stderr)
        return 2
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except OSError as err:
        where = err.filename if err.filename is not None else args.policy
        print(f"error: {where}: cannot read or write: {err.strerror}", file=sys.stderr)
        return 2
    except yaml.YAMLError as err:
        print(f"error: {args.policy}: not valid YAML: {err}", file=sys.stderr)
        return 2
    except RecursionError:
        print(f"error: {args.policy}: not valid YAML: nested too deep", file=sys.stderr)
        return 2
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.format == "groups":
        rules = [rule_groups_file(rule) for rule in rules]
    sys.stdout.write(dump_yaml(rules))
    return 0
