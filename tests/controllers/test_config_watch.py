"""The operator's ConfigMap: a bad edit is reported, never applied; a good one needs a restart."""

from __future__ import annotations

from typing import Any

import pytest

from finops_operator.adapters.config_file import parse_config_text
from finops_operator.controllers.config_watch import ConfigWatch
from finops_operator.domain.config import ConfigChange, Mode, parse_config, safe_default
from tests.support.fakes import FakeEventPoster, FakeMetrics

IN_USE = "mode: audit\nexemptNamespaces: [kube-system, finops-system]\n"


def configmap(text: str | None) -> dict[str, Any]:
    data = {} if text is None else {"config.yaml": text}
    meta = {"name": "finops-operator-config", "namespace": "finops-system", "uid": "u-1"}
    return {"metadata": meta, "data": data}


def watch(problem: str | None = None) -> tuple[ConfigWatch, FakeMetrics, FakeEventPoster]:
    metrics, events = FakeMetrics(), FakeEventPoster()
    in_use = safe_default() if problem else parse_config_text(IN_USE, "file")
    return (
        ConfigWatch(in_use, parse_config_text, metrics, events, safe_default_problem=problem),
        metrics,
        events,
    )


async def test_a_typo_is_reported_on_the_configmap_and_never_applied() -> None:
    w, metrics, events = watch()
    await w.on_event("ADDED", configmap(IN_USE))
    assert metrics.config == {"valid": True, "restart_needed": False, "safe_default": False}
    assert events.posted == []

    await w.on_event("MODIFIED", configmap("mode: enforced\n"))

    assert w.in_use.mode is Mode.AUDIT  # the one in use stays
    assert w.change is ConfigChange.INVALID
    assert metrics.config["valid"] is False
    [(type, reason, message)] = events.posted
    assert (type, reason) == ("Warning", "InvalidConfig")
    assert "mode: Input should be" in message and "configuration in use stays" in message
    assert events.about[0]["kind"] == "ConfigMap"
    assert events.about[0]["metadata"]["name"] == "finops-operator-config"


async def test_the_same_content_is_judged_once() -> None:
    w, _, events = watch()
    for _ in range(3):  # a relist delivers it again
        await w.on_event("MODIFIED", configmap("mode: enforced\n"))
    assert len(events.posted) == 1


async def test_a_fixed_configmap_clears_the_warning_metric() -> None:
    w, metrics, events = watch()
    await w.on_event("MODIFIED", configmap("mode: enforced\n"))
    await w.on_event("MODIFIED", configmap(IN_USE))
    assert metrics.config == {"valid": True, "restart_needed": False, "safe_default": False}
    assert len(events.posted) == 1


async def test_a_valid_change_asks_for_a_restart() -> None:
    w, metrics, events = watch()
    await w.on_event("MODIFIED", configmap("mode: enforce\n"))
    assert metrics.config["restart_needed"] is True
    assert events.posted[0][:2] == ("Normal", "ConfigRestartNeeded")


@pytest.mark.parametrize("text", [None, "mode: [", "- a list\n"])
async def test_a_configmap_without_a_configuration_is_invalid(text: str | None) -> None:
    w, metrics, events = watch()
    await w.on_event("MODIFIED", configmap(text))
    assert metrics.config["valid"] is False
    assert events.posted[0][:2] == ("Warning", "InvalidConfig")


async def test_the_safe_default_is_reported_loudly() -> None:
    w, metrics, events = watch(
        problem="config.yaml: mode: Input should be 'enforce', 'audit' or 'off'"
    )
    assert metrics.config == {"valid": False, "restart_needed": False, "safe_default": True}
    await w.on_event("ADDED", configmap("mode: enforced\n"))
    reasons = [reason for _, reason, _ in events.posted]
    assert reasons == ["InvalidConfig", "SafeDefaultConfig"]
    assert "safe default" in events.posted[1][2] and "mode: Input should be" in events.posted[1][2]


async def test_a_fixed_configmap_under_the_safe_default_asks_for_a_restart() -> None:
    w, metrics, _ = watch(problem="bad")
    await w.on_event("MODIFIED", configmap(IN_USE))
    assert metrics.config == {"valid": True, "restart_needed": True, "safe_default": True}


async def test_a_deleted_configmap_changes_nothing() -> None:
    w, metrics, events = watch()
    await w.on_event("DELETED", configmap(None))
    assert events.posted == [] and metrics.config["valid"] is True


def test_the_safe_default_refuses_nothing_by_itself() -> None:
    assert safe_default().mode is Mode.AUDIT
    assert safe_default().labels == parse_config(None).labels
