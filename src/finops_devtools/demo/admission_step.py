"""The admission step: the sample workloads through the webhooks, and what the audit wrote.

As kube-apiserver would (`devcluster.api_server`): each sample of `demo.workloads`
goes through the mutating and validating webhooks, and the demo prints what kubectl
would (created, denied, warnings, inherited labels). Then the audit's marks on the
admitted, flagged workload, and the GPU allocation the operator exports.
"""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from finops_devtools.demo import workloads as demo_workloads
from finops_devtools.demo.kubectl_tables import events_table
from finops_devtools.demo.terminal import Printer
from finops_devtools.demo.waiting import wait_for
from finops_operator.domain import conventions

if TYPE_CHECKING:
    from finops_devtools.devcluster.emulator import KubeEmulator
    from finops_devtools.devcluster.operator_runner import OperatorProcess


def apply_workloads(
    p: Printer, cluster: KubeEmulator, operator: OperatorProcess, workdir: Path
) -> list[str]:
    """Namespaces, a GPU node, then each sample through the admission chain, printed as
    kubectl prints it; the running pods of what was created. Returns the surprises."""
    from finops_devtools.devcluster.api_server import (
        AdmissionChain,
        created_line,
        denied_line,
        warning_lines,
    )

    problems: list[str] = []
    p.step("Workloads through the admission webhooks (mode: enforce by default)")
    for namespace in demo_workloads.namespaces():
        labels = {
            k: v
            for k, v in namespace["metadata"]["labels"].items()
            if not k.startswith("kubernetes.io/")
        }
        cluster.create(namespace)
        shown = ", ".join(f"{k}={v}" for k, v in labels.items()) or "no cost labels"
        p.line(f"  namespace/{namespace['metadata']['name']} created ({shown})")
    cluster.create(demo_workloads.gpu_node())
    # The namespace index must hold the labels before workloads inherit them.
    wait_for(
        "the operator to see the namespaces", lambda: _namespaces_indexed(operator), timeout=30
    )
    chain = AdmissionChain(operator, cluster)
    for sample in demo_workloads.samples():
        path = workdir / sample.file
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(sample.obj, sort_keys=False))
        p.line()
        p.line(f"  # {sample.shows}")
        p.command(f"kubectl apply -f {sample.file}")
        result = chain.create(sample.obj)
        for line in warning_lines(result.warnings):
            p.line(f"  {line}")
        if result.outcome == "denied":
            p.line("  " + denied_line(sample.file, result.webhook, result.message))
        else:
            p.line(f"  {created_line(result.obj)}")
            if result.inherited:
                inherited = ", ".join(f"{k}={v}" for k, v in sorted(result.inherited.items()))
                p.line(f"  (labels inherited from namespace/{sample.namespace}: {inherited})")
            for pod in demo_workloads.running_pods(result.obj):
                cluster.create(pod)
        problems += _surprise(sample, result.outcome, bool(result.warnings), bool(result.inherited))
    return problems


def _namespaces_indexed(operator: OperatorProcess) -> bool:
    # The inheriting namespace's labels are indexed once a label-less Job gets a patch.
    from finops_devtools.devcluster.api_server import admission_review

    probe = next(s for s in demo_workloads.samples() if s.expect == "inherited")
    response = operator.review(conventions.MUTATE_PATH, admission_review(probe.obj))
    return bool(response.get("patch"))


def _surprise(
    sample: demo_workloads.Sample, outcome: str, warned: bool, inherited: bool
) -> list[str]:
    """[what went otherwise than the sample expects], or []."""
    got = {
        "created": outcome == "created" and not warned,
        "ignored": outcome == "created" and not warned,
        "denied": outcome == "denied",
        "warned": outcome == "created" and warned,
        "inherited": outcome == "created" and inherited,
    }[sample.expect]
    if got:
        return []
    return [
        f"{sample.file}: expected {sample.expect}, got {outcome}"
        f"{' with warnings' if warned else ''}"
    ]


def show_audit(p: Printer, cluster: KubeEmulator, operator: OperatorProcess) -> None:
    """The violations annotation and the Warning Event the audit wrote on the flagged
    workload, and the GPU allocation the operator exports for Prometheus."""
    sample = next(s for s in demo_workloads.samples() if s.expect == "warned")
    kind, namespace, name = sample.obj["kind"], sample.namespace, sample.name
    p.step("What the background audit wrote on the admitted, flagged workload")
    key = conventions.VIOLATIONS_ANNOTATION
    annotated = wait_for(
        f"the {key} annotation on {kind} {namespace}/{name}",
        lambda: (
            ((cluster.get(kind, namespace, name) or {}).get("metadata") or {})
            .get("annotations", {})
            .get(key)
        ),
        timeout=30,
    )
    escaped = key.replace(".", "\\.")
    p.command(
        f"kubectl get {kind.lower()} {name} -n {namespace} "
        f"-o jsonpath='{{.metadata.annotations.{escaped}}}'"
    )
    p.line(f"  {annotated}")

    def warning_events() -> list[dict[str, Any]]:
        return [
            e
            for e in cluster.list("Event", namespace)
            if (e.get("involvedObject") or {}).get("name") == name and e.get("type") == "Warning"
        ]

    events = wait_for(f"a Warning Event about {name}", warning_events, timeout=30)
    p.command(f"kubectl get events -n {namespace} --field-selector involvedObject.name={name}")
    p.block(events_table(events, datetime.datetime.now(datetime.UTC)), "  ")

    allocation = wait_for(
        "the GPU allocation of the running pods on /metrics",
        lambda: [
            line
            for line in operator.metrics().splitlines()
            if line.startswith(conventions.METRIC_POD_GPU_ALLOCATION + "{")
        ],
        timeout=30,
    )
    p.line()
    p.line("  # the operator's inventory of running GPU pods, scraped by Prometheus")
    p.command(
        f"curl -s 127.0.0.1:{operator.metrics_port}/metrics | "
        f"grep ^{conventions.METRIC_POD_GPU_ALLOCATION}"
    )
    for line in allocation:
        p.line(f"  {line}")
