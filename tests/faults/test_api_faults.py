"""The operator as real processes, with faults injected between them and the API.

Every test runs `finops-operator run` (Lease of 3 s) against the emulator through
an `ApiProxy` (finops_devtools.devcluster.api_proxy), breaks the API in one way,
and states what must hold:

- one leader at a time: the `finops_leader` gauge of every replica is sampled
  all along, and never two say 1 (the gauge reads the leader's deadline live);
- no lost or doubled write: each untagged workload gets exactly one annotation
  PATCH and one Warning Event that reach the emulator (its request log);
- recovery without a restart, within a bounded time: a leader again, the Lease
  and the recording rules back in the API.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from finops_devtools.devcluster.api_proxy import ApiProxy
from finops_devtools.devcluster.reviews import workload
from finops_operator.domain import conventions
from tests.support.kube_emulator import KubeEmulator, eventually
from tests.support.operator_process import OperatorProcess

NAMESPACE = conventions.OPERATOR_NAMESPACE
LEASE_ARGS = ("--lease-seconds", "3")


@pytest.fixture
def stack() -> Iterator[contextlib.ExitStack]:
    """Everything a test starts is stopped here, whatever happens."""
    with contextlib.ExitStack() as exits:
        yield exits


def emulator(stack: contextlib.ExitStack) -> KubeEmulator:
    cluster = KubeEmulator().start()
    stack.callback(_quietly(cluster.stop))
    return cluster


def proxy_to(stack: contextlib.ExitStack, cluster: KubeEmulator) -> ApiProxy:
    proxy = ApiProxy(cluster.url).start()
    stack.callback(_quietly(proxy.stop))
    return proxy


def replica(
    stack: contextlib.ExitStack,
    proxy: ApiProxy,
    workdir: Path,
    start_timeout: float = 30.0,
    args: tuple[str, ...] = LEASE_ARGS,
) -> OperatorProcess:
    process = OperatorProcess(
        proxy,
        workdir,
        {"mode": "audit"},
        extra_args=args,
    )
    stack.callback(process.stop)
    return process.start(timeout=start_timeout)


def _quietly(stop: Callable[[], Any]) -> Callable[[], None]:
    """`stop` once (a second stop of an emulator would wait on a stopped loop), no raise."""
    done: list[bool] = []

    def run() -> None:
        if done:
            return
        done.append(True)
        with contextlib.suppress(Exception):
            stop()

    return run


def leader_flag(process: OperatorProcess) -> float:
    try:
        text = process.metrics()
    except OSError:
        return 0.0
    line = next(t for t in text.splitlines() if t.startswith("finops_leader "))
    return float(line.split()[1])


class LeaderSampler:
    """Samples every replica's `finops_leader` gauge in the background; the most at once.

    The reads of one sample are sequential, so a sample proves two leaders only when
    all its reads fit in less than the Lease's safety margin (0.6 s for a 3 s Lease):
    a leader stops writing that long before any other may take over. A sample that
    took longer (a replica slow to answer under load) is not counted.
    """

    def __init__(self, replicas: list[OperatorProcess], every: float = 0.05) -> None:
        self.replicas = replicas
        self.every = every
        self.tight = 0.5
        self.most = 0.0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            total = sum(leader_flag(p) for p in self.replicas)
            if time.monotonic() - started < self.tight:
                self.most = max(self.most, total)
                self.samples += 1
            time.sleep(self.every)

    def __enter__(self) -> LeaderSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def one_leader(replicas: list[OperatorProcess]) -> OperatorProcess | None:
    flags = [leader_flag(p) for p in replicas]
    return (
        replicas[flags.index(1.0)] if sorted(flags)[-2:] == [0.0, 1.0] or flags == [1.0] else None
    )


def lease_holder(cluster: KubeEmulator) -> str | None:
    lease = cluster.get("Lease", NAMESPACE, "finops-operator")
    return ((lease or {}).get("spec") or {}).get("holderIdentity")


def recording_rules(cluster: KubeEmulator) -> Any:
    return cluster.get("PrometheusRule", NAMESPACE, conventions.RECORDING_RULES_NAME)


def writes_about(cluster: KubeEmulator, kind: str, namespace: str, name: str) -> tuple[int, int]:
    """(annotation PATCHes that reached the API, Warning Events stored) for one workload."""
    patches = len(cluster.requests_to("PATCH", cluster.path(kind, namespace, name)))
    events = [
        e
        for e in cluster.list("Event", namespace)
        if e["involvedObject"]["name"] == name and e["reason"] == conventions.EVENT_REASON_VIOLATION
    ]
    return patches, len(events)


def annotated(cluster: KubeEmulator, kind: str, namespace: str, name: str) -> Any:
    obj = cluster.get(kind, namespace, name) or {}
    return (obj.get("metadata", {}).get("annotations") or {}).get(conventions.VIOLATIONS_ANNOTATION)


def assert_written_once(cluster: KubeEmulator, names: list[str], kind: str = "Deployment") -> None:
    """Each workload annotated, then (after a settle) one PATCH and one Event each."""
    for name in names:
        eventually(lambda n=name: annotated(cluster, kind, "team-a", n), timeout=20)
        eventually(lambda n=name: writes_about(cluster, kind, "team-a", n)[1], timeout=20)
    time.sleep(3)  # a doubled write would come within a renewal or two
    assert {n: writes_about(cluster, kind, "team-a", n) for n in names} == dict.fromkeys(
        names, (1, 1)
    )


# --- the tests --------------------------------------------------------------------------


def test_api_down_at_start_a_replica_leads_once_it_is_back(
    stack: contextlib.ExitStack, tmp_path: Path
) -> None:
    cluster = emulator(stack)
    proxy = proxy_to(stack, cluster)
    proxy.down()
    timer = threading.Timer(15, proxy.up)
    timer.start()
    stack.callback(timer.cancel)
    process = replica(stack, proxy, tmp_path / "r", start_timeout=45)
    eventually(lambda: leader_flag(process) == 1.0, timeout=15)
    assert lease_holder(cluster)
    eventually(lambda: recording_rules(cluster), timeout=10)
    cluster.create(workload("Deployment", name="after-outage", namespace="team-a"))
    assert_written_once(cluster, ["after-outage"])


def test_api_restarted_empty_the_lease_and_the_rules_come_back(
    stack: contextlib.ExitStack, tmp_path: Path
) -> None:
    first = KubeEmulator().start()
    stopped = _quietly(first.stop)
    stack.callback(stopped)
    proxy = proxy_to(stack, first)
    replicas = [replica(stack, proxy, tmp_path / f"r{i}") for i in range(2)]
    eventually(lambda: one_leader(replicas), timeout=15)
    eventually(lambda: recording_rules(first), timeout=10)
    with LeaderSampler(replicas) as sampler:
        proxy.down()
        stopped()
        second = emulator(stack)
        proxy.upstream = second.url
        proxy.up()
        eventually(lambda: lease_holder(second), timeout=15)
        eventually(lambda: recording_rules(second), timeout=20)
        eventually(lambda: one_leader(replicas), timeout=15)
        second.create(workload("Deployment", name="after-restart", namespace="team-a"))
        assert_written_once(second, ["after-restart"])
    assert sampler.samples > 20 and sampler.most == 1.0
    for process in replicas:  # before the emulator, which would wait on their watches
        process.stop()


def test_a_partition_of_the_leader_alone_never_makes_two_leaders(
    stack: contextlib.ExitStack, tmp_path: Path
) -> None:
    cluster = emulator(stack)
    proxies = [proxy_to(stack, cluster) for _ in range(2)]
    replicas = [replica(stack, proxies[i], tmp_path / f"r{i}") for i in range(2)]
    leader = eventually(lambda: one_leader(replicas), timeout=15)
    cut_off = proxies[replicas.index(leader)]
    with LeaderSampler(replicas) as sampler:
        cut_off.blackhole()
        cut_off.cut_watches()
        cluster.create(workload("Deployment", name="during-partition", namespace="team-a"))
        time.sleep(3)
        cut_off.heal()
        eventually(lambda: one_leader(replicas), timeout=15)
        cluster.create(workload("Deployment", name="after-partition", namespace="team-a"))
        assert_written_once(cluster, ["during-partition", "after-partition"])
    assert sampler.samples > 40 and sampler.most == 1.0


def test_409_429_and_500_answers_lose_and_double_nothing(
    stack: contextlib.ExitStack, tmp_path: Path
) -> None:
    cluster = emulator(stack)
    proxy = proxy_to(stack, cluster)
    process = replica(stack, proxy, tmp_path / "r")
    eventually(lambda: leader_flag(process) == 1.0, timeout=15)
    deployments = r"/apis/apps/v1/namespaces/team-a/deployments/"
    proxy.answer(409, method="PATCH", path=deployments + "conflict$")
    proxy.answer(429, method="PATCH", path=deployments + "throttled$", times=2)
    proxy.answer(500, method="POST", path=r"/namespaces/team-a/events$", times=2)
    proxy.answer(500, method="PATCH", path=r"/leases/finops-operator$")
    names = ["conflict", "throttled", "plain"]
    for name in names:
        cluster.create(workload("Deployment", name=name, namespace="team-a"))
    assert_written_once(cluster, names)
    assert {status for status, *_ in proxy.injected} == {409, 429, 500}
    assert leader_flag(process) == 1.0


def test_without_leader_election_a_failed_audit_write_is_retried(
    stack: contextlib.ExitStack, tmp_path: Path
) -> None:
    # One annotation PATCH and the first Event POST fail; nothing about the workloads
    # changes afterwards, so no watch event comes to retry them: the retry must.
    cluster = emulator(stack)
    proxy = proxy_to(stack, cluster)
    args = ("--no-leader-election", *LEASE_ARGS)
    process = replica(stack, proxy, tmp_path / "r", args=args)
    assert leader_flag(process) == 1.0
    deployments = r"/apis/apps/v1/namespaces/team-a/deployments/"
    proxy.answer(500, method="PATCH", path=deployments + "first-patch-fails$")
    proxy.answer(500, method="POST", path=r"/namespaces/team-a/events$")
    names = ["first-patch-fails", "another"]
    for name in names:
        cluster.create(workload("Deployment", name=name, namespace="team-a"))
    assert_written_once(cluster, names)
    assert sorted(method for _, method, _ in proxy.injected) == ["PATCH", "POST"]
    assert lease_holder(cluster) is None  # this mode takes no Lease


def test_cut_watch_streams_lose_and_double_nothing(
    stack: contextlib.ExitStack, tmp_path: Path
) -> None:
    cluster = emulator(stack)
    proxy = proxy_to(stack, cluster)
    process = replica(stack, proxy, tmp_path / "r")
    eventually(lambda: leader_flag(process) == 1.0, timeout=15)
    names = [f"cut-{index}" for index in range(6)]
    cuts = 0
    for name in names:
        cluster.create(workload("Deployment", name=name, namespace="team-a"))
        time.sleep(0.3)
        cuts += proxy.cut_watches()
    assert cuts > 0
    assert_written_once(cluster, names)


def test_an_event_lost_with_its_leader_is_posted_by_the_next_without_doubling(
    stack: contextlib.ExitStack, tmp_path: Path
) -> None:
    """Issue 19, item 8: the leader dies between a patch and its Event (299 Events for 300
    pods). The next leader's catch-up posts the missing Event, and only that one."""
    cluster = emulator(stack)
    proxy = proxy_to(stack, cluster)
    first = replica(stack, proxy, tmp_path / "a")
    eventually(lambda: leader_flag(first) == 1.0, timeout=15)
    cluster.create(workload("Deployment", name="posted", namespace="team-a"))
    eventually(lambda: writes_about(cluster, "Deployment", "team-a", "posted")[1], timeout=20)
    # Every Event POST fails from now on: the leader patches, then cannot post.
    lost = proxy.answer(500, method="POST", path=r"/namespaces/team-a/events$", times=10**6)
    cluster.create(workload("Deployment", name="lost-event", namespace="team-a"))
    eventually(lambda: annotated(cluster, "Deployment", "team-a", "lost-event"), timeout=20)
    assert first.process is not None
    first.process.kill()  # SIGKILL: no goodbye, its pending Event dies with it
    first.process.wait(timeout=10)
    lost.times = lost.hits  # the API accepts Events again
    second = replica(stack, proxy, tmp_path / "b")
    eventually(lambda: leader_flag(second) == 1.0, timeout=20)
    assert_written_once(cluster, ["posted", "lost-event"])
