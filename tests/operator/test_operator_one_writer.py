"""Two replicas and a 10,000-pod backlog: never more than one writer (issue 14, item 6).

Two `finops-operator run` processes against one emulator, which already holds
10,000 GPU pods, one in ten of them without cost labels: the leader has a
backlog of 1,000 annotation patches and 1,000 Events to write. While it writes,
the leader is frozen (SIGSTOP, as a paused VM or a stalled node) for longer than
its Lease lasts; the standby takes the Lease over and goes on writing; then the
old leader wakes up (SIGCONT) with whatever it had under way: writes in its
threads (refused there, `NotSentError`, see tests/adapters/test_kube_api.py) and
decisions in its writer (kept pending, as a standby's are).

The emulator records every write with its User-Agent, which names the replica
(`finops-operator/<identity> (operator|lease)`), and the Lease writes give the
holder at each moment. Every write of a workload or an Event must come from the
replica that held the Lease when the write landed. The one exception, bounded
and named: a write a worker thread had already handed to the kernel when the
process froze lands when it wakes (lease-based election cannot fence those;
client-go's leader election says the same). At most one per worker thread.
"""

from __future__ import annotations

import collections
import contextlib
import datetime
import os
import signal
import time
from pathlib import Path
from typing import Any

from finops_devtools.devcluster.reviews import COMPLETE_LABELS, workload
from finops_operator.adapters.kube_api import WORKERS
from tests.support.kube_emulator import KubeEmulator, eventually
from tests.support.operator_process import OperatorProcess

PODS = 10_000
VIOLATING_EVERY = 10
NAMESPACES = 50
LEASE_SECONDS = 10  # the emulator answers slowly with 10,000 pods and two replicas


def fleet() -> list[dict[str, Any]]:
    objects: list[dict[str, Any]] = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": f"fleet-{n}"}}
        for n in range(NAMESPACES)
    ]
    for index in range(PODS):
        labels = {} if index % VIOLATING_EVERY == 0 else COMPLETE_LABELS
        pod = workload("Pod", f"gpu-{index:05d}", f"fleet-{index % NAMESPACES}", labels)
        pod["spec"]["nodeName"] = f"node-{index // 8}"
        pod["status"] = {"phase": "Running"}
        objects.append(pod)
    return objects


def identity(agent: str) -> str:
    """`replica-x` of `finops-operator/replica-x (lease)`."""
    return agent.removeprefix("finops-operator/").rsplit(" (", 1)[0]


def audit_writes(cluster: KubeEmulator, who: str | None = None) -> list[Any]:
    return [
        w
        for w in cluster.writes
        if w.agent.startswith("finops-operator/")
        and "/leases" not in w.path
        and w.status < 400
        and (who is None or identity(w.agent) == who)
    ]


def pod_patches(cluster: KubeEmulator, who: str) -> list[Any]:
    """The annotation patches of pods by `who`: its backlog under way."""
    return [w for w in audit_writes(cluster, who) if w.method == "PATCH" and "/pods/" in w.path]


def holders(cluster: KubeEmulator) -> list[tuple[float, str]]:
    """(when, who) of every Lease write that went through: who held it from then on."""
    return [
        (w.at, identity(w.agent))
        for w in cluster.writes
        if "/leases" in w.path and w.status < 400 and w.agent.startswith("finops-operator/")
    ]


def holder_at(history: list[tuple[float, str]], at: float) -> str | None:
    found = None
    for when, who in history:
        if when > at:
            break
        found = who
    return found


def logged_since(log: str, since: float, text: str) -> list[str]:
    """The log lines containing `text` logged after `since` (epoch seconds)."""
    found = []
    for line in log.splitlines():
        if text not in line:
            continue
        stamp = datetime.datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f")
        if stamp.timestamp() >= since - 1.0:
            found.append(line)
    return found


def test_two_replicas_with_a_backlog_never_write_at_once(tmp_path: Path) -> None:
    cluster = KubeEmulator().start()
    replicas: list[OperatorProcess] = []
    try:
        cluster.preload(fleet())
        args = ("--lease-seconds", str(LEASE_SECONDS))
        for index in range(2):
            replica = OperatorProcess(
                cluster, tmp_path / f"replica-{index}", {"mode": "audit"}, extra_args=args
            )
            replicas.append(replica)
            replica.start(timeout=300, wait_ready=False)

        # The leader: the holder of the first Lease write; it starts on its backlog.
        first = eventually(lambda: holders(cluster), timeout=120)[0][1]
        eventually(lambda: len(pod_patches(cluster, first)) >= 30, timeout=300)
        leader = next(r for r in replicas if r.log().count(f"{first} is now the leader"))
        standby = next(r for r in replicas if r is not leader)

        os.kill(leader.pid or 0, signal.SIGSTOP)
        frozen_at = time.monotonic()
        try:
            second = eventually(
                lambda: next(
                    (who for when, who in holders(cluster) if when > frozen_at and who != first),
                    None,
                ),
                timeout=120,
            )
            eventually(lambda: len(pod_patches(cluster, second)) >= 30, timeout=300)
        finally:
            os.kill(leader.pid or 0, signal.SIGCONT)
        woke_at, woke_wall = time.monotonic(), time.time()
        time.sleep(3 * LEASE_SECONDS)  # the old leader finds the Lease taken; its queue drains
        old_log = leader.log()
        for replica in replicas:
            replica.stop()

        history = holders(cluster)
        writes = audit_writes(cluster)
        late = []
        for write in writes:
            held_by = holder_at(history, write.at)
            if held_by != identity(write.agent):
                late.append(write)
        # The only writes by a replica not holding the Lease: ones already in flight when
        # the old leader froze, landing as it wakes; never its queue.
        assert len(late) <= WORKERS, late
        assert all(identity(w.agent) == first and w.at - woke_at < 2.0 for w in late), late
        # It woke to find the Lease taken and said so; whatever it had queued (writes in its
        # threads, or decisions in its writer) was refused or kept pending, never sent.
        assert logged_since(old_log, woke_wall, "lost the leadership"), old_log[-3000:]
        assert {identity(w.agent) for w in writes} == {first, second}
        assert f"{second} is now the leader" in standby.log()

        # One Warning per violating pod written so far, never two.
        per_object = collections.Counter(
            (e["involvedObject"]["namespace"], e["involvedObject"]["name"])
            for e in cluster.list("Event")
            if e["reason"] == "MissingCostLabels"
        )
        assert per_object and max(per_object.values()) == 1, per_object.most_common(3)
        assert all(int(name.split("-")[1]) % VIOLATING_EVERY == 0 for _, name in per_object)
    finally:
        for replica in replicas:
            if replica.pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(replica.pid, signal.SIGCONT)
            replica.stop()
        cluster.stop()
