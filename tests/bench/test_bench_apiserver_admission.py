"""The pure parts of bench/apiserver_admission.py: /proc parsing, the table, the peers'
policies, the webhooks pointed at the replicas' balancer, the VAP without its conditions.

The bench itself (a control plane, Kyverno and Gatekeeper) stays out of the suite.
"""

from __future__ import annotations

import ipaddress
import os

import pytest

import bench.apiserver_admission as bench
from bench.apiserver_admission import (
    Row,
    gatekeeper_objects,
    kyverno_policy,
    proc_cpu_seconds,
    repoint,
    schedstat_wait_seconds,
    status_rss_mib,
    table,
    with_added,
    without_match_conditions,
)
from finops_operator.domain.config import Config
from finops_operator.domain.policies.admission_policy import deny_policy, validating_binding

TICKS = os.sysconf("SC_CLK_TCK")


def test_cpu_is_utime_plus_stime_even_when_the_name_holds_spaces_and_parens() -> None:
    rest = " ".join(["S", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10"])
    stat = f"42 (a (b) c) {rest} {3 * TICKS} {2 * TICKS} 0 0 20 0"
    assert proc_cpu_seconds(stat) == pytest.approx(5.0)


def test_rss_is_read_in_mib_and_is_zero_for_a_zombie() -> None:
    assert status_rss_mib("Name:\tx\nVmRSS:\t  204800 kB\nThreads: 3\n") == 200
    assert status_rss_mib("Name:\tx\nState:\tZ (zombie)\n") == 0


def test_run_queue_wait_is_the_second_schedstat_field_in_seconds() -> None:
    assert schedstat_wait_seconds("951165 2507071000 2\n") == pytest.approx(2.507071)


def test_added_latency_is_over_the_baseline_at_the_same_concurrency() -> None:
    rows = with_added(
        [
            Row("base", 10, 100, 1.0, 10.0, 30.0),
            Row("base", 50, 100, 1.0, 40.0, 90.0),
            Row("peer", 10, 100, 2.0, 12.5, 45.0),
            Row("peer", 50, 100, 4.0, 41.0, 80.0),
        ],
        "base",
    )
    assert (rows[2].added_p50_ms, rows[2].added_p99_ms) == (2.5, 15.0)
    assert (rows[3].added_p50_ms, rows[3].added_p99_ms) == (1.0, -10.0)
    text = table(rows)
    assert "| peer | 10 | 50 | 12.5 | 45.0 | +2.5 | +15.0 |" in text
    assert "| peer | 50 | 25 |" in text


def test_peers_ask_for_the_same_five_labels_on_the_same_gpu_resources() -> None:
    policy = kyverno_policy()
    rule = policy["spec"]["validations"][0]["expression"]
    for label in ("team", "feature", "environment", "workload-type", "cost-center"):
        assert f"'resilio.tech/{label}'" in rule
    gpu = policy["spec"]["variables"][1]["expression"]
    assert "k == 'nvidia.com/gpu'" in gpu and "k.startsWith('nvidia.com/mig-')" in gpu
    template, constraint = gatekeeper_objects()
    assert template["spec"]["crd"]["spec"]["names"]["kind"] == constraint["kind"]
    parameters = constraint["spec"]["parameters"]
    assert len(parameters["labels"]) == 5 and "nvidia.com/gpu" in parameters["resources"]
    assert parameters["prefixes"] == ["nvidia.com/mig-"]


def test_only_the_webhooks_calling_the_old_port_are_pointed_at_the_balancer() -> None:
    config = {
        "webhooks": [
            {"clientConfig": {"url": "https://127.0.0.1:8443/validate"}},
            {"clientConfig": {"url": "https://127.0.0.1:18443/validate"}},
            {"clientConfig": {"service": {"name": "finops-operator-webhook"}}},
            {"clientConfig": {"url": "https://127.0.0.1:8443/mutate"}},
        ]
    }
    assert repoint(config, 8443, 9000) == [
        {"op": "replace", "path": "/webhooks/0/clientConfig/url",
         "value": "https://127.0.0.1:9000/validate"},
        {"op": "replace", "path": "/webhooks/3/clientConfig/url",
         "value": "https://127.0.0.1:9000/mutate"},
    ]  # fmt: skip
    assert repoint({"webhooks": None}, 8443, 9000) == []


def test_the_bare_vap_variant_drops_only_the_match_conditions_and_leaves_the_rendered_ones() -> (
    None
):
    config = Config()
    rendered = [deny_policy(config), validating_binding(config, "b", "p", ["Deny"], frozenset())]
    bare = without_match_conditions(rendered)
    assert "matchConditions" in rendered[0]["spec"]
    assert "matchConditions" not in bare[0]["spec"]
    bare[0]["spec"]["matchConditions"] = rendered[0]["spec"]["matchConditions"]
    assert bare == rendered


def test_one_pod_in_n_is_untagged_and_none_with_zero() -> None:
    assert [bench.is_compliant(i, 4) for i in range(8)] == [True, True, True, False] * 2
    assert all(bench.is_compliant(i, 0) for i in range(100))
    assert sum(not bench.is_compliant(i, 3) for i in range(300)) == 100


@pytest.mark.parametrize("value", ["1", "-2"])
def test_an_untagged_share_that_means_nothing_is_refused(
    value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        bench.main(["--untagged-every", value, "--only", "vap"])
    assert exited.value.code == 2
    assert "--untagged-every must be 0 (all compliant) or at least 2" in capsys.readouterr().err


def test_the_peers_default_to_an_address_kube_apiserver_calls_over_http_1_1() -> None:
    try:
        address = bench.non_loopback_address()
    except SystemExit as said:  # a machine without a default route: the option is named
        assert "--peer-address" in str(said)
    else:
        assert not ipaddress.ip_address(address).is_loopback


def test_a_peer_row_names_the_protocol_only_when_the_run_compares_them() -> None:
    assert bench.peer_row("Kyverno ValidatingPolicy", "192.0.2.2", False) == (
        "Kyverno ValidatingPolicy"
    )
    assert bench.peer_row("Kyverno ValidatingPolicy", "192.0.2.2", True).endswith(", HTTP/1.1")
    assert bench.peer_row("Gatekeeper", "127.0.0.1", True).endswith("HTTP/2 (loopback URL)")


def test_a_peer_address_that_is_not_an_ipv4_address_is_refused(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exited:
        bench.main(["--peer-address", "kyverno.local", "--only", "kyverno"])
    assert exited.value.code == 2
    assert "not an IPv4 address: 'kyverno.local'" in capsys.readouterr().err
