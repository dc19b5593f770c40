"""Benchmark the operator at fleet scale: sync time, memory, CPU and API traffic.

A GPU fleet (`--pods` running GPU pods, half as many non-GPU pods, their owners:
Deployments with their ReplicaSets, StatefulSets and Jobs, one namespace per 25
GPU pods, 8-GPU nodes and CPU nodes; one GPU workload in ten lacks its cost
labels) is loaded into a Kubernetes API before the operator starts, then
`finops-operator run` (mode `audit`) is started as a real process and measured:

- sync time: from the start of the process until `/readyz` answers 200 and
  `/metrics` has an allocation series for every running GPU pod;
- RSS when synced, peak RSS (`VmHWM`), CPU seconds (user + system) to sync;
- every API request, by verb and resource, through a recording HTTP proxy that
  sits between the operator and the API (the operator's kubeconfig points at
  it): during the sync, and during `--quiet` seconds once synced;
- the Events the operator posted, and its audit PATCHes;
- one `/metrics` scrape: size (plain and gzip) and the operator's CPU for it.

Targets (`--target`):

- `emulator` (default): the test emulator (`finops_devtools.devcluster.emulator`,
  kmock), the objects stored directly (`KubeEmulator.preload`, no HTTP). The
  emulator runs in this process, on its own thread: its CPU is reported
  separately from the operator's, and so is the proxy's (`proxy_cpu_seconds`).
- `controlplane`: a real kube-apiserver and etcd (`scripts/e2e-cluster.sh up`,
  without the operator; its kube-controller-manager is stopped so that no
  controller acts on the bench's owners and kubelet-less pods; the install's
  webhooks are deleted: the fleet predates the operator), objects created over
  HTTP (pods with `spec.nodeName`, then their status set to Running). The
  operator runs with the install's own ServiceAccount token (its RBAC).

With `--tracemalloc` the operator runs under tracemalloc and writes its top
allocation sites once synced (see `bench/traced_operator.py`). With `--profile
FILE` py-spy samples the operator (the thread holding the GIL) until it is
synced and the report lists where its time went (py-spy pauses the process at
each sample: compare profiled runs with each other only).

Once synced, the operator still has writes the sync set off (the audit's last
PATCHes and Events, each namespace's first PolicyReport): the benchmark waits
until nothing but the Lease has been sent for 5 s (`settle_seconds`,
`requests_while_settling`), then watches `--quiet` seconds.

Run from the repository root:  .venv/bin/python bench/scale.py --pods 10000 [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import collections
import contextlib
import gzip
import json
import os
import platform
import re
import signal
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
import yaml  # noqa: E402

from finops_devtools.devcluster.api_proxy import ApiProxy, Recorded  # noqa: E402
from finops_devtools.devcluster.emulator import KubeEmulator  # noqa: E402
from finops_devtools.devcluster.operator_runner import CLI_ENTRY, OperatorProcess  # noqa: E402

GPU_PODS_PER_NAMESPACE = 25
GPUS_PER_NODE = 8
CPU_PODS_PER_NODE = 50
VIOLATING_EVERY = 10  # one GPU workload in ten lacks its cost labels
ALLOCATION = "finops_pod_gpu_allocation"
# What bench/traced_operator.py writes, in the operator's work directory.
TRACE_FILE = "tracemalloc.txt"
TICK = 2.0**-4

COST_LABELS = {
    "resilio.tech/team": "team-{n}",
    "resilio.tech/feature": "feature-{n}",
    "resilio.tech/environment": "production",
    "resilio.tech/workload-type": "inference",
    "resilio.tech/cost-center": "cc-{n}",
}


# ----------------------------------------------------------------------------- the fleet


def _meta(name: str, namespace: str | None, labels: dict[str, str], **more: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "labels": labels, **more}
    if namespace is not None:
        meta["namespace"] = namespace
    return meta


def _container(gpus: int) -> dict[str, Any]:
    limits: dict[str, Any] = {"cpu": "4", "memory": "16Gi"}
    if gpus:
        limits["nvidia.com/gpu"] = str(gpus)
    return {
        "name": "server",
        "image": "vllm/vllm-openai:v0.6.3" if gpus else "nginx:1.27",
        "args": ["--model", "meta-llama/Llama-3.1-8B-Instruct"] if gpus else [],
        "env": [{"name": "LOG_LEVEL", "value": "info"}, {"name": "PORT", "value": "8000"}],
        "ports": [{"containerPort": 8000, "protocol": "TCP"}],
        "resources": {"limits": limits, "requests": {"cpu": "2", "memory": "8Gi"}},
        "terminationMessagePath": "/dev/termination-log",
        "imagePullPolicy": "IfNotPresent",
    }


def _pod_spec(gpus: int) -> dict[str, Any]:
    return {
        "containers": [_container(gpus)],
        "restartPolicy": "Always",
        "terminationGracePeriodSeconds": 30,
        "dnsPolicy": "ClusterFirst",
        "serviceAccountName": "default",
        "schedulerName": "default-scheduler",
        "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
        if gpus
        else [],
    }


def _running(node: str, index: int) -> dict[str, Any]:
    return {
        "phase": "Running",
        "hostIP": "10.0.0.1",
        "podIP": f"10.{index // 65536 % 256}.{index // 256 % 256}.{index % 256}",
        "startTime": "2026-11-01T00:00:00Z",
        "qosClass": "Burstable",
        "conditions": [
            {"type": t, "status": "True", "lastTransitionTime": "2026-11-01T00:00:00Z"}
            for t in ("Initialized", "Ready", "ContainersReady", "PodScheduled")
        ],
        "containerStatuses": [
            {
                "name": "server",
                "ready": True,
                "restartCount": 0,
                "image": "vllm/vllm-openai:v0.6.3",
                "imageID": "sha256:" + "0" * 64,
                "containerID": f"containerd://{index:064x}",
                "started": True,
                "state": {"running": {"startedAt": "2026-11-01T00:00:00Z"}},
            }
        ],
        "_node": node,
    }


@dataclass
class Fleet:
    """The objects to load, in the order to create them, and what the operator should see."""

    objects: list[dict[str, Any]] = field(default_factory=list)
    gpu_pods: int = 0
    other_pods: int = 0
    namespaces: int = 0
    nodes: int = 0
    owners: collections.Counter[str] = field(default_factory=collections.Counter)
    violating_workloads: int = 0


def fleet(gpu_pods: int, other_pods: int | None = None) -> Fleet:
    """A fleet of `gpu_pods` running 1-GPU pods, and `other_pods` CPU pods (default half)."""
    other = gpu_pods // 2 if other_pods is None else other_pods
    result = Fleet(gpu_pods=gpu_pods, other_pods=other)
    namespaces = max(1, gpu_pods // GPU_PODS_PER_NAMESPACE)
    result.namespaces = namespaces
    for n in range(namespaces):
        result.objects.append(
            {"apiVersion": "v1", "kind": "Namespace", "metadata": _meta(f"ns-{n:05d}", None, {})}
        )
    gpu_nodes = -(-gpu_pods // GPUS_PER_NODE)
    cpu_nodes = -(-other // CPU_PODS_PER_NODE)
    result.nodes = gpu_nodes + cpu_nodes
    for n in range(gpu_nodes):
        result.objects.append(_node(f"gpu-{n:05d}", gpus=GPUS_PER_NODE))
    for n in range(cpu_nodes):
        result.objects.append(_node(f"cpu-{n:05d}", gpus=0))
    made = {"gpu": 0, "cpu": 0}
    workload = 0
    # GPU workloads in turn: a Deployment of 4, a StatefulSet of 4, two Jobs of 1; CPU: Deployments.
    shapes = [("Deployment", 4), ("StatefulSet", 4), ("Job", 1), ("Job", 1)]
    while made["gpu"] < gpu_pods or made["cpu"] < other:
        gpu = made["gpu"] < gpu_pods
        kind, replicas = shapes[workload % len(shapes)] if gpu else ("Deployment", 4)
        left = (gpu_pods - made["gpu"]) if gpu else (other - made["cpu"])
        replicas = min(replicas, left)
        namespace = f"ns-{workload % namespaces:05d}"
        violating = gpu and workload % VIOLATING_EVERY == 0
        result.violating_workloads += violating
        labels = (
            {} if violating else {k: v.format(n=workload % 200) for k, v in COST_LABELS.items()}
        )
        labels = {"app": f"w{workload}", **labels}
        name = f"{'gpu' if gpu else 'web'}-{workload:06d}"
        first = made["gpu" if gpu else "cpu"]
        pods = _workload(kind, name, namespace, labels, replicas, gpus=1 if gpu else 0, first=first)
        result.owners.update(obj["kind"] for obj in pods if obj["kind"] != "Pod")
        result.objects.extend(pods)
        made["gpu" if gpu else "cpu"] += replicas
        workload += 1
    return result


def _node(name: str, gpus: int) -> dict[str, Any]:
    labels = {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux"}
    capacity = {"cpu": "96", "memory": "1Ti", "pods": "110"}
    if gpus:
        labels["nvidia.com/gpu.product"] = "NVIDIA-H100-80GB-HBM3"
        labels["nvidia.com/gpu.count"] = str(gpus)
        capacity["nvidia.com/gpu"] = str(gpus)
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": _meta(name, None, labels),
        "spec": {},
        "status": {"capacity": capacity, "allocatable": dict(capacity)},
    }


def _owner_ref(owner: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def _uid(kind: str, name: str, namespace: str) -> str:
    digest = abs(hash((kind, name, namespace))) % (16**12)
    return f"00000000-0000-4000-8000-{digest:012x}"


def _workload(
    kind: str,
    name: str,
    namespace: str,
    labels: dict[str, str],
    replicas: int,
    gpus: int,
    first: int,
) -> list[dict[str, Any]]:
    pod_spec = _pod_spec(gpus)
    if kind == "Job":
        pod_spec["restartPolicy"] = "Never"
    template = {"metadata": {"labels": labels}, "spec": pod_spec}
    selector = {"matchLabels": {"app": labels["app"]}}
    api = {"Deployment": "apps/v1", "StatefulSet": "apps/v1", "Job": "batch/v1"}[kind]
    spec: dict[str, Any] = {"template": template, "selector": selector}
    if kind == "Job":
        spec.update(parallelism=replicas, completions=replicas, backoffLimit=6)
    else:
        spec["replicas"] = replicas
    if kind == "StatefulSet":
        spec["serviceName"] = name
    owner: dict[str, Any] = {
        "apiVersion": api,
        "kind": kind,
        "metadata": _meta(name, namespace, dict(labels), uid=_uid(kind, name, namespace)),
        "spec": spec,
    }
    objects = [owner]
    pod_owner = owner
    if kind == "Deployment":
        rs_name = f"{name}-5d8f7c9b4"
        rs_meta = _meta(
            rs_name, namespace, dict(labels), uid=_uid("ReplicaSet", rs_name, namespace)
        )
        rs_meta["ownerReferences"] = [_owner_ref(owner)]
        replicaset: dict[str, Any] = {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": rs_meta,
        }
        replicaset["spec"] = {"replicas": replicas, "template": template, "selector": selector}
        objects.append(replicaset)
        pod_owner = replicaset
    prefix = "gpu" if gpus else "cpu"
    for i in range(replicas):
        index = first + i
        node = f"{prefix}-{index // (GPUS_PER_NODE if gpus else CPU_PODS_PER_NODE):05d}"
        pod_name = f"{pod_owner['metadata']['name']}-{i if kind == 'StatefulSet' else f'x{i:04d}'}"
        meta = _meta(pod_name, namespace, dict(labels), ownerReferences=[_owner_ref(pod_owner)])
        status = _running(node, index)
        status.pop("_node")
        objects.append(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": meta,
                "spec": {**pod_spec, "nodeName": node},
                "status": status,
            }
        )
    return objects


# ----------------------------------------------------------------------------- the proxy


def tally(records: list[Recorded]) -> dict[str, int]:
    counts = collections.Counter(f"{r.verb} {r.resource}" for r in records)
    return dict(sorted(counts.items()))


# ----------------------------------------------------------------------------- processes


def _proc_status(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM in bytes."""
    found: dict[str, int] = {}
    with Path(f"/proc/{pid}/status").open() as status:
        for line in status:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                found[key] = int(value.split()[0]) * 1024
    return found


def cpu_seconds(pid: int | None = None, threads: bool = False) -> float:
    """User + system CPU seconds of a process (this one when None)."""
    if pid is None:
        times = os.times()
        return times.user + times.system
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def thread_cpu_seconds(thread: threading.Thread) -> float:
    """CPU of one thread of this process (the emulator's, the proxy's), from /proc."""
    with contextlib.suppress(OSError):
        stat = Path(f"/proc/{os.getpid()}/task/{thread.native_id}/stat").read_text()
        fields = stat.rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return 0.0


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def count_allocation_series(text: str) -> int:
    return sum(1 for line in text.splitlines() if line.startswith(ALLOCATION + "{"))


# ----------------------------------------------------------------------------- targets

EMULATOR_THREADS: list[threading.Thread] = []


@contextlib.contextmanager
def emulator_target(world: Fleet) -> Iterator[tuple[str, ssl.SSLContext | None, str | None]]:
    cluster = KubeEmulator()
    cluster.start()
    EMULATOR_THREADS.append(cluster._thread)
    try:
        started = time.monotonic()
        cluster.preload(world.objects)
        print(f"preloaded {len(world.objects)} objects in {time.monotonic() - started:.1f} s",
              file=sys.stderr)  # fmt: skip
        yield cluster.url, None, None
    finally:
        cluster.stop()


def wait_for_calm(
    pidfiles: list[Path], below: float = 0.1, window: float = 5.0, timeout: float = 180.0
) -> float:
    """Seconds until the processes used less than `below` of a core over `window` s."""
    pids = [int(f.read_text()) for f in pidfiles if f.exists()]
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        before = sum(cpu_seconds(pid) for pid in pids)
        time.sleep(window)
        if (sum(cpu_seconds(pid) for pid in pids) - before) / window < below:
            break
    return time.monotonic() - started


@contextlib.contextmanager
def controlplane_target(
    world: Fleet, workdir: Path
) -> Iterator[tuple[str, ssl.SSLContext | None, str | None]]:
    """`scripts/e2e-cluster.sh up` without the operator; kube-controller-manager stopped."""
    script = ROOT / "scripts" / "e2e-cluster.sh"
    cluster = workdir / "cluster"
    env = {**os.environ, "E2E_NO_OPERATOR": "1"}
    # Its status to stderr: stdout is the report (--json), here and in bench/audit_reports.py.
    subprocess.run([str(script), "up", str(cluster)], env=env, check=True, timeout=1800,
                   stdout=sys.stderr)  # fmt: skip
    try:
        kcm = cluster / "state" / "kube-controller-manager.pid"
        if kcm.exists():  # started by the script above, for this bench: stop it by its pid
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(kcm.read_text()), signal.SIGTERM)
        admin = yaml.safe_load((cluster / "kubeconfig").read_text())
        server = admin["clusters"][0]["cluster"]["server"]
        ca_pem = base64.b64decode(admin["clusters"][0]["cluster"]["certificate-authority-data"])
        context = ssl.create_default_context(cadata=ca_pem.decode())
        admin_token = admin["users"][0]["user"]["token"]
        started = time.monotonic()
        asyncio.run(create_all(server, context, admin_token, world))
        print(f"created {len(world.objects)} objects over HTTP in "
              f"{time.monotonic() - started:.1f} s", file=sys.stderr)  # fmt: skip
        # The fleet predates the operator: the control plane has absorbed it (etcd's
        # compaction and fsyncs, the watch cache) before the operator starts.
        calm = wait_for_calm(
            [cluster / "state" / f"{name}.pid" for name in ("etcd", "kube-apiserver")]
        )
        print(f"control plane calm after {calm:.0f} s", file=sys.stderr)
        # The install's own ServiceAccount, as the Deployment runs it (its RBAC applies).
        kubectl = Path((cluster / "state" / "bin").read_text().strip()) / "kubectl"
        token = subprocess.run(
            [str(kubectl), "--kubeconfig", str(cluster / "kubeconfig"), "-n", "finops-system",
             "create", "token", "finops-operator", "--duration", "24h"],
            capture_output=True, text=True, check=True, timeout=60,
        ).stdout.strip()  # fmt: skip
        yield server, context, token
    finally:
        subprocess.run(
            [str(script), "down", str(cluster)], check=False, timeout=120, stdout=sys.stderr
        )


_PLURAL = {
    "Namespace": "/api/v1/namespaces",
    "ServiceAccount": "/api/v1/namespaces/{ns}/serviceaccounts",
    "Node": "/api/v1/nodes",
    "Pod": "/api/v1/namespaces/{ns}/pods",
    "Deployment": "/apis/apps/v1/namespaces/{ns}/deployments",
    "ReplicaSet": "/apis/apps/v1/namespaces/{ns}/replicasets",
    "StatefulSet": "/apis/apps/v1/namespaces/{ns}/statefulsets",
    "Job": "/apis/batch/v1/namespaces/{ns}/jobs",
}


async def create_all(server: str, context: ssl.SSLContext, token: str, world: Fleet) -> None:
    """Create the fleet with 32 requests in flight: owners first (pods refer to their uids)."""
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    connector = aiohttp.TCPConnector(limit=32, ssl=context)
    uids: dict[str, str] = {}  # the bench's uid -> the server's
    async with aiohttp.ClientSession(connector=connector, headers=headers) as session:

        async def create(obj: dict[str, Any]) -> None:
            obj = json.loads(json.dumps(obj))
            meta = obj["metadata"]
            path = _PLURAL[obj["kind"]].format(ns=meta.get("namespace"))
            bench_uid = meta.pop("uid", None)
            for ref in meta.get("ownerReferences", []):
                ref["uid"] = uids[ref["uid"]]
            status = obj.pop("status", None)
            if obj["kind"] == "Job":
                obj["spec"]["suspend"] = True  # no controller runs; and none should
                obj["spec"]["manualSelector"] = True
            async with session.post(server + path, json=obj) as response:
                if response.status == 409 and obj["kind"] == "ServiceAccount":
                    return  # the controller manager made it before it was stopped
                if response.status >= 300:
                    raise RuntimeError(f"create {path}: {response.status} {await response.text()}")
                stored = await response.json()
            if bench_uid:
                uids[bench_uid] = stored["metadata"]["uid"]
            if status is not None and obj["kind"] in ("Pod", "Node"):
                url = f"{server}{path}/{meta['name']}/status"
                patch_headers = {"Content-Type": "application/merge-patch+json"}
                async with session.patch(
                    url, data=json.dumps({"status": status}), headers=patch_headers
                ) as response:
                    if response.status >= 300:
                        raise RuntimeError(f"status {url}: {response.status}")

        # The install's webhooks call an operator that is not running yet (and would judge
        # 100,000 creates): the fleet is what already ran before the operator was installed.
        for kind in ("validating", "mutating"):
            url = f"{server}/apis/admissionregistration.k8s.io/v1/{kind}webhookconfigurations"
            async with session.delete(url) as response:
                if response.status >= 300:
                    raise RuntimeError(f"delete {url}: {response.status}")
        order = ["Namespace", "Node", "Deployment", "StatefulSet", "Job", "ReplicaSet", "Pod"]
        for kind in order:
            batch = [obj for obj in world.objects if obj["kind"] == kind]
            if kind == "Node":  # no controller manager: each namespace's default account
                accounts = [
                    {
                        "kind": "ServiceAccount",
                        "metadata": {"name": "default", "namespace": ns["metadata"]["name"]},
                    }
                    for ns in world.objects
                    if ns["kind"] == "Namespace"
                ]
                batch = accounts + batch
            for i in range(0, len(batch), 256):
                await asyncio.gather(*(create(obj) for obj in batch[i : i + 256]))


# ----------------------------------------------------------------------------- the run


def measure(args: argparse.Namespace) -> dict[str, Any]:
    world = fleet(args.pods, args.other_pods)
    expected = world.gpu_pods
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        workdir = Path(tmp)
        target = (
            emulator_target(world)
            if args.target == "emulator"
            else controlplane_target(world, workdir)
        )
        with target as (upstream, context, token):
            proxy = ApiProxy(upstream, ca=context, token=token).start()
            entry = (
                (str(ROOT / "bench" / "traced_operator.py"), str(workdir / TRACE_FILE))
                if args.tracemalloc
                else CLI_ENTRY
            )
            operator = OperatorProcess(proxy, workdir, {"mode": "audit"}, entry=entry)
            threads = {"proxy": proxy.thread}
            if EMULATOR_THREADS:
                threads["emulator"] = EMULATOR_THREADS[-1]
            cpu0 = {name: thread_cpu_seconds(t) for name, t in threads.items()}
            try:
                report = _run(args, world, operator, proxy, expected)
                for name, thread in threads.items():
                    spent = thread_cpu_seconds(thread) - cpu0[name]
                    report[f"{name}_cpu_seconds"] = round(spent, 2)
            finally:
                operator.stop()
                proxy.stop()
                if args.keep_log:
                    Path(args.keep_log).write_bytes(operator.log_path.read_bytes())
    return report


def settle(proxy: ApiProxy, since: float, timeout: float, calm: float = 5.0) -> float:
    """When the operator's writes that the sync set off ended: the audit's last PATCHes and
    Events, each namespace's first PolicyReport. From then on only the Lease may be heard:
    the quiet period is measured after this, for `calm` seconds with nothing else."""
    deadline = time.monotonic() + timeout
    last = since
    while time.monotonic() < deadline:
        busy = [r.at for r in proxy.requests if r.at >= since and not _lease_or_stream(r)]
        last = max([since, *busy])
        if time.monotonic() - last >= calm:
            return last
        time.sleep(0.5)
    return last


def _lease_or_stream(record: Recorded) -> bool:
    return record.resource.startswith("leases.") or record.verb == "watch"


def start_profiler(pid: int, path: str) -> subprocess.Popen[bytes]:
    """py-spy sampling the operator from now until `stop_profiler`: the thread holding the GIL."""
    spy = Path(sys.executable).with_name("py-spy")
    if not spy.exists():
        raise SystemExit(f"--profile needs py-spy: {sys.executable} -m pip install py-spy")
    command = [str(spy), "record", "--pid", str(pid), "--rate", "200", "--format", "raw",
               "--gil", "--output", path]  # fmt: skip
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def stop_profiler(profiler: subprocess.Popen[bytes], path: str, top: int = 30) -> list[str]:
    """Stop sampling; the functions most often on the stack, and most often running."""
    profiler.send_signal(signal.SIGINT)
    try:
        profiler.wait(timeout=60)
    except subprocess.TimeoutExpired:
        profiler.kill()
        profiler.wait()
    inclusive: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    total = 0
    for line in Path(path).read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = [  # a function, whatever line of it was running
            re.sub(r":\d+\)$", ")", frame)
            for frame in stack.split(";")
            if not frame.startswith("thread (")
        ]
        if not frames or not count.isdigit():
            continue
        samples = int(count)
        total += samples
        for frame in set(frames):
            inclusive[frame] += samples
        own[frames[-1]] += samples
    if not total:
        return []
    lines = [f"{n / total:6.1%}  {frame}" for frame, n in inclusive.most_common(top)]
    lines.append("-- own time:")
    lines += [f"{n / total:6.1%}  {frame}" for frame, n in own.most_common(top)]
    return lines


def _run(
    args: argparse.Namespace,
    world: Fleet,
    operator: OperatorProcess,
    proxy: ApiProxy,
    expected: int,
) -> dict[str, Any]:
    load_before = load_average()
    operator.start(wait=False)
    pid = operator.pid
    assert pid is not None
    profiler = start_profiler(pid, args.profile) if args.profile else None
    ready_at = synced_at = None
    peak_rss = 0
    deadline = operator.started + args.timeout
    next_metrics = 0.0
    while synced_at is None:
        if not operator.alive():
            raise SystemExit(f"the operator exited:\n{operator.log_path.read_text()[-3000:]}")
        if time.monotonic() > deadline:
            raise SystemExit(f"not synced after {args.timeout} s (ready: {ready_at is not None})")
        peak_rss = max(peak_rss, _proc_status(pid).get("VmRSS", 0))
        now = time.monotonic()
        if ready_at is None and operator.get("/readyz")[0] == 200:
            ready_at = now
        if ready_at is not None and now >= next_metrics:
            status, body = operator.get("/metrics")
            if status == 200 and count_allocation_series(body.decode()) >= expected:
                synced_at = time.monotonic()
            next_metrics = time.monotonic() + 1.0
        time.sleep(TICK)
    sync_cpu = cpu_seconds(pid)
    profile = stop_profiler(profiler, args.profile) if profiler is not None else None
    synced_requests = list(proxy.requests)
    memory = _proc_status(pid)
    load_synced = load_average()
    if args.tracemalloc:
        os.kill(pid, signal.SIGUSR2)
        time.sleep(5)
    settled_at = settle(proxy, synced_at, args.timeout)
    settling = [r for r in proxy.requests if synced_at <= r.at < settled_at]
    quiet_start = time.monotonic()
    quiet_cpu0 = cpu_seconds(pid)
    time.sleep(args.quiet)
    quiet = [r for r in proxy.requests if r.at >= quiet_start]
    quiet_cpu = cpu_seconds(pid) - quiet_cpu0
    scrapes = []
    for _ in range(3):
        before = cpu_seconds(pid)
        started = time.monotonic()
        status, body = operator.get("/metrics")
        wall = time.monotonic() - started
        time.sleep(0.2)  # the CPU counters tick at 10 ms
        scrapes.append((cpu_seconds(pid) - before, wall, len(body)))
    _, zipped = operator.get("/metrics", gzip_ok=True)
    text = body.decode()
    memory_after = _proc_status(pid)
    all_requests = list(proxy.requests)
    return {
        "target": args.target,
        "fleet": {
            "gpu_pods": world.gpu_pods,
            "other_pods": world.other_pods,
            "namespaces": world.namespaces,
            "nodes": world.nodes,
            "owners": dict(world.owners),
            "violating_gpu_workloads": world.violating_workloads,
            "objects": len(world.objects),
        },
        "sync_seconds": round(synced_at - operator.started, 1),
        "ready_seconds": round((ready_at or synced_at) - operator.started, 1),
        "sync_cpu_seconds": round(sync_cpu, 1),
        "rss_synced_mb": round(memory["VmRSS"] / 2**20, 1),
        "rss_peak_mb": round(max(memory["VmHWM"], peak_rss) / 2**20, 1),
        "rss_after_quiet_mb": round(memory_after["VmRSS"] / 2**20, 1),
        "allocation_series": count_allocation_series(text),
        "requests_during_sync": tally(synced_requests),
        "requests_total": tally(all_requests),
        "list_bytes_mb": round(
            sum(r.bytes for r in synced_requests if r.verb in ("list", "watch")) / 2**20, 1
        ),
        "settle_seconds": round(settled_at - synced_at, 1),
        "requests_while_settling": tally(settling),
        "quiet_seconds": args.quiet,
        "requests_while_quiet": tally(quiet),
        "quiet_cpu_seconds": round(quiet_cpu, 2),
        "events_posted": sum(
            1 for r in all_requests if r.verb == "create" and r.resource == "events"
        ),
        "audit_patches": sum(
            1 for r in all_requests if r.verb == "patch" and r.resource.split(".")[0] != "leases"
        ),
        "scrape": {
            "bytes": scrapes[-1][2],
            "gzip_bytes": len(zipped) if zipped[:2] == b"\x1f\x8b" else len(gzip.compress(zipped)),
            "cpu_seconds": [round(cpu, 2) for cpu, _, _ in scrapes],
            "wall_seconds": [round(wall, 2) for _, wall, _ in scrapes],
            "series": sum(1 for line in text.splitlines() if line and not line.startswith("#")),
        },
        "tracemalloc": (operator.workdir / TRACE_FILE).read_text() if args.tracemalloc else None,
        "profile": profile,
        "load_average": {"before": load_before, "synced": load_synced, "end": load_average()},
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "nproc": os.cpu_count(),
            "python": platform.python_version(),
        },
    }


def print_report(report: dict[str, Any]) -> None:
    fleet_ = report["fleet"]
    print(f"target {report['target']}: {fleet_['gpu_pods']:,} GPU pods, "
          f"{fleet_['other_pods']:,} other pods, {fleet_['namespaces']:,} namespaces, "
          f"{fleet_['nodes']:,} nodes, owners {fleet_['owners']}")  # fmt: skip
    print(f"  sync {report['sync_seconds']} s (ready {report['ready_seconds']} s), "
          f"CPU {report['sync_cpu_seconds']} s, load {report['load_average']}")  # fmt: skip
    print(f"  RSS synced {report['rss_synced_mb']} MB, peak {report['rss_peak_mb']} MB, "
          f"after quiet {report['rss_after_quiet_mb']} MB")  # fmt: skip
    print(f"  allocation series {report['allocation_series']:,}; list+watch bytes "
          f"{report['list_bytes_mb']} MB")  # fmt: skip
    print("  requests during sync:")
    for key, count in report["requests_during_sync"].items():
        print(f"    {count:7,}  {key}")
    print(f"  writes left once synced, done {report['settle_seconds']} s later: "
          f"{report['requests_while_settling']}")  # fmt: skip
    print(f"  requests in {report['quiet_seconds']} s once quiet: {report['requests_while_quiet']}"
          f" (CPU {report['quiet_cpu_seconds']} s)")  # fmt: skip
    print(f"  Events posted {report['events_posted']}, audit PATCHes {report['audit_patches']}")
    scrape = report["scrape"]
    print(f"  /metrics: {scrape['bytes']:,} bytes ({scrape['gzip_bytes']:,} gzip), "
          f"{scrape['series']:,} series, CPU {scrape['cpu_seconds']} s, "
          f"wall {scrape['wall_seconds']} s")  # fmt: skip
    for key in ("proxy_cpu_seconds", "emulator_cpu_seconds"):
        if key in report:
            print(f"  {key.replace('_', ' ')}: {report[key]}")
    if report.get("tracemalloc"):
        print(report["tracemalloc"])
    if report.get("profile"):
        print("  where the operator's sync time went (py-spy samples, inclusive / own):")
        for line in report["profile"]:
            print(f"    {line}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pods", type=int, default=10_000, help="running GPU pods")
    parser.add_argument("--other-pods", type=int, default=None, help="CPU pods (default: half)")
    parser.add_argument("--target", choices=("emulator", "controlplane"), default="emulator")
    parser.add_argument("--quiet", type=float, default=20.0, help="seconds watched once synced")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds to wait for sync")
    parser.add_argument("--tracemalloc", action="store_true", help="top allocation sites")
    parser.add_argument(
        "--profile", help="sample the operator with py-spy until synced; raw samples to this file"
    )
    parser.add_argument("--keep-log", help="copy the operator's log here")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    if args.pods < 1:
        parser.error("--pods must be at least 1")
    report = measure(args)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print_report(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
