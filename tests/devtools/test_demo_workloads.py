"""The demo's sample cluster content makes the admission chain show what it claims."""

from __future__ import annotations

from decimal import Decimal

import pytest

from finops_devtools.demo import workloads as demo_workloads
from finops_devtools.devcluster.api_server import AdmissionChain
from finops_operator.domain import conventions
from finops_operator.domain.config import Config
from finops_operator.domain.policies.label_check import check_labels
from finops_operator.domain.rules.cost_policy import parse_cost_policy
from finops_operator.domain.workloads import is_workload
from tests.devtools.test_demo_api_server import InProcessWebhook, ListStore


def namespace_labels() -> dict[str, dict[str, str]]:
    return {ns["metadata"]["name"]: ns["metadata"]["labels"] for ns in demo_workloads.namespaces()}


@pytest.mark.parametrize("sample", demo_workloads.samples(), ids=lambda s: s.file)
def test_each_sample_has_its_expected_outcome(sample: demo_workloads.Sample) -> None:
    result = AdmissionChain(InProcessWebhook(namespace_labels()), ListStore()).create(sample.obj)
    if sample.expect == "denied":
        assert result.outcome == "denied"
        assert sample.name in result.message
    else:
        assert result.outcome == "created"
    assert bool(result.warnings) == (sample.expect in ("warned", "denied"))
    assert bool(result.inherited) == (sample.expect == "inherited")


def test_the_samples_cover_every_outcome_and_name_the_missing_keys() -> None:
    samples = demo_workloads.samples()
    assert {s.expect for s in samples} == {"created", "denied", "warned", "inherited", "ignored"}
    assert len({s.file for s in samples}) == len(samples)
    assert all(is_workload(s.obj) for s in samples)
    untagged = next(s for s in samples if s.expect == "denied")
    result = AdmissionChain(InProcessWebhook(namespace_labels()), ListStore()).create(untagged.obj)
    for key in (
        conventions.FEATURE_LABEL,
        conventions.ENVIRONMENT_LABEL,
        conventions.COST_CENTER_LABEL,
    ):
        assert f"missing {key}" in result.message


def test_only_the_audited_namespace_overrides_the_mode() -> None:
    modes = {
        name: labels.get(conventions.MODE_NAMESPACE_LABEL)
        for name, labels in namespace_labels().items()
    }
    assert modes == {
        demo_workloads.ENFORCED_NAMESPACE: None,
        demo_workloads.INHERITING_NAMESPACE: None,
        demo_workloads.AUDITED_NAMESPACE: "audit",
    }
    inheriting = namespace_labels()[demo_workloads.INHERITING_NAMESPACE]
    assert set(conventions.COST_LABELS) <= set(inheriting)
    assert not check_labels(inheriting, Config().labels)  # valid values, all five


def test_the_sample_policy_is_valid_and_carries_the_budget() -> None:
    body = demo_workloads.sample_policy(Decimal("14200"))
    policy = parse_cost_policy(body)
    assert policy.spec.selector.team == demo_workloads.POLICY_TEAM
    assert policy.spec.budget is not None and Decimal(str(policy.spec.budget.monthly)) == 14200


def test_running_pods_are_owned_running_and_placed() -> None:
    by_name = {s.name: s.obj for s in demo_workloads.samples()}
    deployment = dict(
        by_name["semantic-search"],
        metadata={**by_name["semantic-search"]["metadata"], "uid": "d-1"},
    )
    pods = demo_workloads.running_pods(deployment)
    assert len(pods) == deployment["spec"]["replicas"] == 2
    assert len({p["metadata"]["name"] for p in pods}) == 2
    for pod in pods:
        assert pod["status"]["phase"] == "Running"
        assert pod["spec"]["nodeName"] == demo_workloads.GPU_NODE
        (owner,) = pod["metadata"]["ownerReferences"]
        assert owner["kind"] == "ReplicaSet" and owner["controller"] is True
        assert pod["metadata"]["labels"] == deployment["spec"]["template"]["metadata"]["labels"]
    assert pods == demo_workloads.running_pods(deployment)  # the same names every run
    statefulset = demo_workloads.running_pods(by_name["notebook-alice"])
    assert [p["metadata"]["name"] for p in statefulset] == ["notebook-alice-0"]
    assert demo_workloads.running_pods(by_name["nightly-eval"]) == []  # a CronJob's schedule
    assert len(demo_workloads.running_pods(by_name["ranker-train-0412"])) == 1


def test_the_gpu_node_advertises_gpus_and_its_model() -> None:
    node = demo_workloads.gpu_node()
    assert node["status"]["capacity"]["nvidia.com/gpu"] == "8"
    assert node["metadata"]["labels"]["nvidia.com/gpu.product"] == demo_workloads.GPU_MODEL
