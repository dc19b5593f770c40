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
from collections.abc import Iterator
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
    allocated_pods,
    gpu_device,
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


@pytest.mark.usefixtures("scheduler")
def test_the_gpu_cost_of_dra_pods_lands_on_their_team(
    cluster: Cluster, reporting_operator: int
) -> None:
    """GPUs from ResourceClaims (allocated by kube-scheduler) are priced on the pods' team."""
    team = "dra-research"
    nodes = {
        "e2e-report-dra-1": [gpu_device("gpu-0"), gpu_device("gpu-1"), gpu_device("gpu-2")],
        "e2e-report-dra-2": [gpu_device("gpu-0", A100, mig_profile="3g.40gb")],
    }
    allocated_pods(cluster, "e2e-reports-dra", {**COMPLIANT, TEAM: team}, nodes)
    wait_until(
        lambda: cluster.metric("finops_pod_gpu_allocation", reporting_operator, team=team) > 3.4,
        timeout=60,
        what="the DRA pods' 1 + 1 + 1/2 + 1/2 + 3/7 GPUs on the reporting operator's /metrics",
    )
    report = wait_until(
        lambda: team_report(cluster, team),
        timeout=120,
        what=f"a CostReport of team {team} with figures",
    )
    status = report["status"]
    assert float(status["gpuHours"]) > 0 and float(status["gpuCost"]) > 0, status
    # `finops-operator report` reads the same series from the same Prometheus.
    printed = subprocess.run(
        [
            str(REPO / ".venv" / "bin" / "finops-operator"),
            "report",
            "--config",
            str(Path(cluster.info["dir"]) / "reports" / "config.yaml"),
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
    assert float(row["gpuHours"]) > 0 and float(row["gpuCost"]) > 0, row
