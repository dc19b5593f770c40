"""CostReports written by the leader: created once, figures through the status subresource.

The shipped ConfigMap points at kube-prometheus-stack's Prometheus, which this
machine does not have. So this module stops the operator of
scripts/e2e-cluster.sh and runs one of its own whose configuration differs only
in `prometheus.url` (a real Prometheus started here, scraping that operator's
/metrics every second) and `reports.intervalSeconds` (5, the minimum). The pods
it reports on run on a fake GPU node, as in test_workloads.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml

from finops_devtools.devcluster import free_port
from tests.support.tools import require_tool

from .conftest import (
    COMPLIANT,
    OPERATOR_USER,
    REPO,
    SCRIPT,
    TEAM,
    Cluster,
    gpu_workload,
    restore_script_operator,
    start_second_operator,
    stop_process,
    wait_until,
)
from .test_dra import (
    A100,
    A100_MODEL,
    H100_MODEL,
    HELD,
    allocated_pods,
    gpu_device,
    held_by_model,
    holds_exactly,
    scheduler,  # noqa: F401  (the fixture: kube-scheduler, for the DRA test)
)
from .test_workloads import make_node, run_on

NS = "e2e-reports"
PROMETHEUS = shutil.which("prometheus")
BACKFILLED_POD = "reported-earlier"


def backfill(work: Path, instance: str) -> None:
    """Three hours of this operator's own series, ending 30 minutes ago, into the TSDB.

    The report counts samples per whole hour of each target, so a Prometheus that
    started seconds ago has nothing to report yet. These are the series the
    operator exports for BACKFILLED_POD (2 H100s), as Prometheus would have
    scraped them every minute; the live scrape adds the pods running now.
    """
    promtool = shutil.which("promtool")
    assert promtool, "promtool comes with Debian's prometheus package"
    end = int(time.time()) - 1800
    stamps = range(end - 3 * 3600, end, 60)
    target = f'job="finops-operator",instance="{instance}"'
    pod = (
        f'namespace="{NS}",pod="{BACKFILLED_POD}",node="e2e-report-h100",'
        'resource="nvidia.com/gpu",gpu_model="NVIDIA-H100-80GB-HBM3",'
        f'team="{COMPLIANT[TEAM]}",feature="semantic-search",environment="production",'
        'workload_type="inference",cost_center="cc-1042"'
    )
    lines = ["# TYPE finops_gpu_hourly_price gauge"]
    lines += [
        f'finops_gpu_hourly_price{{{target},gpu_model="NVIDIA-H100-80GB-HBM3"}} 4.5 {t}'
        for t in stamps
    ]
    lines.append("# TYPE finops_pod_gpu_allocation gauge")
    lines += [f"finops_pod_gpu_allocation{{{target},{pod}}} 2 {t}" for t in stamps]
    lines.append("# EOF")
    (work / "backfill.om").write_text("\n".join(lines) + "\n")
    subprocess.run(
        [
            promtool,
            "tsdb",
            "create-blocks-from",
            "openmetrics",
            str(work / "backfill.om"),
            str(work / "tsdb"),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )


@pytest.fixture(scope="module")
def reporting_operator(cluster: Cluster) -> Iterator[int]:
    """The metrics port of an operator that reads a local Prometheus; the script's is stopped."""
    require_tool("prometheus")
    work = Path(cluster.info["dir"]) / "reports"
    work.mkdir(exist_ok=True)
    logs = Path(cluster.info["logs"])
    metrics_port, prom_port = free_port(), free_port()
    (work / "prometheus.yml").write_text(
        yaml.safe_dump(
            {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "scrape_configs": [
                    {
                        "job_name": "finops-operator",
                        "static_configs": [{"targets": [f"127.0.0.1:{metrics_port}"]}],
                    }
                ],
            }
        )
    )
    backfill(work, f"127.0.0.1:{metrics_port}")
    config = yaml.safe_load(Path(cluster.info["config"]).read_text())
    config["prometheus"]["url"] = f"http://127.0.0.1:{prom_port}"
    config.setdefault("reports", {})["intervalSeconds"] = 5
    (work / "config.yaml").write_text(yaml.safe_dump(config))

    subprocess.run(
        ["bash", str(SCRIPT), "stop-operator", str(cluster.dir)],
        check=True,
        capture_output=True,
        timeout=60,
    )
    procs: list[subprocess.Popen[bytes]] = []
    try:
        with (logs / "prometheus.log").open("wb") as out:
            procs.append(
                subprocess.Popen(
                    [
                        PROMETHEUS,
                        f"--config.file={work / 'prometheus.yml'}",
                        f"--storage.tsdb.path={work / 'tsdb'}",
                        f"--web.listen-address=127.0.0.1:{prom_port}",
                    ],
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
            )
        state = Path(cluster.info["state"])
        (state / "extra-prometheus.pid").write_text(str(procs[0].pid))
        # The webhooks keep calling the port the script's operator had.
        reporting, *_ = start_second_operator(
            cluster,
            work / "config.yaml",
            "reports",
            webhook_port=cluster.info["webhook_port"],
            metrics_port=metrics_port,
        )
        procs.append(reporting)
        wait_until(
            lambda: cluster.metric("finops_leader", metrics_port) == 1,
            timeout=60,
            what="the reporting operator leads",
        )
        yield metrics_port
    finally:
        for proc in reversed(procs):
            stop_process(proc)
        restore_script_operator(cluster, "prometheus", "operator-reports")


def team_report(cluster: Cluster, team: str) -> dict[str, Any] | None:
    for report in cluster.get("costreports")["items"]:
        spec = report["spec"]
        if spec.get("scope") == "team" and spec.get("team") == team and report.get("status"):
            return dict(report)
    return None


def test_reports_are_created_and_filled_through_the_status_subresource(
    cluster: Cluster, reporting_operator: int
) -> None:
    cluster.namespace(NS)
    make_node(
        cluster,
        "e2e-report-h100",
        {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3", "nvidia.com/gpu.count": "8"},
        {"nvidia.com/gpu": "8"},
    )
    cluster.apply(gpu_workload("Pod", "reported", NS, COMPLIANT, gpus=2))
    run_on(cluster, cluster.get("pod", "reported", NS), "e2e-report-h100")

    report = wait_until(
        lambda: team_report(cluster, COMPLIANT[TEAM]),
        timeout=120,
        what=f"a CostReport of team {COMPLIANT[TEAM]} with figures",
    )
    assert report["metadata"]["generation"] == 1, "figures must not change the spec"
    assert float(report["status"]["gpuHours"]) > 0, report["status"]
    assert report["status"]["currency"] == "USD"
    out = cluster.kubectl("get", "costreports").stdout
    assert out.splitlines()[0].split()[:5] == ["NAME", "TEAM", "PERIOD", "GPU", "HOURS"], out
    assert any(COMPLIANT[TEAM] in line for line in out.splitlines()[1:]), out

    time.sleep(6)  # one more refresh: only the status moves
    again = cluster.get("costreport", report["metadata"]["name"])
    assert again["metadata"]["generation"] == 1
    writes = {
        (e["verb"], (e.get("objectRef") or {}).get("subresource", ""))
        for e in (
            json.loads(line) for line in cluster.audit_log.read_text().splitlines() if line.strip()
        )
        if e["user"]["username"] == OPERATOR_USER
        and (e.get("objectRef") or {}).get("resource") == "costreports"
        and e["verb"] in ("create", "update", "patch")
    }
    assert ("create", "") in writes and ("patch", "status") in writes, writes
    assert ("patch", "") not in writes and ("update", "") not in writes, writes


def prometheus_vector(work: Path, query: str) -> list[dict[str, Any]]:
    """An instant query to the reporting operator's Prometheus (its URL in `work`'s config)."""
    url = yaml.safe_load((work / "config.yaml").read_text())["prometheus"]["url"]
    address = f"{url}/api/v1/query?{urllib.parse.urlencode({'query': query})}"
    with urllib.request.urlopen(address, timeout=10) as answer:
        result: list[dict[str, Any]] = json.load(answer)["data"]["result"]
    return result


def claims_price_per_gpu_hour(work: Path, namespace: str) -> Decimal:
    """The GPU cost per GPU hour the claims imply over what Prometheus holds of the pods.

    Every sample of each pod must be the fraction its claim implies (HELD); weighted by
    its number of samples (the pods did not appear at the same scrape), each pod's GPU
    model's price (the shipped config's: H100 4.50, A100 3.00).
    """
    prices = {H100_MODEL: Decimal("4.50"), A100_MODEL: Decimal("3.00")}
    series = f'finops_pod_gpu_allocation{{namespace="{namespace}"}}'
    low = {
        r["metric"]["pod"]: r["value"][1]
        for r in prometheus_vector(work, f"min_over_time({series}[1h])")
    }
    high = {
        r["metric"]["pod"]: r["value"][1]
        for r in prometheus_vector(work, f"max_over_time({series}[1h])")
    }
    counts = prometheus_vector(work, f"count_over_time({series}[1h])")
    assert {r["metric"]["pod"] for r in counts} == set(HELD), counts
    weighted, held_samples = Decimal(0), Decimal(0)
    for entry in counts:
        pod = entry["metric"]["pod"]
        model, held = HELD[pod]
        assert entry["metric"]["gpu_model"] == model, entry
        assert abs(float(low[pod]) - float(held)) < 1e-9 and low[pod] == high[pod], (pod, low, high)
        gpus = Decimal(held.numerator) / Decimal(held.denominator)
        samples = Decimal(entry["value"][1])
        held_samples += gpus * samples
        weighted += gpus * samples * prices[model]
    return weighted / held_samples


def near(cost: str, hours: float, per_hour: Decimal) -> bool:
    """`cost` (in cents) is `hours` (rounded to 3 decimals) x `per_hour`, to the rounding."""
    slack = Decimal("0.011") + Decimal("0.0005") * per_hour
    return abs(Decimal(cost) - Decimal(str(hours)) * per_hour) <= slack


@pytest.mark.usefixtures("scheduler")
def test_the_gpu_cost_of_dra_pods_lands_on_their_team(
    cluster: Cluster, reporting_operator: int
) -> None:
    """GPUs from ResourceClaims (allocated by kube-scheduler) are priced on the pods' team,
    exactly as the claims imply: 3 H100s (two whole claims, a shared one split in two
    halves) and 3/7 of an A100 (a MIG 3g.40gb device)."""
    team, namespace = "dra-research", "e2e-reports-dra"
    work = Path(cluster.info["dir"]) / "reports"
    nodes = {
        "e2e-report-dra-1": [gpu_device("gpu-0"), gpu_device("gpu-1"), gpu_device("gpu-2")],
        "e2e-report-dra-2": [gpu_device("gpu-0", A100, mig_profile="3g.40gb")],
    }
    allocated_pods(cluster, namespace, {**COMPLIANT, TEAM: team}, nodes)
    wait_until(
        lambda: holds_exactly(cluster, {"team": team}, reporting_operator),
        timeout=60,
        what=f"the DRA pods' {held_by_model()} GPUs on the reporting operator's /metrics",
    )
    # Some samples of every pod, then none: the figures stop moving.
    series = f'finops_pod_gpu_allocation{{namespace="{namespace}"}}'
    wait_until(
        lambda: len(prometheus_vector(work, f"count_over_time({series}[1h]) >= 5")) == len(HELD),
        timeout=60,
        what="five samples of every DRA pod in Prometheus",
    )
    cluster.kubectl("delete", "pods", "--all", "-n", namespace, "--grace-period=0", "--force")
    wait_until(
        lambda: not prometheus_vector(work, series),
        timeout=60,
        what="the deleted DRA pods to leave /metrics and Prometheus",
    )
    stopped = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=1)
    per_hour = claims_price_per_gpu_hour(work, namespace)

    def refreshed() -> dict[str, Any] | None:
        report = team_report(cluster, team)
        if report is None:
            return None
        through = datetime.fromisoformat(report["status"]["dataThrough"].replace("Z", "+00:00"))
        return report if through >= stopped else None

    status = wait_until(refreshed, timeout=60, what=f"{team}'s CostReport after the pods left")[
        "status"
    ]
    assert float(status["gpuHours"]) > 0, status
    assert near(status["gpuCost"], status["gpuHours"], per_hour), (status, per_hour)
    # `finops-operator report` reads the same series from the same Prometheus.
    printed = subprocess.run(
        [
            str(REPO / ".venv" / "bin" / "finops-operator"),
            "report",
            "--config",
            str(work / "config.yaml"),
            "--period",
            time.strftime("%Y-%m", time.gmtime()),
            "--team",
            team,
            "--format",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    [row] = [row for row in json.loads(printed.stdout)["teams"] if row["team"] == team]
    assert float(row["gpuHours"]) > 0 and near(row["gpuCost"], row["gpuHours"], per_hour), row
