"""Two operator processes, one Lease: SIGKILL the leader and the other takes over.

Runs late in the session (see conftest's module order): it kills the operator
that scripts/e2e-cluster.sh started, and starts it again at the end.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path
from typing import Any

from finops_devtools.devcluster import free_port

from .conftest import (
    MODE,
    REPO,
    SCRIPT,
    TEAM,
    VIOLATIONS_ANNOTATION,
    Cluster,
    gpu_workload,
    wait_until,
)

NS = "e2e-leader"


def lease(cluster: Cluster) -> dict[str, Any]:
    return dict(cluster.get("lease", "finops-operator", "finops-system"))


def point_webhooks(cluster: Cluster, port: int) -> None:
    """What the webhook Service's endpoints do on a cluster when a replica dies.

    Here the webhooks call the operator by URL (tests/e2e/overlay), so the test
    moves them to the surviving process itself.
    """
    for kind, path in (
        ("validatingwebhookconfiguration", "validate"),
        ("mutatingwebhookconfiguration", "mutate"),
    ):
        op = {
            "op": "replace",
            "path": "/webhooks/0/clientConfig/url",
            "value": f"https://127.0.0.1:{port}/{path}",
        }
        cluster.kubectl("patch", kind, "finops-operator", "--type=json", "-p", json.dumps([op]))


def start_second_operator(
    cluster: Cluster, config: Path | None = None, name: str = "b"
) -> tuple[subprocess.Popen[bytes], int, int, Path]:
    """Another replica (a standby while the script's operator leads), with the installed
    configuration or `config`; its log is logs/operator-NAME.log."""
    metrics_port = free_port()
    webhook_port = free_port()
    log = Path(cluster.info["logs"]) / f"operator-{name}.log"
    env = dict(
        os.environ, KUBECONFIG=cluster.info["operator_kubeconfig"], POD_NAMESPACE="finops-system"
    )
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                str(REPO / ".venv" / "bin" / "finops-operator"),
                "run",
                "--config",
                str(config or cluster.info["config"]),
                "--webhook-secret",
                "finops-operator-webhook-tls",
                "--webhook-host",
                "127.0.0.1",
                "--webhook-port",
                str(webhook_port),
                "--metrics-port",
                str(metrics_port),
                "--namespace",
                "finops-system",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=cluster.dir,
        )
    cluster.extra.append(proc)
    (Path(cluster.info["state"]) / f"extra-operator-{name}.pid").write_text(str(proc.pid))
    return proc, metrics_port, webhook_port, log


def warning_events(cluster: Cluster, name: str) -> list[dict[str, Any]]:
    events = cluster.get("events", None, NS)["items"]
    return [e for e in events if e["involvedObject"]["name"] == name and e.get("type") == "Warning"]


def annotated(cluster: Cluster, name: str) -> bool:
    live = cluster.get("job", name, NS)
    return VIOLATIONS_ANNOTATION in (live["metadata"].get("annotations") or {})


def test_the_standby_takes_the_lease_when_the_leader_is_killed(cluster: Cluster) -> None:
    a_pid = int((Path(cluster.info["state"]) / "operator.pid").read_text())
    a_port = int(cluster.info["metrics_port"])
    wait_until(
        lambda: cluster.metric("finops_leader", a_port) == 1,
        timeout=60,
        what="the first operator leads",
    )
    first_holder = lease(cluster)["spec"]["holderIdentity"]

    b, b_port, b_webhook_port, b_log = start_second_operator(cluster)
    try:
        wait_until(
            lambda: b.poll() is None and cluster.metrics(b_port),
            timeout=60,
            what="the second operator serves /metrics",
        )
        assert cluster.metric("finops_leader", b_port) == 0
        cluster.namespace(NS, {MODE: "audit"})
        cluster.apply(gpu_workload("Job", "before", NS, {TEAM: "search-platform"}))
        wait_until(
            lambda: annotated(cluster, "before"),
            timeout=60,
            what="the leader annotates the first job",
        )
        wait_until(
            lambda: warning_events(cluster, "before"),
            timeout=30,
            what="a Warning Event about the first job",
        )
        assert cluster.metric("finops_leader", b_port) == 0, "the standby must not write"

        os.kill(a_pid, signal.SIGKILL)
        wait_until(
            lambda: cluster.metric("finops_leader", b_port) == 1,
            timeout=90,
            what="the second operator takes the Lease",
        )
        point_webhooks(cluster, b_webhook_port)
        holder = lease(cluster)["spec"]["holderIdentity"]
        assert holder != first_holder
        assert int(lease(cluster)["spec"].get("leaseTransitions", 0)) >= 1

        cluster.apply(gpu_workload("Job", "after", NS, {TEAM: "search-platform"}))
        wait_until(
            lambda: annotated(cluster, "after"),
            timeout=60,
            what="the new leader annotates the second job",
        )
        wait_until(
            lambda: warning_events(cluster, "after"),
            timeout=30,
            what="a Warning Event about the second job",
        )
        # Nothing written twice: one Warning Event (count 1) about each job, and the
        # first job's annotation is the one the first leader wrote.
        for name in ("before", "after"):
            events = warning_events(cluster, name)
            assert sum(int(e.get("count") or 1) for e in events) == 1, (name, events)
        assert b.poll() is None, b_log.read_text()
    finally:
        b.terminate()
        try:
            b.wait(timeout=20)
        except subprocess.TimeoutExpired:
            b.kill()
            b.wait()
        (Path(cluster.info["state"]) / "extra-operator-b.pid").unlink(missing_ok=True)
        # The script's operator again, for whatever runs next.
        point_webhooks(cluster, int(cluster.info["webhook_port"]))
        subprocess.run(
            ["bash", str(SCRIPT), "operator", str(cluster.dir)],
            check=True,
            capture_output=True,
            timeout=180,
        )
