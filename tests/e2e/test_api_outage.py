"""kube-apiserver stopped and started again under a running operator (issue 13).

`tests/faults/` breaks the API between the operator and kmock through a proxy;
here the real kube-apiserver goes away (`scripts/e2e-cluster.sh
restart-apiserver`: its process stopped by pid, started again with the same
flags, port and etcd, so no data is lost) while the operator and a second
replica keep running. What must hold once it is back, within a bounded time:
the same operator processes (no restart), exactly one of them leading (its
`finops_leader` gauge and the Lease's holder agree, and never two say 1), the
audit writing a new workload's annotation and exactly one Warning Event, the
webhooks judging again, and a deleted PrometheusRule put back.

Runs last in the session (conftest's module order): the API goes away for every
module, and `test_rbac` judges the operator's requests before these restarts.
"""

from __future__ import annotations

import os
import re
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from . import test_leader_election as leader
from . import test_prometheus_rules as rules
from .conftest import (
    COMPLIANT,
    MODE,
    SCRIPT,
    TEAM,
    VIOLATIONS_ANNOTATION,
    Cluster,
    gpu_workload,
    wait_until,
)

AUDIT_NS = "e2e-outage"
ENFORCE_NS = "e2e-outage-enforce"
LEASE_SECONDS = 15  # the shipped configuration
# A renewal lets its replica write until 4/5 of the Lease: two gauges read within
# the remaining fifth of one another cannot both say 1 unless two replicas lead.
MARGIN = LEASE_SECONDS / 5


def script(cluster: Cluster, *args: str, signal: str = "TERM", timeout: float = 180) -> None:
    env = dict(os.environ, E2E_APISERVER_SIGNAL=signal)
    proc = subprocess.run(
        ["bash", str(SCRIPT), args[0], str(cluster.dir), *args[1:]],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )
    assert proc.returncode == 0, f"e2e-cluster.sh {' '.join(args)}: {proc.stdout}{proc.stderr}"


def pid_of(cluster: Cluster, name: str) -> int:
    return int((Path(cluster.info["state"]) / f"{name}.pid").read_text())


def running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}").exists() and "zombie" not in Path(f"/proc/{pid}/status").read_text()


def identity(log: Path) -> str:
    """The identity the process writing `log` last announced as leader."""
    found = re.findall(r"(\S+) is now the leader: this replica writes", log.read_text())
    assert found, f"no leadership in {log}"
    return str(found[-1])


def gauge(cluster: Cluster, port: int) -> float | None:
    try:
        return cluster.metric("finops_leader", port)
    except OSError:
        return None


class LeaderSampler(threading.Thread):
    """Both replicas' `finops_leader`, every 0.2 s, for as long as it runs."""

    def __init__(self, cluster: Cluster, ports: tuple[int, int]) -> None:
        super().__init__(daemon=True)
        self.cluster, self.ports = cluster, ports
        self.samples: list[tuple[float, float | None, float | None]] = []
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.is_set():
            began = time.monotonic()
            a, b = (gauge(self.cluster, p) for p in self.ports)
            if time.monotonic() - began < MARGIN:  # only reads close enough to compare
                self.samples.append((began, a, b))
            self.stopped.wait(0.2)

    def stop(self) -> list[tuple[float, float | None, float | None]]:
        self.stopped.set()
        self.join(timeout=10)
        return self.samples


def warning_events(cluster: Cluster, namespace: str, name: str) -> list[dict[str, Any]]:
    events = cluster.get("events", None, namespace)["items"]
    return [e for e in events if e["involvedObject"]["name"] == name and e.get("type") == "Warning"]


def denied(cluster: Cluster) -> str:
    """The webhook's refusal of an untagged GPU Pod in enforce (empty when admitted)."""
    proc = cluster.apply(
        gpu_workload("Pod", "untagged", ENFORCE_NS, {TEAM: "search-platform"}),
        "--dry-run=server",
        check=False,
    )
    if proc.returncode != 0 and 'webhook "labels.finops.resilio.tech" denied' in proc.stderr:
        return proc.stderr
    return ""


@pytest.fixture
def standby(cluster: Cluster) -> Iterator[tuple[subprocess.Popen[bytes], int, Path]]:
    """The script's operator leading, a second replica beside it; afterwards the
    cluster as the session had it: the API up, the script's operator leading."""
    a_port = int(cluster.info["metrics_port"])
    wait_until(lambda: gauge(cluster, a_port) == 1, timeout=60, what="the script's operator leads")
    b, b_port, _, b_log = leader.start_second_operator(cluster)
    try:
        wait_until(
            lambda: b.poll() is None and cluster.metrics(b_port),
            timeout=60,
            what="the second replica serves /metrics",
        )
        yield b, b_port, b_log
    finally:
        script(cluster, "start-apiserver")  # a no-op unless a test failed while it was down
        b.terminate()
        try:
            b.wait(timeout=20)
        except subprocess.TimeoutExpired:
            b.kill()
            b.wait()
        (Path(cluster.info["state"]) / "extra-operator-b.pid").unlink(missing_ok=True)
        script(cluster, "operator")  # a no-op while it runs
        # If the second replica led, the Lease expires and the first one takes it.
        wait_until(
            lambda: gauge(cluster, a_port) == 1,
            timeout=LEASE_SECONDS * 3,
            what="the script's operator leads again",
        )


def test_the_api_server_goes_down_and_comes_back(
    cluster: Cluster, standby: tuple[subprocess.Popen[bytes], int, Path]
) -> None:
    b, b_port, b_log = standby
    a_pid, a_port = pid_of(cluster, "operator"), int(cluster.info["metrics_port"])
    api_pid = pid_of(cluster, "kube-apiserver")
    cluster.namespace(AUDIT_NS, {MODE: "audit"})
    cluster.namespace(ENFORCE_NS, {MODE: "enforce"})
    wait_until(lambda: denied(cluster), timeout=30, what="the enforce namespace is judged")
    offset = cluster.log_size()

    sampler = LeaderSampler(cluster, (a_port, b_port))
    sampler.start()
    began = time.monotonic()
    try:
        # SIGTERM: the API server stops listening at once, drains its watches for
        # up to 10 s (then SIGKILL), and stays down 15 s counted from the signal:
        # the leader's renewals fail past its deadline (4/5 of the 15 s Lease).
        script(cluster, "restart-apiserver", "15")
        back = time.monotonic()
        assert pid_of(cluster, "kube-apiserver") != api_pid

        def one_leader() -> tuple[float | None, float | None] | None:
            a, b_ = gauge(cluster, a_port), gauge(cluster, b_port)
            return (a, b_) if (a, b_) in ((1, 0), (0, 1)) else None

        a, _ = wait_until(one_leader, timeout=45, what="exactly one replica leads again")
        led = time.monotonic()
        leader_log = cluster.operator_log if a == 1 else b_log
        holder = cluster.get("lease", "finops-operator", "finops-system")["spec"]["holderIdentity"]
        assert holder == identity(leader_log), (holder, leader_log)

        # A workload made after the outage: the audit (its watches reopened) writes
        # its annotation and one Warning Event, once.
        cluster.apply(gpu_workload("Job", "after-outage", AUDIT_NS, {TEAM: "search-platform"}))
        wait_until(
            lambda: (
                VIOLATIONS_ANNOTATION
                in (
                    cluster.get("job", "after-outage", AUDIT_NS)["metadata"].get("annotations")
                    or {}
                )
            ),
            timeout=60,
            what="the new Job annotated",
        )
        wait_until(
            lambda: warning_events(cluster, AUDIT_NS, "after-outage"),
            timeout=30,
            what="a Warning Event about the new Job",
        )
        # Admission: an untagged GPU Pod refused by the webhook with its message, a
        # compliant one admitted.
        message = wait_until(lambda: denied(cluster), timeout=10, what="the webhook denies")
        assert "asks for a GPU but its cost labels are missing or invalid" in message
        cluster.apply(gpu_workload("Pod", "tagged", ENFORCE_NS, COMPLIANT), "--dry-run=server")
        time.sleep(3)  # room for a second write, if there were one
        events = warning_events(cluster, AUDIT_NS, "after-outage")
        assert sum(int(e.get("count") or 1) for e in events) == 1, events
    finally:
        samples = sampler.stop()

    # The same processes, and never two leaders.
    assert running(a_pid) and pid_of(cluster, "operator") == a_pid, cluster.log_since(offset)
    assert b.poll() is None, b_log.read_text()[-4000:]
    two = [s for s in samples if s[1] == 1 and s[2] == 1]
    assert not two, two
    assert samples[-1][0] > back, "no sample after the API came back"
    print(
        f"down and up in {back - began:.1f}s, one leader {led - back:.1f}s later, "
        f"{len(samples)} samples; operator log:\n{cluster.log_since(offset)[-3000:]}"
    )


def test_a_rule_deleted_after_a_crash_of_the_api_server_is_put_back(
    cluster: Cluster, standby: tuple[subprocess.Popen[bytes], int, Path]
) -> None:
    a_pid = pid_of(cluster, "operator")
    cluster.namespace(rules.NS, rules.NS_LABELS)
    cluster.apply(rules.policy("outage"))
    body = wait_until(lambda: rules.ready(cluster, "outage"), timeout=60, what="CostPolicy Ready")
    name, uid = body["status"]["ruleName"], body["metadata"]["uid"]
    assert rules.rule(cluster, name) is not None

    # SIGKILL: a crash, every connection reset; etcd keeps the data.
    script(cluster, "restart-apiserver", "8", signal="KILL")
    cluster.kubectl("delete", "prometheusrule", name, "-n", rules.NS)

    def put_back() -> Any:
        prom = rules.rule(cluster, name)
        return prom if prom and prom["metadata"]["ownerReferences"][0]["uid"] == uid else None

    # 120 s: after a SIGKILL the API server answers 403 (authorizer not loaded) and 429
    # (storage re-initializing) for a while, and kopf's watch retries back off (up to
    # 34 s a try); at the end of a full session the rule came back after about 65 s.
    wait_until(put_back, timeout=120, what="the PrometheusRule put back after the restart")
    assert rules.ready(cluster, "outage")
    assert pid_of(cluster, "operator") == a_pid and running(a_pid)
    assert standby[0].poll() is None
    cluster.kubectl("delete", "costpolicy", "outage", "-n", rules.NS)
