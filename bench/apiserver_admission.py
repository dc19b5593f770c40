"""Admission through a real kube-apiserver: finops against Kyverno and Gatekeeper (issue 23).

bench/admission.py times our webhook called directly; Kyverno publishes figures for
Pods created through the API server (k6, 10 to 500 virtual users, against a
no-policy baseline). This bench measures the same way, so the figures compare:

- it brings up the e2e control plane (`scripts/e2e-cluster.sh up`, operator included),
  creates a fake Node through the API and a namespace `bench`;
- it creates GPU Pods (`spec.nodeName` set to that Node: no scheduler, no kubelet)
  through kube-apiserver with aiohttp clients at each `--levels` concurrency, a fixed
  `--creates` per level, three compliant to one untagged (`--untagged-every N`: one
  in N; 0: compliant only); `--no-keepalive` opens a connection per request; the pods
  are deleted (untimed) between levels;
- in turn, on the same API server: no policy (namespace mode `off`), the finops
  webhooks (mode `enforce`) with one operator replica, then with two (a second
  `finops-operator run` and the webhooks pointed at `ApiProxy.balancer`, a
  round-robin TCP balancer in front of both, as a Service would be), with one
  replica again but without the operator's own matchConditions (every GPU pod
  sent, compliant or not, as before issue 23 item 4), the finops
  ValidatingAdmissionPolicy alone (operator stopped, webhooks removed, policy
  rendered by `finops-operator render`), first without its matchConditions
  (every variable evaluated for every GPU pod, as before issue 23 item 5) then as
  rendered, `--pprof DIR` profiling kube-apiserver during both; Kyverno
  with a ValidatingPolicy and Gatekeeper with a ConstraintTemplate, both asking for
  the same five labels on the same GPU condition, both out of cluster
  (scripts/build-kyverno.sh, scripts/build-gatekeeper.sh), called at `--peer-address`:
  by default this machine's first non-loopback address, so that kube-apiserver
  speaks HTTP/1.1 to them, as it does to every webhook behind a Service (it allows
  HTTP/2 only to a loopback URL: k8s.io/apiserver pkg/util/webhook/client.go; our
  webhook server speaks HTTP/1.1 only, wherever it is);
- every answer is checked: a compliant pod admitted (201), an untagged one denied
  (4xx) by every decider and admitted by the baseline; anything else is an error;
- the CPU (/proc/PID/stat) and RSS of each decider and of kube-apiserver.

Prints one table (docs/benchmarks.md, "Against Kyverno and Gatekeeper"); `--json`
prints the rows as JSON instead. Not part of .ci/run: peers stay out of CI.

Run from the repository root:  .venv/bin/python bench/apiserver_admission.py
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import copy
import ipaddress
import json
import os
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
import yaml  # noqa: E402

from bench.admission import percentile  # noqa: E402
from finops_devtools.devcluster import free_port  # noqa: E402
from finops_devtools.devcluster.api_proxy import ApiProxy  # noqa: E402
from finops_devtools.devcluster.certificates import write_self_signed  # noqa: E402
from finops_devtools.devcluster.reviews import COMPLETE_LABELS, workload  # noqa: E402
from finops_operator.domain.conventions import (  # noqa: E402
    DEFAULT_GPU_RESOURCES,
    MUTATING_WEBHOOK,
    VALIDATING_WEBHOOK,
)
from finops_operator.domain.policies.webhook_conditions import (  # noqa: E402
    OWNED,
    WebhookSettings,
    conditions_patch,
)

NAMESPACE = "bench"
NODE = "bench-gpu-node"
MODE_LABEL = "finops.resilio.tech/mode"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------- pure parts (tested)


def is_compliant(i: int, untagged_every: int) -> bool:
    """Whether the `i`th pod of a level carries its cost labels: one in `untagged_every`
    does not (the last of each group), none with 0."""
    return untagged_every == 0 or i % untagged_every != untagged_every - 1


def proc_cpu_seconds(stat: str) -> float:
    """utime + stime of a /proc/PID/stat line, in seconds (the name may hold spaces)."""
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def status_rss_mib(status: str) -> float:
    """VmRSS of a /proc/PID/status text, in MiB (0 when absent: a zombie)."""
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def schedstat_wait_seconds(schedstat: str) -> float:
    """Time a thread was runnable but waiting for a CPU, from its /proc/.../schedstat."""
    return int(schedstat.split()[1]) / 1e9


def gpu_cel(containers: str) -> str:
    """CEL: a container of `containers` asks for (or limits) a non-zero GPU quantity."""
    exact = [r for r in DEFAULT_GPU_RESOURCES if not r.endswith("*")]
    prefixes = [r[:-1] for r in DEFAULT_GPU_RESOURCES if r.endswith("*")]
    name = " || ".join([f"k == '{r}'" for r in exact] + [f"k.startsWith('{p}')" for p in prefixes])
    per = (
        "(has(c.resources) && has(c.resources.{f}) && c.resources.{f}.exists(k, ({name})"
        " && quantity(string(c.resources.{f}[k])).isGreaterThan(quantity('0'))))"
    )
    either = " || ".join(per.format(f=f, name=name) for f in ("limits", "requests"))
    return f"{containers}.exists(c, {either})"


def kyverno_policy() -> dict[str, Any]:
    """A Kyverno ValidatingPolicy (policies.kyverno.io/v1): our five labels on GPU pods."""
    labels = json.dumps(sorted(COMPLETE_LABELS)).replace('"', "'")
    return {
        "apiVersion": "policies.kyverno.io/v1",
        "kind": "ValidatingPolicy",
        "metadata": {"name": "finops-cost-labels"},
        "spec": {
            "validationActions": ["Deny"],
            "matchConstraints": {
                "resourceRules": [
                    {
                        "apiGroups": [""],
                        "apiVersions": ["v1"],
                        "operations": ["CREATE", "UPDATE"],
                        "resources": ["pods"],
                    }
                ],
                "namespaceSelector": {"matchLabels": {MODE_LABEL: "enforce"}},
            },
            "variables": [
                {
                    "name": "containers",
                    "expression": "object.spec.containers + (has(object.spec.initContainers)"
                    " ? object.spec.initContainers : [])",
                },
                {"name": "gpu", "expression": gpu_cel("variables.containers")},
            ],
            "validations": [
                {
                    "expression": f"!variables.gpu || {labels}.all(l, has(object.metadata.labels)"
                    " && l in object.metadata.labels && object.metadata.labels[l] != '')",
                    "message": "a GPU pod needs the cost labels "
                    + ", ".join(sorted(COMPLETE_LABELS)),
                }
            ],
        },
    }


GATEKEEPER_REGO = """package finopscostlabels

gpu_name(k) { input.parameters.resources[_] == k }
gpu_name(k) { startswith(k, input.parameters.prefixes[_]) }

containers[c] { c := input.review.object.spec.containers[_] }
containers[c] { c := input.review.object.spec.initContainers[_] }

asks_gpu {
  c := containers[_]
  v := c.resources[field][k]
  field == ["limits", "requests"][_]
  gpu_name(k)
  not zero(v)
}

zero(v) { v == "0" }
zero(v) { v == 0 }

violation[{"msg": msg}] {
  asks_gpu
  provided := {l | input.review.object.metadata.labels[l] != ""}
  required := {l | l := input.parameters.labels[_]}
  missing := required - provided
  count(missing) > 0
  msg := sprintf("a GPU pod needs the cost labels, missing: %v", [missing])
}
"""


def gatekeeper_objects() -> list[dict[str, Any]]:
    """A K8sRequiredLabels-style ConstraintTemplate and its Constraint, for GPU pods."""
    template = {
        "apiVersion": "templates.gatekeeper.sh/v1",
        "kind": "ConstraintTemplate",
        "metadata": {"name": "finopscostlabels"},
        "spec": {
            "crd": {
                "spec": {
                    "names": {"kind": "FinopsCostLabels"},
                    "validation": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {
                                key: {"type": "array", "items": {"type": "string"}}
                                for key in ("labels", "resources", "prefixes")
                            },
                        }
                    },
                }
            },
            "targets": [{"target": "admission.k8s.gatekeeper.sh", "rego": GATEKEEPER_REGO}],
        },
    }
    constraint = {
        "apiVersion": "constraints.gatekeeper.sh/v1beta1",
        "kind": "FinopsCostLabels",
        "metadata": {"name": "finops-cost-labels"},
        "spec": {
            "enforcementAction": "deny",
            "match": {
                "kinds": [{"apiGroups": [""], "kinds": ["Pod"]}],
                "namespaceSelector": {"matchLabels": {MODE_LABEL: "enforce"}},
            },
            "parameters": {
                "labels": sorted(COMPLETE_LABELS),
                "resources": [r for r in DEFAULT_GPU_RESOURCES if not r.endswith("*")],
                "prefixes": [r[:-1] for r in DEFAULT_GPU_RESOURCES if r.endswith("*")],
            },
        },
    }
    return [template, constraint]


@dataclass
class Row:
    """One decider at one concurrency: what the table shows."""

    decider: str
    clients: int
    creates: int
    seconds: float
    p50_ms: float
    p99_ms: float
    added_p50_ms: float = 0.0
    added_p99_ms: float = 0.0
    errors: int = 0
    wrong: int = 0  # a decision against expectation (compliant denied, untagged admitted)
    decider_cpu_s: float = 0.0
    decider_rss_mib: float = 0.0
    decider_wait_s: float = 0.0  # runnable, waiting for a CPU (every thread)
    apiserver_cpu_s: float = 0.0
    samples: list[str] = field(default_factory=list)  # the first few errors, verbatim

    @property
    def creates_per_s(self) -> float:
        return self.creates / self.seconds if self.seconds else 0.0


def table(rows: Sequence[Row]) -> str:
    """The rows as a Markdown table, in order."""
    head = (
        "| decider | clients | creates/s | p50 ms | p99 ms | +p50 ms | +p99 ms | errors"
        " | wrong decisions | decider CPU s | decider waited s | decider RSS MiB"
        " | apiserver CPU s |"
    )
    lines = [head, "|" + " --- |" * 13]
    for r in rows:
        lines.append(
            f"| {r.decider} | {r.clients} | {r.creates_per_s:,.0f} | {r.p50_ms:.1f}"
            f" | {r.p99_ms:.1f} | {r.added_p50_ms:+.1f} | {r.added_p99_ms:+.1f} | {r.errors}"
            f" | {r.wrong} | {r.decider_cpu_s:.2f} | {r.decider_wait_s:.2f}"
            f" | {r.decider_rss_mib:.0f}"
            f" | {r.apiserver_cpu_s:.2f} |"
        )
    return "\n".join(lines)


def with_added(rows: list[Row], baseline: str) -> list[Row]:
    """Fill added p50/p99: each row's over the baseline's row at the same concurrency."""
    base = {r.clients: r for r in rows if r.decider == baseline}
    for r in rows:
        if r.clients in base:
            r.added_p50_ms = r.p50_ms - base[r.clients].p50_ms
            r.added_p99_ms = r.p99_ms - base[r.clients].p99_ms
    return rows


# ---------------------------------------------------------------- the cluster


class ProcStats:
    """CPU seconds and RSS of a process, read from /proc."""

    def __init__(self, pid: int) -> None:
        self.pid = pid

    def cpu(self) -> float:
        return proc_cpu_seconds(Path(f"/proc/{self.pid}/stat").read_text())

    def rss(self) -> float:
        return status_rss_mib(Path(f"/proc/{self.pid}/status").read_text())

    def waited(self) -> float:
        """Run-queue wait of its threads alive now (one that ended takes its share along)."""
        total = 0.0
        for task in Path(f"/proc/{self.pid}/task").iterdir():
            with contextlib.suppress(OSError):
                total += schedstat_wait_seconds((task / "schedstat").read_text())
        return total


class Cluster:
    """The e2e control plane of scripts/e2e-cluster.sh, seen through its admin kubeconfig."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        config = yaml.safe_load((directory / "kubeconfig").read_text())
        self.server: str = config["clusters"][0]["cluster"]["server"]
        self.token: str = config["users"][0]["user"]["token"]
        self.ca = base64.b64decode(config["clusters"][0]["cluster"]["certificate-authority-data"])
        self.bin = Path((directory / "state" / "bin").read_text().strip())
        self.kubectl = str(self.bin / "kubectl")

    def pid(self, name: str) -> int:
        return int((self.dir / "state" / f"{name}.pid").read_text())

    def run(self, *args: str, stdin: str | None = None, check: bool = True) -> str:
        proc = subprocess.run(
            [self.kubectl, "--kubeconfig", str(self.dir / "kubeconfig"), *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if check and proc.returncode != 0:
            raise RuntimeError(f"kubectl {' '.join(args)}: {proc.stderr.strip()}")
        return proc.stdout

    def apply(self, objects: Sequence[dict[str, Any]], server_side: bool = False) -> None:
        extra = ["--server-side", "--force-conflicts"] if server_side else []
        self.run("apply", *extra, "-f", "-", stdin=yaml.safe_dump_all(objects))

    def applied(self, objects: Sequence[dict[str, Any]]) -> bool:
        """Apply, False while the API refuses (a CRD not yet served, a peer's webhook not up)."""
        try:
            self.apply(objects)
            return True
        except RuntimeError:
            return False

    def install_crds(self, folder: Path) -> None:
        self.run("apply", "--server-side", "--force-conflicts", "-f", str(folder))

        def established() -> bool:
            try:
                self.run("wait", "--for=condition=established", "--timeout=60s", "crd", "--all")
                return True
            except RuntimeError as err:  # a CRD just created has no conditions yet
                if "accessor error" not in str(err):
                    raise
                return False

        wait_until(established, "the CRDs are established", 120)

    def script(self, verb: str, env: dict[str, str] | None = None) -> None:
        subprocess.run(
            [str(ROOT / "scripts" / "e2e-cluster.sh"), verb, str(self.dir)],
            check=True,
            env={**os.environ, **(env or {})},
            stdout=subprocess.DEVNULL,
        )


def slug(decider: str) -> str:
    """A decider's name as the start of a pod's name (lowercase RFC 1123)."""
    return "-".join("".join(c if c.isalnum() else " " for c in decider.lower()).split())


def gpu_pod(name: str, compliant: bool) -> dict[str, Any]:
    pod = workload("Pod", name, NAMESPACE, labels=dict(COMPLETE_LABELS) if compliant else None)
    pod["spec"]["nodeName"] = NODE
    pod["spec"]["terminationGracePeriodSeconds"] = 0
    return pod


@dataclass
class Outcome:
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    wrong: int = 0
    samples: list[str] = field(default_factory=list)
    denial: str = ""  # the first refusal, verbatim: which decider refused


async def create_level(
    cluster: Cluster,
    tag: str,
    clients: int,
    creates: int,
    enforcing: bool,
    keepalive: bool,
    untagged_every: int,
) -> tuple[Outcome, float]:
    """`creates` pods by `clients` concurrent clients; the outcome and the wall time."""
    context = ssl.create_default_context(cadata=cluster.ca.decode())
    headers = {"Authorization": f"Bearer {cluster.token}", "Content-Type": "application/json"}
    url = f"{cluster.server}/api/v1/namespaces/{NAMESPACE}/pods"
    mix = [is_compliant(i, untagged_every) for i in range(creates)]
    bodies = [
        (compliant, json.dumps(gpu_pod(f"{tag}-{clients}-{i}", compliant)))
        for i, compliant in enumerate(mix)
    ]
    outcome = Outcome()
    queue: asyncio.Queue[tuple[bool, str]] = asyncio.Queue()
    for item in bodies:
        queue.put_nowait(item)
    connector = aiohttp.TCPConnector(ssl=context, limit=clients, force_close=not keepalive)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(connector=connector, headers=headers, timeout=timeout) as s:

        async def client() -> None:
            while not queue.empty():
                compliant, body = queue.get_nowait()
                began = time.perf_counter()
                try:
                    async with s.post(url, data=body) as response:
                        text = await response.text()
                        status = response.status
                except (aiohttp.ClientError, TimeoutError) as err:
                    status, text = 0, f"{type(err).__name__}: {err}"
                outcome.latencies.append((time.perf_counter() - began) * 1000)
                denied = status in (400, 403, 422) and "denied" in text
                if denied and not outcome.denial:
                    outcome.denial = text[:300]
                if status != 201 and not denied:
                    outcome.errors += 1
                    if len(outcome.samples) < 3:
                        outcome.samples.append(f"HTTP {status}: {text[:300]}")
                elif (status == 201) != (compliant or not enforcing):
                    outcome.wrong += 1
                    if len(outcome.samples) < 3:
                        outcome.samples.append(f"HTTP {status} compliant={compliant}: {text[:300]}")

        began = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(clients)))
        return outcome, time.perf_counter() - began


def delete_pods(cluster: Cluster) -> None:
    cluster.run(
        "-n", NAMESPACE, "delete", "pods", "--all", "--grace-period=0", "--force", "--wait=false"
    )
    deadline = time.monotonic() + 120
    while cluster.run("-n", NAMESPACE, "get", "pods", "-o", "name").strip():
        if time.monotonic() > deadline:
            raise RuntimeError("the bench's pods are not gone after 120 s")
        time.sleep(0.5)


def denies_untagged(cluster: Cluster) -> bool:
    """A dry-run create of an untagged GPU pod is refused (admission has the policy)."""
    proc = subprocess.run(
        [cluster.kubectl, "--kubeconfig", str(cluster.dir / "kubeconfig"), "create",
         "--dry-run=server", "-f", "-"],
        input=json.dumps(gpu_pod("probe", False)),
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    return proc.returncode != 0 and "denied" in (proc.stderr + proc.stdout).lower()


def wait_until(predicate: Callable[[], bool], what: str, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what}: not after {timeout:.0f} s")
        time.sleep(1)


def measure(
    cluster: Cluster,
    decider: str,
    pids: Sequence[int],
    args: argparse.Namespace,
    enforcing: bool = True,
) -> list[Row]:
    """Every concurrency level against what admits now; `pids` are the decider's
    processes (their CPU and RSS add up), none when kube-apiserver decides alone."""
    apiserver = ProcStats(cluster.pid("kube-apiserver"))
    own = [ProcStats(pid) for pid in pids]
    rows = []
    for clients in args.levels:
        cpu0, api0 = sum(p.cpu() for p in own), apiserver.cpu()
        wait0 = sum(p.waited() for p in own)
        outcome, seconds = asyncio.run(
            create_level(
                cluster,
                slug(decider),
                clients,
                args.creates,
                enforcing,
                not args.no_keepalive,
                args.untagged_every,
            )
        )
        row = Row(
            decider=decider,
            clients=clients,
            creates=args.creates,
            seconds=seconds,
            p50_ms=statistics.median(outcome.latencies),
            p99_ms=percentile(sorted(outcome.latencies), 0.99),
            errors=outcome.errors,
            wrong=outcome.wrong,
            decider_cpu_s=sum(p.cpu() for p in own) - cpu0,
            decider_rss_mib=sum(p.rss() for p in own),
            decider_wait_s=sum(p.waited() for p in own) - wait0,
            apiserver_cpu_s=apiserver.cpu() - api0,
            samples=outcome.samples,
        )
        print(f"  {decider} at {clients}: {row.creates_per_s:.0f}/s", file=sys.stderr)
        if outcome.denial and clients == args.levels[0]:
            print(f"    denied as: {outcome.denial}", file=sys.stderr)
        rows.append(row)
        delete_pods(cluster)
    return rows


# ---------------------------------------------------------------- the peers


def build(script: str) -> Path:
    out = subprocess.run(
        [str(ROOT / "scripts" / script)], check=True, capture_output=True, text=True
    ).stdout
    return Path(out.strip().splitlines()[-1])


class Peer:
    """A peer's process, out of cluster, its output in a log; stopped by pid."""

    def __init__(self, command: list[str], log: Path, env: dict[str, str]) -> None:
        self.log = log
        self.name = Path(command[0]).name
        with log.open("wb") as out:
            self.process = subprocess.Popen(
                command,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, **env},
            )

    def check(self) -> bool:
        if self.process.poll() is not None:
            raise RuntimeError(f"{self.name} exited:\n{self.log.read_text()[-3000:]}")
        return True

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def kyverno_namespace() -> list[dict[str, Any]]:
    """Kyverno's namespace and its configuration as the Helm chart names it (empty: defaults)."""
    return [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "kyverno"}}] + [
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": n, "namespace": "kyverno"}}
        for n in ("kyverno", "kyverno-metrics")
    ]


def kyverno_env(deployment: str) -> dict[str, str]:
    """What a Kyverno Deployment sets for its container; its commands exit without any of it."""
    return {
        "KYVERNO_NAMESPACE": "kyverno",
        "KYVERNO_SERVICEACCOUNT_NAME": deployment,
        "KYVERNO_DEPLOYMENT": deployment,
        "KYVERNO_POD_NAME": f"{deployment}-bench",
        "INIT_CONFIG": "kyverno",
        "METRICS_CONFIG": "kyverno-metrics",
    }


def start_kyverno(
    cluster: Cluster, work: Path, started: Callable[[Peer], None], address: str
) -> Peer:
    out = build("build-kyverno.sh")
    cluster.apply(kyverno_namespace())
    cluster.install_crds(out / "crds")
    port = free_port()
    peer = Peer(
        [
            str(out / "kyverno"),
            f"--kubeconfig={cluster.dir / 'kubeconfig'}",
            f"--serverIP={address}:{port}",  # its webhooks' URL and its certificate's IP
            f"--webhookServerHost={address}",
            f"--webhookServerPort={port}",
            "--caSecretName=kyverno-svc.kyverno.svc.kyverno-tls-ca",
            "--tlsSecretName=kyverno-svc.kyverno.svc.kyverno-tls-pair",
            "--disableMetrics=true",
            f"--metricsPort={free_port()}",  # it listens there all the same (8000 by default)
            "--controllerRuntimeMetricsAddress=0",
            "--admissionReports=false",
        ],
        work / "kyverno.log",
        kyverno_env("kyverno-admission-controller"),
    )
    started(peer)
    wait_until(lambda: peer.check() and cluster.applied([kyverno_policy()]), "Kyverno's policy")
    wait_until(lambda: peer.check() and denies_untagged(cluster), "Kyverno denies", 300)
    return peer


def start_gatekeeper(
    cluster: Cluster, work: Path, started: Callable[[Peer], None], address: str
) -> Peer:
    out = build("build-gatekeeper.sh")
    cluster.apply(
        [
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "gatekeeper-system"}},
            {  # its own Pod (POD_NAME), which owns its status objects; never runs
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": "gatekeeper-bench", "namespace": "gatekeeper-system"},
                "spec": {
                    "nodeName": NODE,
                    "containers": [{"name": "manager", "image": "gatekeeper"}],
                },
            },
        ]
    )
    cluster.install_crds(out / "crds")
    certs = work / "gatekeeper-certs"
    certs.mkdir(exist_ok=True)
    cert, _ = write_self_signed(certs, ("localhost", address))  # Gatekeeper reads tls.*
    port = free_port()
    peer = Peer(
        [
            str(out / "gatekeeper"),
            "--operation=webhook",
            "--operation=generate",  # the template's constraint CRD (the chart sets both)
            f"--port={port}",
            f"--host={address}",
            f"--cert-dir={certs}",
            "--disable-cert-rotation",
            f"--health-addr=127.0.0.1:{free_port()}",
            "--metrics-addr=0",
            f"--prometheus-port={free_port()}",
            "--enable-k8s-native-validation=false",
        ],
        work / "gatekeeper.log",
        {
            "KUBECONFIG": str(cluster.dir / "kubeconfig"),
            "POD_NAMESPACE": "gatekeeper-system",
            "POD_NAME": "gatekeeper-bench",
        },
    )
    started(peer)
    template, constraint = gatekeeper_objects()
    wait_until(lambda: peer.check() and cluster.applied([template]), "Gatekeeper's template")
    wait_until(
        lambda: peer.check() and "finopscostlabels" in cluster.run("get", "crd", "-o", "name"),
        "Gatekeeper's constraint CRD",
    )
    wait_until(lambda: cluster.applied([constraint]), "Gatekeeper's constraint")
    cluster.apply(
        [
            {
                "apiVersion": "admissionregistration.k8s.io/v1",
                "kind": "ValidatingWebhookConfiguration",
                "metadata": {"name": "gatekeeper-validating-webhook-configuration"},
                "webhooks": [
                    {
                        "name": "validation.gatekeeper.sh",
                        "admissionReviewVersions": ["v1"],
                        "sideEffects": "None",
                        "failurePolicy": "Ignore",
                        "timeoutSeconds": 3,
                        "clientConfig": {
                            "url": f"https://{address}:{port}/v1/admit",
                            "caBundle": base64.b64encode(cert.read_bytes()).decode(),
                        },
                        "namespaceSelector": {"matchLabels": {MODE_LABEL: "enforce"}},
                        "rules": [
                            {
                                "apiGroups": [""],
                                "apiVersions": ["v1"],
                                "operations": ["CREATE", "UPDATE"],
                                "resources": ["pods"],
                            }
                        ],
                    }
                ],
            }
        ]
    )
    wait_until(lambda: peer.check() and denies_untagged(cluster), "Gatekeeper denies", 180)
    return peer


def finops_vap(cluster: Cluster) -> list[dict[str, Any]]:
    """The operator's validating admission policies for the installed configuration."""
    rendered = subprocess.run(
        [str(Path(sys.executable).parent / "finops-operator"), "render", "--admission-policy",
         "--config", str(cluster.dir / "config.yaml")],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    return [
        doc
        for doc in yaml.safe_load_all(rendered)
        if doc and doc["kind"].startswith("ValidatingAdmissionPolicy")
    ]


def without_match_conditions(policies: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The policies as they were before their matchConditions: every variable evaluated
    for every GPU pod, so that their effect is read against the same API server."""
    bare = copy.deepcopy(policies)
    for doc in bare:
        doc["spec"].pop("matchConditions", None)
    return bare


@contextlib.contextmanager
def applied_policies(cluster: Cluster, policies: list[dict[str, Any]]) -> Iterator[None]:
    """`policies` in force for the block (an untagged pod denied), gone after it (admitted
    again), so that the next variant cannot be timed against this one."""
    cluster.apply(policies)
    try:
        wait_until(lambda: denies_untagged(cluster), "the finops ValidatingAdmissionPolicy denies")
        yield
    finally:
        for doc in policies:
            cluster.run("delete", doc["kind"], doc["metadata"]["name"], "--ignore-not-found")
        wait_until(lambda: not denies_untagged(cluster), "the finops policies are gone")


# ---------------------------------------------------------------- two operator replicas


def repoint(config: dict[str, Any], old_port: int, new_port: int) -> list[dict[str, Any]]:
    """A JSON patch: each webhook of `config` that calls 127.0.0.1:`old_port` calls
    `new_port` instead, same path."""
    old, new = f"https://127.0.0.1:{old_port}/", f"https://127.0.0.1:{new_port}/"
    return [
        {
            "op": "replace",
            "path": f"/webhooks/{i}/clientConfig/url",
            "value": new + hook["clientConfig"]["url"][len(old) :],
        }
        for i, hook in enumerate(config.get("webhooks") or [])
        if hook.get("clientConfig", {}).get("url", "").startswith(old)
    ]


def point_webhooks(cluster: Cluster, old_port: int, new_port: int) -> None:
    """The finops webhook configurations call 127.0.0.1:`new_port` instead of `old_port`."""
    for kind in ("validatingwebhookconfiguration", "mutatingwebhookconfiguration"):
        config = json.loads(cluster.run("get", kind, "finops-operator", "-o", "json"))
        patch = repoint(config, old_port, new_port)
        if not patch:
            raise RuntimeError(f"{kind} finops-operator does not call port {old_port}")
        cluster.run("patch", kind, "finops-operator", "--type=json", "-p", json.dumps(patch))


WEBHOOK_KINDS = ("validatingwebhookconfiguration", "mutatingwebhookconfiguration")


def operators_conditions(cluster: Cluster) -> set[str]:
    """The operator's own matchConditions (webhook_conditions) the configurations carry."""
    found: set[str] = set()
    for kind in WEBHOOK_KINDS:
        config = json.loads(cluster.run("get", kind, "finops-operator", "-o", "json"))
        for hook in config["webhooks"]:
            found |= {c["name"] for c in hook.get("matchConditions") or []} & OWNED
    return found


def drop_operators_conditions(cluster: Cluster) -> None:
    """The configurations without the operator's matchConditions: every GPU pod is sent,
    as before issue 23 item 4 (until the operator starts again)."""
    for kind in WEBHOOK_KINDS:
        config = json.loads(cluster.run("get", kind, "finops-operator", "-o", "json"))
        ours = WebhookSettings({VALIDATING_WEBHOOK: [], MUTATING_WEBHOOK: []})
        patch = conditions_patch(config, ours)
        if patch:
            cluster.run("patch", kind, "finops-operator", "--type=json", "-p", json.dumps(patch))


def ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def measure_two_replicas(cluster: Cluster, args: argparse.Namespace, work: Path) -> list[Row]:
    """The script's operator and a second replica started as it was, behind a round-robin
    TCP balancer (the Service's job in a cluster) that the webhooks now call."""
    first = int(json.loads((cluster.dir / "cluster.json").read_text())["webhook_port"])
    webhook_port, metrics_port = free_port(), free_port()
    second = Peer(
        [str(Path(sys.executable).parent / "finops-operator"), "run",
         "--config", str(cluster.dir / "config.yaml"),
         "--config-map", "finops-operator-config", "--invalid-config", "safe-default",
         "--webhook-secret", "finops-operator-webhook-tls",
         "--webhook-host", "127.0.0.1", "--webhook-port", str(webhook_port),
         "--metrics-port", str(metrics_port), "--namespace", "finops-system"],
        work / "operator-b.log",
        {"KUBECONFIG": str(cluster.dir / "operator.kubeconfig"), "POD_NAMESPACE": "finops-system"},
    )  # fmt: skip
    balancer = ApiProxy.balancer([first, webhook_port])
    try:
        wait_until(lambda: second.check() and ready(metrics_port), "the second replica is ready")
        balancer.start()
        point_webhooks(cluster, first, balancer.port)
        wait_until(lambda: denies_untagged(cluster), "the finops webhooks deny, balanced")
        rows = measure(
            cluster, "finops webhooks, 2 replicas", [cluster.pid("operator"), second.process.pid],
            args,
        )  # fmt: skip
        if 0 in balancer.connections:
            raise RuntimeError(f"a replica got no connection: {balancer.connections}")
        print(f"  connections per replica: {balancer.connections}", file=sys.stderr)
        return rows
    finally:
        with contextlib.suppress(RuntimeError):
            point_webhooks(cluster, balancer.port, first)
        balancer.stop()
        second.stop()


# ---------------------------------------------------------------- the run


@contextlib.contextmanager
def profiling(cluster: Cluster, path: Path | None, seconds: int) -> Iterator[None]:
    """A CPU profile of kube-apiserver (its /debug/pprof: `--pprof` starts the control
    plane with `--profiling=true`) over the first `seconds` of the block, written to
    `path`; nothing when `path` is None."""
    if path is None:
        yield
        return
    with path.open("wb") as out:
        proc = subprocess.Popen(
            [cluster.kubectl, "--kubeconfig", str(cluster.dir / "kubeconfig"), "get", "--raw",
             f"/debug/pprof/profile?seconds={seconds}"],
            stdout=out,
        )  # fmt: skip
        try:
            yield
        finally:
            if proc.wait(timeout=seconds + 60) != 0:
                raise RuntimeError(f"kube-apiserver's CPU profile failed: exit {proc.returncode}")
    print(f"  kube-apiserver CPU profile: {path}", file=sys.stderr)


def remove_peer_webhooks(cluster: Cluster) -> None:
    """What a stopped peer leaves: its webhooks would refuse every pod (failurePolicy Fail)."""
    for kind in ("validatingwebhookconfiguration", "mutatingwebhookconfiguration"):
        names = cluster.run("get", kind, "-o", "name").split()
        doomed = [n for n in names if "kyverno" in n or "gatekeeper" in n]
        if doomed:
            cluster.run("delete", *doomed, "--ignore-not-found")
    # Kyverno's certificate names the address it was started with: the next start
    # (another --peer-address) makes a new one.
    cluster.run("delete", "secret", "-n", "kyverno", "--all", "--ignore-not-found")


def label_namespace(cluster: Cluster, mode: str) -> None:
    cluster.run("label", "namespace", NAMESPACE, f"{MODE_LABEL}={mode}", "--overwrite")


def run(cluster: Cluster, args: argparse.Namespace, work: Path) -> list[Row]:
    cluster.apply(
        [
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}},
            {"apiVersion": "v1", "kind": "Node", "metadata": {"name": NODE}},
        ]
    )
    rows: list[Row] = []
    label_namespace(cluster, "off")
    rows += measure(cluster, "baseline (no policy)", (), args, enforcing=False)
    label_namespace(cluster, "enforce")
    if "webhooks" in args.only:
        wait_until(lambda: denies_untagged(cluster), "the finops webhooks deny")
        wait_until(lambda: operators_conditions(cluster) == OWNED, "the operator's matchConditions")
        rows += measure(cluster, "finops webhooks, 1 replica", [cluster.pid("operator")], args)
        if args.untagged_every:  # with compliant pods only, no call reaches a replica
            rows += measure_two_replicas(cluster, args, work)
        drop_operators_conditions(cluster)
        rows += measure(
            cluster, "finops webhooks, 1 replica, every GPU pod sent", [cluster.pid("operator")],
            args,
        )  # fmt: skip
    cluster.script("stop-operator")
    cluster.run("delete", "validatingwebhookconfiguration,mutatingwebhookconfiguration",
                "finops-operator", "--ignore-not-found")  # fmt: skip
    if "vap" in args.only:
        policies = finops_vap(cluster)
        bare = without_match_conditions(policies)
        for name, variant in (("finops ValidatingAdmissionPolicy, no matchConditions", bare),
                              ("finops ValidatingAdmissionPolicy", policies)):  # fmt: skip
            with applied_policies(cluster, variant):
                pprof = args.pprof / f"{slug(name)}.pprof" if args.pprof else None
                with profiling(cluster, pprof, args.pprof_seconds):
                    # kube-apiserver decides: its CPU, RSS and run-queue wait as the decider's
                    rows += measure(cluster, name, [cluster.pid("kube-apiserver")], args)
    started: list[Peer] = []  # stopped here if its start fails half way
    peers = (("Kyverno ValidatingPolicy", start_kyverno),
             ("Gatekeeper ConstraintTemplate", start_gatekeeper))  # fmt: skip
    for address in args.peer_address:
        for name, start in peers:
            peer_name = name.split()[0].lower()
            if peer_name in args.skip or peer_name not in args.only:
                continue
            decider = peer_row(name, address, len(args.peer_address) > 1)
            try:
                peer = start(cluster, work, started.append, address)
            except (RuntimeError, subprocess.CalledProcessError) as err:
                for process in started:
                    process.stop()
                print(f"{decider}: could not run: {err}", file=sys.stderr)
                continue
            try:
                rows += measure(cluster, decider, [peer.process.pid], args)
            finally:
                peer.stop()
                remove_peer_webhooks(cluster)
    return with_added(rows, "baseline (no policy)")


def peer_row(name: str, address: str, several: bool) -> str:
    """The row of a peer called at `address`; the protocol is named when the run has
    several addresses (kube-apiserver speaks HTTP/2 only to a loopback URL)."""
    if not several:
        return name
    loopback = ipaddress.ip_address(address).is_loopback
    return f"{name}, {'HTTP/2 (loopback URL)' if loopback else 'HTTP/1.1'}"


ROWS = ("webhooks", "vap", "kyverno", "gatekeeper")


def peer_address(text: str) -> str:
    """An IPv4 address for --peer-address (the peers' certificates name it)."""
    try:
        return str(ipaddress.IPv4Address(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an IPv4 address: {text!r}") from None


def non_loopback_address() -> str:
    """This machine's address on its default route (no packet is sent): a webhook URL
    there gets HTTP/1.1 from kube-apiserver, as a Service's would."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))
        except OSError as err:
            raise SystemExit(f"no non-loopback address ({err}): pass --peer-address") from err
        address: str = probe.getsockname()[0]
    if ipaddress.ip_address(address).is_loopback:
        raise SystemExit("no non-loopback address: pass --peer-address")
    return address


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--creates", type=int, default=400, help="pods created per level")
    parser.add_argument(
        "--levels", type=lambda s: [int(x) for x in s.split(",")], default=[10, 50, 200]
    )
    parser.add_argument("--no-keepalive", action="store_true", help="a connection per create")
    parser.add_argument(
        "--untagged-every", type=int, default=4, metavar="N",
        help="one pod in N lacks its cost labels (default 4); 0: every pod compliant",
    )  # fmt: skip
    parser.add_argument(
        "--peer-address", metavar="IP", nargs="+", type=peer_address,
        help="where Kyverno and Gatekeeper listen and are called, each in turn (default: this "
        "machine's non-loopback address, HTTP/1.1 as behind a Service; 127.0.0.1 lets "
        "kube-apiserver use HTTP/2 with them)",
    )  # fmt: skip
    parser.add_argument("--skip", nargs="*", default=[], choices=["kyverno", "gatekeeper"])
    parser.add_argument(
        "--only", nargs="+", default=list(ROWS), choices=ROWS,
        help="the rows to run besides the baseline (default: all)",
    )  # fmt: skip
    parser.add_argument(
        "--pprof", type=Path, metavar="DIR",
        help="a CPU profile of kube-apiserver during each VAP row, DIR/<row>.pprof",
    )  # fmt: skip
    parser.add_argument("--pprof-seconds", type=int, default=20, help="the profile's length")
    parser.add_argument("--json", action="store_true", help="rows as JSON instead of a table")
    parser.add_argument("--keep", action="store_true", help="leave the cluster's folder")
    args = parser.parse_args(argv)
    if args.creates < 1 or args.pprof_seconds < 1 or any(level < 1 for level in args.levels):
        parser.error("--creates, --pprof-seconds and every level must be at least 1")
    if args.untagged_every < 0 or args.untagged_every == 1:
        parser.error("--untagged-every must be 0 (all compliant) or at least 2")
    if args.peer_address is None and ({"kyverno", "gatekeeper"} & set(args.only)) - set(args.skip):
        args.peer_address = [non_loopback_address()]
    args.peer_address = args.peer_address or []
    print(f"Kyverno and Gatekeeper at {' then '.join(args.peer_address)}", file=sys.stderr)
    work = Path(tempfile.mkdtemp(prefix="apiserver-admission-"))
    cluster_dir = work / "cluster"
    env = dict(os.environ)
    if args.pprof:
        args.pprof.mkdir(parents=True, exist_ok=True)
        env["E2E_APISERVER_FLAGS"] = f"{env.get('E2E_APISERVER_FLAGS', '')} --profiling=true"
    try:  # down after an `up` that failed half way too (it left etcd and the API server)
        subprocess.run([str(ROOT / "scripts" / "e2e-cluster.sh"), "up", str(cluster_dir)],
                       check=True, stdout=subprocess.DEVNULL, env=env)  # fmt: skip
        rows = run(Cluster(cluster_dir), args, work)
    finally:
        subprocess.run([str(ROOT / "scripts" / "e2e-cluster.sh"), "down", str(cluster_dir)],
                       check=False, stdout=subprocess.DEVNULL)  # fmt: skip
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"logs in {work}", file=sys.stderr)
    if args.json:
        print(json.dumps([asdict(r) | {"creates_per_s": r.creates_per_s} for r in rows], indent=2))
    else:
        print(table(rows))
        for r in rows:
            for sample in r.samples:
                print(f"{r.decider} at {r.clients}: {sample}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
