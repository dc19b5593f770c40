"""A typo'd ConfigMap cannot take the cluster down (issue 19, item 4).

`mode: enforced` is refused when it is applied (the ValidatingAdmissionPolicy of
manifests/base/least-privilege.yaml). A typo CEL cannot see (a misspelt key,
`mdoe: enforce`), edited under a running operator, is reported (Warning Event on
the ConfigMap, `finops_config_valid` 0) and never applied: admission keeps judging
with the configuration in use. Restarted with only that ConfigMap, the operator
serves the safe default (built-in defaults, mode audit) instead of exiting, which
left every GPU create refused by the webhook's `failurePolicy: Fail`.

Restarts the operator: runs after test_leader_election (conftest's module order).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from .conftest import COMPLIANT, MODE, Cluster, gpu_workload, wait_until
from .test_admission_policies import script

ENFORCE_NS = "e2e-config-enforce"
PLAIN_NS = "e2e-config-plain"  # no mode label: the cluster default applies
CONFIG_MAP = "finops-operator-config"


def misspelt(text: str) -> str:
    """The configuration with a key CEL cannot check: invalid for the operator."""
    return text.replace("mode: audit", "mode: audit\nmdoe: enforce")


def set_config_text(cluster: Cluster, text: str) -> None:
    patch = {"data": {"config.yaml": text}}
    cluster.kubectl(
        "-n", "finops-system", "patch", "configmap", CONFIG_MAP, "--type", "merge",
        "-p", json.dumps(patch),
    )  # fmt: skip


def config_events(cluster: Cluster, reason: str) -> list[dict[str, Any]]:
    events = cluster.get("events", None, "finops-system")["items"]
    return [
        e
        for e in events
        if e["involvedObject"].get("kind") == "ConfigMap"
        and e["involvedObject"].get("name") == CONFIG_MAP
        and e.get("reason") == reason
    ]


def dry_run(cluster: Cluster, obj: dict[str, Any]) -> tuple[bool, str]:
    proc = cluster.apply(obj, "--dry-run=server", check=False)
    return proc.returncode == 0, proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def good_text(cluster: Cluster) -> Iterator[str]:
    cluster.namespace(ENFORCE_NS, {MODE: "enforce"})
    cluster.namespace(PLAIN_NS)
    text = str(cluster.get("configmap", CONFIG_MAP, "finops-system")["data"]["config.yaml"])
    assert "mode: audit" in text
    yield text
    set_config_text(cluster, text)


def test_an_invalid_mode_is_refused_when_applied(cluster: Cluster, good_text: str) -> None:
    patch = {"data": {"config.yaml": good_text.replace("mode: audit", "mode: enforced")}}
    proc = cluster.kubectl(
        "-n", "finops-system", "patch", "configmap", CONFIG_MAP, "--type", "merge",
        "-p", json.dumps(patch), check=False,
    )  # fmt: skip
    assert proc.returncode != 0 and "mode must be enforce, audit or off" in proc.stderr
    stored = cluster.get("configmap", CONFIG_MAP, "finops-system")["data"]["config.yaml"]
    assert stored == good_text


def test_a_typo_under_a_running_operator_is_reported_and_not_applied(
    cluster: Cluster, good_text: str
) -> None:
    offset = cluster.log_size()
    set_config_text(cluster, misspelt(good_text))
    try:
        [event] = wait_until(
            lambda: config_events(cluster, "InvalidConfig"), timeout=60, what="InvalidConfig"
        )
        assert event["type"] == "Warning"
        assert "mdoe" in event["message"] and "configuration in use stays" in event["message"]
        assert cluster.metric("finops_config_valid") == 0
        assert "Invalid configuration, not applied" in cluster.log_since(offset)
        # Admission works as before: the enforce namespace refuses an untagged GPU pod
        # and admits a tagged one; the cluster default (audit) admits the untagged one.
        refused, output = dry_run(cluster, gpu_workload("Pod", "untagged", ENFORCE_NS))
        assert not refused and "denied" in output, output
        assert dry_run(cluster, gpu_workload("Pod", "tagged", ENFORCE_NS, COMPLIANT))[0]
        assert dry_run(cluster, gpu_workload("Pod", "untagged", PLAIN_NS))[0]
    finally:
        set_config_text(cluster, good_text)
    wait_until(lambda: cluster.metric("finops_config_valid") == 1, what="valid again")


def test_a_restart_with_only_a_bad_configmap_serves_the_safe_default(
    cluster: Cluster, good_text: str
) -> None:
    set_config_text(cluster, misspelt(good_text))
    try:
        script(cluster, "stop-operator")
        offset = cluster.log_size()
        script(cluster, "operator")  # waits until the webhooks answer: it did not exit
        assert cluster.metric("finops_config_safe_default") == 1
        assert "serving the SAFE DEFAULT" in cluster.log_since(offset)
        wait_until(
            lambda: config_events(cluster, "SafeDefaultConfig"), timeout=60, what="the Event"
        )
        # Not every GPU create refused: audit by default, enforce where a namespace chose it.
        admitted, output = dry_run(cluster, gpu_workload("Pod", "untagged", PLAIN_NS))
        assert admitted, output
        assert dry_run(cluster, gpu_workload("Pod", "tagged", ENFORCE_NS, COMPLIANT))[0]
        assert not dry_run(cluster, gpu_workload("Pod", "untagged", ENFORCE_NS))[0]
    finally:
        set_config_text(cluster, good_text)
        script(cluster, "stop-operator")
        script(cluster, "operator")
    assert cluster.metric("finops_config_safe_default") == 0
