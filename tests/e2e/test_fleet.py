"""The fleet (issue 22): two real control planes, each with its own operator, through Thanos.

Cluster a is the session's control plane, b a second one from scripts/e2e-cluster.sh
(started here). In each, the script's operator is replaced by one of its own
(`cluster.name` a or b) whose `prometheus.url` is the fleet's Thanos Query, as a
per-cluster operator reading a shared Thanos does. Cluster a's operator is scraped by
an HA pair of Prometheus servers (external labels `cluster="a"`,
`prometheus_replica` 0 and 1), b's by one (`cluster="b"`); each Prometheus has a
Thanos sidecar, and one Thanos Query with `--query.replica-label=prometheus_replica`
reads all three (a second one without it shows what deduplication removes).

The report needs whole hours of samples, which a Prometheus started seconds ago does
not have: each Prometheus is backfilled first with three hours of its operator's own
series (as test_cost_reports does), for pods with the same names in both clusters,
so the ground truth is known: GPUs x 3 h x 4.5 USD. And the live GPU pods of each
cluster reach Thanos Query through its operator's /metrics, once per cluster.

Thanos is built by scripts/build-thanos.sh, which scripts/test.sh (the README's test
command, `.ci/run`) starts in the background while the suite runs: a cold build takes
20 minutes or more (docs/multi-cluster.md). This module runs late and waits for that
build (tests/support/tools.py BUILT_IN_BACKGROUND); under a bare pytest without a built
Thanos it skips.
"""

from __future__ import annotations

import json
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml

from finops_devtools.devcluster import free_port
from finops_devtools.devcluster.prometheus_runner import PrometheusServer
from finops_devtools.devcluster.thanos_runner import ThanosProcess
from tests.support.tools import needs_tool, require_tool, tool_path

from .conftest import (
    COMPLIANT,
    REPO,
    SCRIPT,
    TEAM,
    Cluster,
    cluster_down,
    cluster_up,
    gpu_workload,
    restore_script_operator,
    start_second_operator,
    stop_process,
    wait_until,
)
from .test_cost_reports import team_report
from .test_workloads import make_node, run_on

pytestmark = needs_tool("thanos", "prometheus", "promtool")

NS = "e2e-fleet"
H100 = "NVIDIA-H100-80GB-HBM3"
PRICE = Decimal("4.5")
HOURS = 3
REPLICA = "prometheus_replica"
# Backfilled (pod, team, GPUs) of each cluster: pod train-0 exists in both, with
# different GPUs, the case where series differing only by `cluster` used to merge.
BACKFILLED = {
    "a": (("train-0", "fleet-shared", 2), ("train-1", "fleet-a-only", 1)),
    "b": (("train-0", "fleet-shared", 1),),
}
PRIMARY = COMPLIANT[TEAM]


def truth(name: str, team: str | None = None) -> Decimal:
    """A cluster's GPU cost in the backfilled hours (one team's, when given)."""
    gpus = sum(g for _, t, g in BACKFILLED[name] if team in (None, t))
    return gpus * HOURS * PRICE


def backfilled_hours() -> tuple[datetime, datetime]:
    """Three whole hours ending an hour before the current one: out of the live scrape."""
    end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
    return end - timedelta(hours=HOURS), end


def openmetrics(name: str, instance: str, start: datetime, end: datetime) -> str:
    """The operator's series of cluster `name` for [start, end), every minute; plus the
    recorded month-to-date GPU spend of team fleet-shared over the last 30 minutes (what
    the cluster's recording rules would hold: the fleet budget's input)."""
    target = f'job="finops-operator",instance="{instance}"'
    stamps = range(int(start.timestamp()), int(end.timestamp()), 60)
    lines = ["# TYPE finops_gpu_hourly_price gauge"]
    lines += [f'finops_gpu_hourly_price{{{target},gpu_model="{H100}"}} {PRICE} {t}' for t in stamps]
    lines.append("# TYPE finops_pod_gpu_allocation gauge")
    for pod, team, gpus in BACKFILLED[name]:
        series = (
            f'namespace="{NS}",pod="{pod}",node="fleet-h100",resource="nvidia.com/gpu",'
            f'gpu_model="{H100}",team="{team}",feature="semantic-search",'
            'environment="production",workload_type="training",cost_center="cc-1042"'
        )
        lines += [f"finops_pod_gpu_allocation{{{target},{series}}} {gpus} {t}" for t in stamps]
    now = int(time.time())
    spend = truth(name, "fleet-shared")
    lines.append("# TYPE finops:gpu_cost_month_to_date:sum gauge")
    lines += [
        f'finops:gpu_cost_month_to_date:sum{{team="fleet-shared",feature="semantic-search",'
        f'environment="production",workload_type="training",cost_center="cc-1042"}} {spend} {t}'
        for t in range(now - 1800, now - 29, 30)
    ]
    return "\n".join([*lines, "# EOF", ""])


def prometheus_config(metrics_port: int, labels: dict[str, str]) -> str:
    return yaml.safe_dump(
        {
            "global": {
                "scrape_interval": "1s",
                "evaluation_interval": "1s",
                "external_labels": labels,
            },
            "scrape_configs": [
                {
                    "job_name": "finops-operator",
                    "static_configs": [{"targets": [f"127.0.0.1:{metrics_port}"]}],
                }
            ],
        }
    )


@dataclass
class Fleet:
    clusters: dict[str, Cluster]
    query: ThanosProcess  # deduplicating
    raw: ThanosProcess  # no replica label
    report_config: Path
    start: datetime
    end: datetime
    workdir: Path

    def api(self, url: str, path: str, **params: str) -> Any:
        query = urllib.parse.urlencode(params)
        with urllib.request.urlopen(f"{url}/api/v1/{path}?{query}", timeout=60) as answer:
            body = json.load(answer)
        assert body["status"] == "success", body
        return body["data"]

    def report(self, *args: str) -> dict[str, Any]:
        """`finops-operator report` of the backfilled hours against the fleet's Thanos Query."""
        done = subprocess.run(
            [
                str(REPO / ".venv" / "bin" / "finops-operator"),
                "report",
                "--config",
                str(self.report_config),
                "--prometheus-url",
                self.query.url,
                "--start",
                self.start.isoformat(),
                "--end",
                self.end.isoformat(),
                "--format",
                "json",
                *args,
            ],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        return dict(json.loads(done.stdout))


def operator_config(installed: Cluster, path: Path, changes: dict[str, dict[str, Any]]) -> Path:
    """The configuration the script installed in `installed`, these sections updated, at `path`."""
    config = yaml.safe_load(Path(installed.info["config"]).read_text())
    for key, value in changes.items():
        config[key] = {**config.get(key, {}), **value}
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture(scope="module")
def fleet(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    require_tool("thanos", "prometheus", "promtool")
    thanos = str(tool_path("thanos"))
    workdir = tmp_path_factory.mktemp("fleet")
    start, end = backfilled_hours()
    servers: list[PrometheusServer] = []
    processes: list[ThanosProcess] = []
    operators: list[Any] = []
    second: Cluster | None = None
    try:
        second = cluster_up(workdir / "cluster-b")
        clusters = {"a": cluster, "b": second}
        for member in clusters.values():
            subprocess.run(
                ["bash", str(SCRIPT), "stop-operator", str(member.dir)],
                check=True,
                capture_output=True,
                timeout=60,
            )
        replicas = {"a": ("0", "1"), "b": ("",)}
        ports = {name: free_port() for name in clusters}
        for name, replica_values in replicas.items():
            data = workdir / f"backfill-{name}.om"
            data.write_text(openmetrics(name, f"127.0.0.1:{ports[name]}", start, end))
            for replica in replica_values:
                labels = {"cluster": name, **({REPLICA: replica} if replica else {})}
                server = PrometheusServer(
                    workdir / f"prometheus-{name}{replica}",
                    config=prometheus_config(ports[name], labels),
                )
                servers.append(server)
                server.backfill_file(data)
                server.start()
                processes.append(ThanosProcess.sidecar(thanos, workdir, server))
        endpoints = [sidecar.grpc for sidecar in processes]
        query = ThanosProcess.query(thanos, workdir, endpoints, (REPLICA,))
        processes.append(query)
        raw = ThanosProcess.query(thanos, workdir, endpoints)
        processes.append(raw)
        for name, member in clusters.items():
            config = operator_config(
                member,
                workdir / f"operator-{name}.yaml",
                {
                    "prometheus": {"url": query.url},
                    "reports": {"intervalSeconds": 5},
                    "cluster": {"name": name},
                },
            )
            proc, *_ = start_second_operator(
                member,
                config,
                f"fleet-{name}",
                webhook_port=member.info["webhook_port"],
                metrics_port=ports[name],
            )
            operators.append(proc)
        for name, member in clusters.items():
            wait_until(
                lambda member=member, name=name: member.metric("finops_leader", ports[name]) == 1,
                timeout=90,
                what=f"the operator of cluster {name} leads",
            )
        report_config = operator_config(
            cluster, workdir / "report.yaml", {"pricing": {"sharedMonthly": "0"}}
        )
        yield Fleet(clusters, query, raw, report_config, start, end, workdir)
    finally:
        for proc in operators:
            stop_process(proc)
        for process in reversed(processes):
            process.stop()
        for server in servers:
            server.stop()
        if second is not None:
            cluster_down(second)
        restore_script_operator(cluster, "operator-fleet-a")


def money(value: Decimal) -> str:
    return f"{value:.2f}"


def test_report_through_thanos_gives_each_clusters_ground_truth_and_their_sum(
    fleet: Fleet,
) -> None:
    at = str(fleet.end.timestamp() - 60)

    def both_clusters() -> list[dict[str, Any]]:
        query = "count by (cluster) (finops_gpu_hourly_price)"
        found: list[dict[str, Any]] = fleet.api(fleet.query.url, "query", query=query, time=at)[
            "result"
        ]
        assert len(found) == 2, (found, fleet.api(fleet.query.url, "stores"))
        return found

    wait_until(both_clusters, timeout=90, what="Thanos Query sees both clusters' sidecars")
    document = fleet.report()
    clusters = {entry["name"]: entry["totalCost"] for entry in document["clusters"]}
    assert clusters == {"a": money(truth("a")), "b": money(truth("b"))}, document["clusters"]
    assert document["cluster"]["totalCost"] == money(truth("a") + truth("b"))
    teams = {row["team"]: row["gpuCost"] for row in document["teams"]}
    assert teams["fleet-shared"] == money(truth("a", "fleet-shared") + truth("b", "fleet-shared"))
    assert teams["fleet-a-only"] == money(truth("a", "fleet-a-only"))
    only_b = fleet.report("--cluster", "b")
    assert only_b["cluster"]["totalCost"] == money(truth("b"))


def test_live_gpu_pods_reach_thanos_once_per_cluster(fleet: Fleet) -> None:
    """A pod named `live` runs in both clusters; its operators export it, the pair of a
    scrapes it twice, and the deduplicating Query shows it once per cluster."""
    for name, member in fleet.clusters.items():
        member.namespace(NS)
        make_node(
            member,
            "fleet-live-h100",
            {"nvidia.com/gpu.product": H100, "nvidia.com/gpu.count": "8"},
            {"nvidia.com/gpu": "8"},
        )
        labels = {**COMPLIANT, TEAM: f"fleet-live-{name}"}
        member.apply(gpu_workload("Pod", "live", NS, labels, gpus=1 if name == "a" else 2))
        run_on(member, member.get("pod", "live", NS), "fleet-live-h100")
    selector = f'finops_pod_gpu_allocation{{namespace="{NS}",pod="live"}}'

    def seen(url: str) -> dict[tuple[str, str], str]:
        found = fleet.api(url, "query", query=selector)["result"]
        return {
            (s["metric"]["cluster"], s["metric"].get(REPLICA, "")): s["value"][1] for s in found
        }

    deduplicated = wait_until(
        lambda: (found := seen(fleet.query.url)) and len(found) == 2 and found,
        timeout=90,
        what="the live pods of both clusters through Thanos Query",
    )
    assert deduplicated == {("a", ""): "1", ("b", ""): "2"}
    raw = wait_until(
        lambda: (found := seen(fleet.raw.url)) and len(found) == 3 and found,
        timeout=30,
        what="the pair's two copies through the Query without deduplication",
    )
    assert raw == {("a", "0"): "1", ("a", "1"): "1", ("b", ""): "2"}


def test_each_operators_cost_reports_show_only_its_own_cluster(fleet: Fleet) -> None:
    """Both operators read the same Thanos Query: a's CostReport of fleet-shared holds
    a's hours (2 GPUs x 3 h), b's holds b's (1 GPU x 3 h), and b has none of a's team."""
    start, _ = backfilled_hours()
    if start.month != datetime.now(UTC).month:
        pytest.skip("the backfilled hours began last month: this month's CostReports lack them")
    hours = {"a": 2 * HOURS, "b": 1 * HOURS}
    for name, member in fleet.clusters.items():
        report = wait_until(
            lambda member=member: team_report(member, "fleet-shared"),
            timeout=120,
            what=f"cluster {name}'s CostReport of team fleet-shared",
        )
        assert abs(float(report["status"]["gpuHours"]) - hours[name]) < 0.01, (name, report)
    assert team_report(fleet.clusters["a"], "fleet-a-only") is not None
    assert team_report(fleet.clusters["b"], "fleet-a-only") is None
    teams_b = {r["spec"].get("team") for r in fleet.clusters["b"].get("costreports")["items"]}
    assert "fleet-a-only" not in teams_b and "fleet-live-a" not in teams_b, teams_b


FLEET_POLICY = """\
apiVersion: finops.resilio.tech/v1alpha1
kind: CostPolicy
metadata: {name: fleet-shared-budget, namespace: finops}
spec:
  clusters: all
  selector: {team: fleet-shared}
  budget: {monthly: 60, currency: USD, forecast: false}
"""


def test_a_fleet_budget_fires_in_thanos_ruler_over_both_clusters(fleet: Fleet) -> None:
    """Team fleet-shared spent 27 USD in a (recorded by both Prometheus of the pair) and
    13.50 in b: 40.50 of a 60 USD budget fires the 50 % alert in a real `thanos rule`
    reading the fleet's Thanos Query. Neither cluster alone reaches 30; the pair
    counted twice (67.50) would fire the 80 % one."""
    rendered = subprocess.run(
        [str(REPO / ".venv" / "bin" / "finops-operator"), "render", "--format", "groups", "-"],
        input=FLEET_POLICY,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert rendered.returncode == 0, rendered.stderr
    rules = fleet.workdir / "fleet-budget.yaml"
    rules.write_text(rendered.stdout)
    thanos = str(tool_path("thanos"))
    with ThanosProcess.rule(thanos, fleet.workdir / "ruler", [rules], fleet.query.url) as ruler:
        firing = wait_until(
            lambda: [
                alert
                for alert in fleet.api(ruler.url, "alerts")["Alerts"] or []
                if alert["state"] == "firing"
            ],
            timeout=120,
            interval=2,
            what="the fleet budget alert fires in Thanos Ruler",
        )
        assert [alert["labels"]["threshold"] for alert in firing] == ["50"], ruler.log()
        assert Decimal(firing[0]["value"]) == truth("a", "fleet-shared") + truth(
            "b", "fleet-shared"
        )
        assert firing[0]["labels"]["team"] == "fleet-shared"
