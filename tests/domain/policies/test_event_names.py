"""The labels state names a decision's Event: not moved by a generation, moved by labels."""

from __future__ import annotations

import copy

from finops_devtools.devcluster.reviews import workload
from finops_operator.domain.policies.event_names import labels_state


def test_a_scaled_deployment_keeps_its_labels_state() -> None:
    deployment = workload("Deployment", name="d", namespace="n", labels={"a": "1"})
    scaled = copy.deepcopy(deployment)
    scaled["metadata"]["generation"] = 7
    scaled["spec"]["replicas"] = 5
    assert labels_state(scaled) == labels_state(deployment)


def test_other_labels_or_pod_labels_are_another_state() -> None:
    deployment = workload("Deployment", name="d", namespace="n", labels={"a": "1"})
    relabelled = copy.deepcopy(deployment)
    relabelled["metadata"]["labels"] = {"a": "2"}
    pods = copy.deepcopy(deployment)
    pods["spec"]["template"]["metadata"]["labels"]["a"] = "3"
    states = {labels_state(deployment), labels_state(relabelled), labels_state(pods)}
    assert len(states) == 3
