"""Background audit at fleet scale: finops against Kyverno's background scan (issue 23, item 2).

Platform engineers who run Kyverno already have PolicyReports from its background
scan. This bench puts our audit next to it: the same fleet, the same rule, the same
report API (wgpolicyk8s.io/v1alpha2 PolicyReports, what each writes by default):

- finops: `finops-operator run`, mode audit, the configuration's defaults, with the
  install's ServiceAccount token (its RBAC). It writes one PolicyReport per namespace
  and, in audit mode, also annotates each untagged pod and posts an Event for it.
- Kyverno v1.19.1's reports controller (`cmd/reports-controller`, built by
  scripts/build-kyverno.sh), out of cluster, every flag at its default but metrics
  off, with a ValidatingPolicy (policies.kyverno.io/v1; background scan on by
  default; `validationActions: [Audit]`) asking for the same five labels on the same
  GPU condition as bench/apiserver_admission.py's. Background scans are the reports
  controller's job; Kyverno's admission controller is not needed and does not run.

Each side runs alone on a fresh control plane (bench/scale.py's `controlplane`
target: `scripts/e2e-cluster.sh up` without the operator, kube-controller-manager
stopped, the install's webhooks deleted), loaded with the same fleet before the
process starts: `--pods` bare GPU pods (no owner, so each pod is its own workload
for both), 25 to a namespace, every tenth without its cost labels, bound by
`spec.nodeName` to 8-GPU Node objects and their status set Running. Nothing runs
them (no kwok, no kubelet): an audit reads only the objects, and kwok's status
writes and heartbeats would land in the API writes measured here.

From the process's start the bench measures:

- seconds until every violation is reported (the `fail` results of the
  PolicyReports, followed by a watch, equal the untagged pods), and until every pod
  has its result (`pass` + `fail` = pods);
- API writes: kube-apiserver's `apiserver_request_total` (every verb but GET, LIST,
  WATCH), by resource, from the start until the process is calm (under 5 % of a
  core for 5 s) -- nothing else writes on that control plane but kube-apiserver's
  own Leases;
- etcd bytes of the reports: the values under `/registry/wgpolicyk8s.io/policyreports/`
  (and Kyverno's EphemeralReports still there), read from etcd itself through its
  gRPC gateway (`/v3/kv/range`): what etcd stores, not the API's JSON; and the growth
  of etcd's database (`etcd_mvcc_db_total_size_in_bytes`);
- the process's CPU seconds (/proc/PID/stat) and RSS (when calm, and its VmHWM), and
  the CPU kube-apiserver and etcd spent meanwhile.

Prints a table (docs/benchmarks.md, "Background audit at 10,000 pods"); `--json`
prints the rows. Not part of .ci/run: peers stay out of CI.

Run from the repository root:  .venv/bin/python bench/audit_reports.py --pods 10000
"""

from __future__ import annotations

import argparse
import base64
import json
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

from bench.apiserver_admission import (  # noqa: E402
    Cluster,
    Peer,
    build,
    kyverno_env,
    kyverno_namespace,
    kyverno_policy,
)
from bench.scale import (  # noqa: E402
    GPUS_PER_NODE,
    Fleet,
    _meta,
    _node,
    _pod_spec,
    _proc_status,
    _running,
    controlplane_target,
    cpu_seconds,
    load_average,
    wait_for_calm,
)
from finops_devtools.devcluster.operator_runner import OperatorProcess  # noqa: E402
from finops_devtools.devcluster.reviews import COMPLETE_LABELS  # noqa: E402

PODS_PER_NAMESPACE = 25
UNTAGGED_EVERY = 10
AUDIT_LABEL = "bench.finops.resilio.tech/audit"  # the fleet's namespaces; Kyverno's selector
REPORTS = "/apis/wgpolicyk8s.io/v1alpha2/policyreports"
READ_VERBS = frozenset({"GET", "LIST", "WATCH", "CONNECT"})
SIDES = ("finops", "kyverno")


# ---------------------------------------------------------------- pure parts (tested)


def audit_fleet(pods: int) -> tuple[Fleet, int]:
    """Namespaces, GPU Nodes and `pods` bare running GPU pods; and how many are untagged."""
    world = Fleet(gpu_pods=pods)
    namespaces = -(-pods // PODS_PER_NAMESPACE)
    world.namespaces = namespaces
    world.objects += [
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": _meta(f"audit-{n:05d}", None, {AUDIT_LABEL: "true"}),
        }
        for n in range(namespaces)
    ]
    world.nodes = -(-pods // GPUS_PER_NODE)
    world.objects += [_node(f"gpu-{n:05d}", gpus=GPUS_PER_NODE) for n in range(world.nodes)]
    untagged = 0
    for i in range(pods):
        tagged = i % UNTAGGED_EVERY != UNTAGGED_EVERY - 1
        untagged += not tagged
        node = f"gpu-{i // GPUS_PER_NODE:05d}"
        labels = {"app": f"model-{i}", **(COMPLETE_LABELS if tagged else {})}
        status = _running(node, i)
        status.pop("_node")
        world.objects.append(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": _meta(f"gpu-{i:06d}", f"audit-{i // PODS_PER_NAMESPACE:05d}", labels),
                "spec": {**_pod_spec(1), "nodeName": node},
                "status": status,
            }
        )
    return world, untagged


def audit_policy() -> dict[str, Any]:
    """bench/apiserver_admission.py's ValidatingPolicy, auditing the fleet's namespaces."""
    policy = kyverno_policy()
    policy["spec"]["validationActions"] = ["Audit"]
    policy["spec"]["matchConstraints"]["namespaceSelector"] = {"matchLabels": {AUDIT_LABEL: "true"}}
    return policy


def writes(metrics: str) -> dict[str, float]:
    """apiserver_request_total of a /metrics text, writes only, by `VERB resource.group`."""
    found: dict[str, float] = {}
    for family in text_string_to_metric_families(metrics):
        if family.name != "apiserver_request":
            continue
        for sample in family.samples:
            labels = sample.labels
            if not sample.name.endswith("_total") or labels.get("verb", "") in READ_VERBS:
                continue
            resource = labels.get("resource", "")
            if labels.get("group"):
                resource += "." + labels["group"]
            if labels.get("subresource"):
                resource += "/" + labels["subresource"]
            key = f"{labels.get('verb', '')} {resource}"
            found[key] = found.get(key, 0.0) + sample.value
    return dict(found)


def delta(after: dict[str, float], before: dict[str, float]) -> dict[str, int]:
    """What grew from `before` to `after`, largest first."""
    grown = {k: int(v - before.get(k, 0)) for k, v in after.items()}
    return dict(sorted(((k, v) for k, v in grown.items() if v > 0), key=lambda kv: -kv[1]))


def prefix_end(prefix: str) -> str:
    """etcd's range_end for every key that starts with `prefix`."""
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


class Tally:
    """The fail and pass results of every PolicyReport, kept current from watch events."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.reports: dict[str, tuple[int, int]] = {}

    def event(self, kind: str, report: dict[str, Any]) -> None:
        meta = report.get("metadata") or {}
        key = f"{meta.get('namespace')}/{meta.get('name')}"
        summary = report.get("summary") or {}
        with self.lock:
            if kind == "DELETED":
                self.reports.pop(key, None)
            else:
                self.reports[key] = (int(summary.get("fail", 0)), int(summary.get("pass", 0)))

    def totals(self) -> tuple[int, int, int]:
        """Reports, failing results, passing results."""
        with self.lock:
            values = list(self.reports.values())
        return len(values), sum(f for f, _ in values), sum(p for _, p in values)


@dataclass
class Row:
    """One side's audit of the fleet: what the table shows."""

    side: str
    pods: int
    untagged: int
    first_report_s: float = 0.0
    violations_s: float = 0.0  # every untagged pod reported as failing
    results_s: float = 0.0  # every pod has its result
    calm_s: float = 0.0
    cpu_s: float = 0.0
    rss_mib: float = 0.0
    peak_rss_mib: float = 0.0
    reports: int = 0
    report_bytes: int = 0  # the reports' values in etcd
    ephemeral_left: int = 0
    etcd_growth_bytes: int = 0
    writes: dict[str, int] = field(default_factory=dict)
    apiserver_cpu_s: float = 0.0
    etcd_cpu_s: float = 0.0
    load: str = ""

    @property
    def write_total(self) -> int:
        return sum(self.writes.values())


COLUMNS: tuple[tuple[str, Callable[[Row], str]], ...] = (
    ("side", lambda r: r.side),
    ("pods (untagged)", lambda r: f"{r.pods:,} ({r.untagged:,})"),
    ("all violations s", lambda r: f"{r.violations_s:,.0f}"),
    ("all results s", lambda r: f"{r.results_s:,.0f}"),
    ("calm s", lambda r: f"{r.calm_s:,.0f}"),
    ("CPU s", lambda r: f"{r.cpu_s:.1f}"),
    ("RSS MiB (peak)", lambda r: f"{r.rss_mib:.0f} ({r.peak_rss_mib:.0f})"),
    ("API writes", lambda r: f"{r.write_total:,}"),
    ("reports", lambda r: f"{r.reports:,}"),
    ("report bytes in etcd", lambda r: f"{r.report_bytes:,}"),
    ("etcd db growth MiB", lambda r: f"{r.etcd_growth_bytes / 2**20:.1f}"),
    ("apiserver CPU s", lambda r: f"{r.apiserver_cpu_s:.1f}"),
    ("etcd CPU s", lambda r: f"{r.etcd_cpu_s:.1f}"),
)


def table(rows: Sequence[Row]) -> str:
    """The rows as a Markdown table, one column per entry of COLUMNS."""
    grid = [[name for name, _ in COLUMNS], ["---"] * len(COLUMNS)]
    grid += [[cell(r) for _, cell in COLUMNS] for r in rows]
    return "\n".join("| " + " | ".join(line) + " |" for line in grid)


# ---------------------------------------------------------------- the control plane


class Api:
    """kube-apiserver and its etcd, over HTTP, as the admin (and etcd's plain client URL)."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.context = ssl.create_default_context(cadata=cluster.ca.decode())
        state = json.loads((cluster.dir / "cluster.json").read_text())
        self.etcd = f"http://127.0.0.1:{state['etcd_port']}"

    def open(self, path: str, timeout: float = 60) -> Any:
        request = urllib.request.Request(self.cluster.server + path)
        request.add_header("Authorization", f"Bearer {self.cluster.token}")
        return urllib.request.urlopen(request, timeout=timeout, context=self.context)

    def metrics(self) -> str:
        with self.open("/metrics") as response:
            text: str = response.read().decode()
        return text

    def etcd_values(self, prefix: str) -> tuple[int, int]:
        """Keys under `prefix` in etcd, and the bytes of their values, 1,000 at a time."""
        count = size = 0
        key, end = prefix, prefix_end(prefix)
        while True:
            body = {"key": _b64(key), "range_end": _b64(end), "limit": 1000}
            request = urllib.request.Request(
                f"{self.etcd}/v3/kv/range", data=json.dumps(body).encode(), method="POST"
            )
            with urllib.request.urlopen(request, timeout=60) as response:
                answer = json.loads(response.read())
            kvs = answer.get("kvs", [])
            count += len(kvs)
            size += sum(len(base64.b64decode(kv.get("value", ""))) for kv in kvs)
            if not answer.get("more") or not kvs:
                return count, size
            key = base64.b64decode(kvs[-1]["key"]).decode() + "\x00"

    def etcd_db_bytes(self) -> int:
        with urllib.request.urlopen(f"{self.etcd}/metrics", timeout=30) as response:
            text = response.read().decode()
        for family in text_string_to_metric_families(text):
            if family.name == "etcd_mvcc_db_total_size_in_bytes":
                return int(family.samples[0].value)
        raise RuntimeError("etcd's /metrics has no etcd_mvcc_db_total_size_in_bytes")

    def follow_reports(self, tally: Tally, stop: threading.Event) -> None:
        """List, then watch, every PolicyReport into `tally` until `stop` (a thread's body)."""
        while not stop.is_set():
            try:
                with self.open(REPORTS) as response:
                    listed = json.loads(response.read())
                for item in listed.get("items", []):
                    tally.event("ADDED", item)
                version = listed["metadata"]["resourceVersion"]
                path = f"{REPORTS}?watch=1&resourceVersion={version}&timeoutSeconds=30"
                with self.open(path, timeout=90) as stream:
                    for line in stream:
                        event = json.loads(line)
                        if event.get("type") in ("ADDED", "MODIFIED", "DELETED"):
                            tally.event(event["type"], event["object"])
                        if stop.is_set():
                            return
            except (OSError, urllib.error.URLError, json.JSONDecodeError, KeyError):
                time.sleep(1)  # the CRD not served yet, or a watch that ended: list again


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


class DirectApi:
    """What OperatorProcess points the operator at: kube-apiserver itself, with `token`."""

    def __init__(self, cluster: Cluster, token: str) -> None:
        self.cluster = cluster
        self.token = token

    def write_kubeconfig(self, path: Path) -> Path:
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "bench",
                    "cluster": {
                        "server": self.cluster.server,
                        "certificate-authority-data": base64.b64encode(self.cluster.ca).decode(),
                    },
                }
            ],
            "users": [{"name": "operator", "user": {"token": self.token}}],
            "contexts": [{"name": "bench", "context": {"cluster": "bench", "user": "operator"}}],
            "current-context": "bench",
        }
        path.write_text(json.dumps(config))
        return path

    def requests_to(self, method: str, path: str) -> Sequence[Any]:
        return ()  # started with wait=False: nothing waits on the requests


# ---------------------------------------------------------------- the sides


def upstream_crds() -> Path:
    out = subprocess.run([str(ROOT / "scripts" / "fetch-upstream-crds.sh")], check=True,
                         capture_output=True, text=True).stdout  # fmt: skip
    return Path(out.strip().splitlines()[-1])


def prepare_finops(cluster: Cluster) -> None:
    """The PolicyReport CRD (from its Go module, as the e2e tests install it)."""
    crd = upstream_crds() / "wgpolicyk8s.io_policyreports.yaml"
    cluster.run("apply", "--server-side", "-f", str(crd))
    cluster.run("wait", "--for=condition=established", "--timeout=60s",
                "crd/policyreports.wgpolicyk8s.io")  # fmt: skip


def start_finops(cluster: Cluster, token: str, work: Path) -> tuple[int, Callable[[], Any]]:
    """Our operator in audit mode; its pid and what stops it."""
    operator = OperatorProcess(DirectApi(cluster, token), work / "finops", {"mode": "audit"})
    operator.start(wait=False)
    assert operator.pid is not None
    return operator.pid, operator.stop


def prepare_kyverno(cluster: Cluster) -> None:
    """Kyverno's CRDs (its PolicyReport CRD among them) and the audit ValidatingPolicy."""
    cluster.apply(kyverno_namespace())
    cluster.install_crds(build("build-kyverno.sh") / "crds")
    cluster.apply([audit_policy()])


def start_kyverno(cluster: Cluster, token: str, work: Path) -> tuple[int, Callable[[], Any]]:
    """Kyverno's reports controller, out of cluster, as the admin; its pid and its stop."""
    peer = Peer(
        [
            str(build("build-kyverno.sh") / "reports-controller"),
            f"--kubeconfig={cluster.dir / 'kubeconfig'}",
            "--disableMetrics=true",
        ],
        work / "kyverno-reports-controller.log",
        kyverno_env("kyverno-reports-controller"),
    )
    return peer.process.pid, peer.stop


Prepare = Callable[[Cluster], None]
Start = Callable[[Cluster, str, Path], tuple[int, Callable[[], Any]]]
STEPS: dict[str, tuple[Prepare, Start]] = {
    "finops": (prepare_finops, start_finops),
    "kyverno": (prepare_kyverno, start_kyverno),
}


def audit(side: str, pods: int, args: argparse.Namespace, work: Path) -> Row:
    """One side on its own control plane, loaded with the fleet before it starts."""
    world, untagged = audit_fleet(pods)
    row = Row(side=side, pods=pods, untagged=untagged)
    side_work = work / side
    side_work.mkdir(parents=True)
    with controlplane_target(world, side_work) as (_server, _context, token):
        assert token is not None  # the control plane target's operator token
        cluster = Cluster(side_work / "cluster")
        api = Api(cluster)
        apiserver, etcd = cluster.pid("kube-apiserver"), cluster.pid("etcd")
        prepare, start = STEPS[side]
        prepare(cluster)
        tally, stop = Tally(), threading.Event()
        follower = threading.Thread(target=api.follow_reports, args=(tally, stop), daemon=True)
        follower.start()
        writes0, db0 = writes(api.metrics()), api.etcd_db_bytes()
        api0, etcd0 = cpu_seconds(apiserver), cpu_seconds(etcd)
        began = time.monotonic()
        pid, halt = start(cluster, token, side_work)
        try:
            pidfile = side_work / f"{side}.pid"
            pidfile.write_text(str(pid))
            deadline = began + args.timeout
            while not (row.violations_s and row.results_s):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{side}: {tally.totals()} (reports, fail, pass) after "
                                       f"{args.timeout:.0f} s, {untagged} untagged")  # fmt: skip
                reports, failing, passing = tally.totals()
                now = round(time.monotonic() - began, 1)
                if reports and not row.first_report_s:
                    row.first_report_s = now
                if failing >= untagged and not row.violations_s:
                    row.violations_s = now
                if failing + passing >= pods and not row.results_s:
                    row.results_s = now
                time.sleep(0.25)
            wait_for_calm([pidfile], below=0.05, timeout=args.timeout)
            row.calm_s = round(time.monotonic() - began, 1)
            status = _proc_status(pid)
            row.cpu_s = round(cpu_seconds(pid), 1)
            row.rss_mib = round(status["VmRSS"] / 2**20, 1)
            row.peak_rss_mib = round(status["VmHWM"] / 2**20, 1)
            row.writes = delta(writes(api.metrics()), writes0)
            row.apiserver_cpu_s = round(cpu_seconds(apiserver) - api0, 1)
            row.etcd_cpu_s = round(cpu_seconds(etcd) - etcd0, 1)
            row.reports, row.report_bytes = api.etcd_values(
                "/registry/wgpolicyk8s.io/policyreports/"
            )
            row.ephemeral_left, _ = api.etcd_values("/registry/reports.kyverno.io/")
            row.etcd_growth_bytes = api.etcd_db_bytes() - db0
            row.load = load_average()
        finally:
            stop.set()
            halt()
    print(f"  {side}: {json.dumps(asdict(row))}", file=sys.stderr)  # kept if a later side fails
    return row


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--pods", type=lambda s: [int(x) for x in s.split(",")],
                        default=[10_000], help="fleet sizes, comma-separated")  # fmt: skip
    parser.add_argument("--sides", nargs="*", default=list(SIDES), choices=SIDES)
    parser.add_argument("--timeout", type=float, default=2400.0, help="seconds per side")
    parser.add_argument("--json", action="store_true", help="rows as JSON instead of a table")
    args = parser.parse_args(argv)
    if any(p < UNTAGGED_EVERY for p in args.pods):
        parser.error(f"every --pods must be at least {UNTAGGED_EVERY}")
    rows = []
    with tempfile.TemporaryDirectory(prefix="audit-reports-") as tmp:
        for pods in args.pods:
            for side in args.sides:
                rows.append(audit(side, pods, args, Path(tmp) / f"{pods}"))
    if args.json:
        print(json.dumps([asdict(r) | {"write_total": r.write_total} for r in rows], indent=2))
    else:
        print(table(rows))
        for r in rows:
            top = ", ".join(f"{k} {v:,}" for k, v in list(r.writes.items())[:8])
            print(f"\n{r.side} at {r.pods:,}: writes {top}; first report {r.first_report_s} s;"
                  f" EphemeralReports left {r.ephemeral_left}; load {r.load}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
