"""`finops-operator demo`: the whole product on one machine, no cluster needed.

    finops-operator demo [--days 10] [--teams 12] [--output DIR] [--keep] [--hold]

1. simulates a GPU cluster's recent days (`simulator`) and backfills a real
   Prometheus with them (`devcluster.prometheus_runner`; Debian's `prometheus`);
2. starts a Kubernetes API emulator on loopback (`devcluster.emulator`, kmock) and
   `finops-operator run` against both (`devcluster.operator_runner`);
3. applies the sample workloads of `demo_workloads` through the admission
   webhooks, as kube-apiserver would (`devcluster.api_server`), and prints what
   kubectl would: created, denied, warnings, inherited labels;
4. shows what the background audit wrote on the audit-mode workload (annotation
   and Warning Event) and the GPU allocation the operator exports on /metrics;
5. applies a sample CostPolicy and prints the PrometheusRule it became and its
   status;
6. waits for the CostReports and prints `kubectl get costreports`;
7. writes a showback report (`showback_html`) and prints its path.

Everything listens on 127.0.0.1. The demo stops what it started and removes its
work directory on exit, error or Ctrl-C (`--keep` keeps the directory; the HTML
report is written outside it, to `--output`). Exit 0 when every step showed what
it should; 1 when a step did not; 2 when a prerequisite is missing.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import math
import shutil
import signal
import sys
import tempfile
import threading
import time
import urllib.error
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, Final, TextIO

import yaml

from finops_devtools import demo_workloads
from finops_devtools.errors import DemoError, MissingPrerequisiteError
from finops_devtools.simulator.generation import NodePool, ScenarioParams, generate_scenario
from finops_devtools.simulator.openmetrics import ExportOptions
from finops_devtools.simulator.world import (
    A100,
    H100,
    MI300X,
    RESOURCE_AMD,
    RESOURCE_MIG_1G,
    RESOURCE_SHARED,
    Scenario,
)
from finops_operator.cli.demo import DEFAULT_OUTPUT
from finops_operator.domain import conventions
from finops_operator.views.kubectl_tables import (
    abbreviated_rule,
    costpolicies_table,
    costreports_table,
    human_duration,
    to_yaml,
)
from finops_operator.views.showback_html import render_showback

if TYPE_CHECKING:
    from finops_devtools.devcluster.emulator import KubeEmulator
    from finops_devtools.devcluster.operator_runner import OperatorProcess

COSTREPORTS: Final = "CostReport"
NODE_POOLS: Final = (
    NodePool(H100, count=3),
    NodePool(A100, count=1),
    NodePool(A100, RESOURCE_MIG_1G, count=1, gpus=4, units_per_gpu=7),
    NodePool(A100, RESOURCE_SHARED, count=1, gpus=4, units_per_gpu=4),
    NodePool(MI300X, RESOURCE_AMD, count=1),
)


class _Terminated(Exception):  # noqa: N818 (SIGTERM, handled like Ctrl-C)
    pass


# ---------------------------------------------------------------- arguments


# ---------------------------------------------------------------- output


class Printer:
    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.started = time.monotonic()

    def line(self, text: str = "") -> None:
        print(text, file=self.out, flush=True)

    def block(self, text: str, indent: str = "    ") -> None:
        for row in text.rstrip("\n").splitlines():
            self.line(indent + row)

    def step(self, title: str) -> None:
        elapsed = time.monotonic() - self.started
        self.line()
        self.line(f"== {title}  [{elapsed:.0f}s]")

    def command(self, text: str) -> None:
        self.line(f"  $ {text}")


# ---------------------------------------------------------------- the scenario


def simulated_window(
    days: int, now: datetime.datetime
) -> tuple[datetime.datetime, datetime.datetime]:
    """[start, end): `days` days up to the last full hour before `now`."""
    end = now.astimezone(datetime.UTC).replace(minute=0, second=0, microsecond=0)
    return end - datetime.timedelta(days=days), end


def scenario_params(args: argparse.Namespace, now: datetime.datetime) -> ScenarioParams:
    start, end = simulated_window(args.days, now)
    return ScenarioParams(
        start=start, end=end, seed=args.seed, teams=args.teams, node_pools=NODE_POOLS
    )


def operator_config(prometheus_url: str, scenario: Scenario) -> dict[str, Any]:
    return {
        "mode": "enforce",
        "prometheus": {"url": prometheus_url},
        "pricing": scenario.pricing.as_file(),
        "reports": {"intervalSeconds": 5},
    }


def budget_for(gpu_cost: Decimal) -> Decimal:
    """A round monthly budget that the month-to-date GPU cost uses about 80 % of."""
    wanted = gpu_cost * Decimal("1.25")
    return Decimal(max(100, math.ceil(wanted / 100) * 100))


def refreshed_periods(start: datetime.datetime, end: datetime.datetime) -> list[str]:
    """The months of the data that the operator reports (the current and the previous)."""
    current = end.strftime("%Y-%m")
    first_of_month = end.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    previous = (first_of_month - datetime.timedelta(days=1)).strftime("%Y-%m")
    periods = [current]
    if start < first_of_month:
        periods.append(previous)
    return periods


# ---------------------------------------------------------------- waiting


def wait_for(what: str, check: Callable[[], Any], timeout: float, interval: float = 0.25) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise DemoError(f"gave up after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


# ---------------------------------------------------------------- the tour


class Demo:
    def __init__(self, args: argparse.Namespace, printer: Printer) -> None:
        self.args = args
        self.p = printer
        self.now = datetime.datetime.now(datetime.UTC)
        self.workdir: Path = Path()
        self.cluster: KubeEmulator | None = None
        self.operator: OperatorProcess | None = None
        self.prometheus_url = ""
        self.places: list[tuple[str, str]] = []
        self.problems: list[str] = []

    # ------------------------------------------------ setup

    def check_prerequisites(self) -> None:
        from finops_devtools.devcluster.prometheus_runner import INSTALL_HINT, tools_available

        if not tools_available(self.args.prometheus, self.args.promtool):
            raise MissingPrerequisiteError(
                "the demo runs a real Prometheus, and `prometheus` or `promtool` was not "
                f"found. {INSTALL_HINT}."
            )
        try:
            import kmock  # noqa: F401
        except ImportError:
            raise MissingPrerequisiteError(
                "the demo needs kmock for its Kubernetes API emulator: "
                "pip install 'finops-operator[demo]' (or run scripts/bootstrap.sh)"
            ) from None

    def start_prometheus(self, stack: contextlib.ExitStack) -> Scenario:
        from finops_devtools.devcluster.prometheus_runner import PrometheusServer

        params = scenario_params(self.args, self.now)
        scenario = generate_scenario(params)
        nodes = len(scenario.nodes)
        gpus = sum(node.gpus for node in scenario.nodes)
        self.p.step("A simulated GPU cluster, in a real Prometheus")
        self.p.line(
            f"  {self.args.teams} teams, {nodes} nodes ({gpus} GPUs: H100, A100 whole/MIG/"
            f"time-sliced, MI300X), {len(scenario.pods):,} pods, LLM gateway traffic,"
        )
        self.p.line(
            f"  {params.start:%Y-%m-%d %H:%M} to {params.end:%Y-%m-%d %H:%M} UTC, scraped "
            f"every {self.args.scrape_interval}s; one team's spend jumps 3x two thirds in."
        )
        server = PrometheusServer(
            self.workdir / "prometheus",
            prometheus=self.args.prometheus,
            promtool=self.args.promtool,
        )
        stack.callback(server.stop)
        started = time.monotonic()
        self.p.line(f"  backfilling with promtool (one block file per day) into {server.data_dir}")
        server.backfill(
            scenario,
            ExportOptions(scrape_interval=self.args.scrape_interval, operator_replicas=1),
            keep_files=False,
        )
        server.start()
        self.prometheus_url = server.url
        pid = server.process.pid if server.process else "?"
        self.p.line(f"  done in {time.monotonic() - started:.1f}s")
        self._place("Prometheus", f"{server.url}  (pid {pid}, log {server.log_path})")
        return scenario

    def start_cluster(self, stack: contextlib.ExitStack, scenario: Scenario) -> None:
        from finops_devtools.devcluster.emulator import COSTREPORTS as REPORT_RESOURCE
        from finops_devtools.devcluster.emulator import KubeEmulator
        from finops_devtools.devcluster.operator_runner import OperatorProcess

        self.p.step("A Kubernetes API emulator and the operator; where everything is")
        cluster = KubeEmulator(REPORT_RESOURCE).start()
        self.cluster = cluster
        stack.callback(cluster.stop)
        kubeconfig = cluster.write_kubeconfig(self.workdir / "kubeconfig")
        self._place("Kubernetes API (kmock emulator)", f"{cluster.url}  (kubeconfig {kubeconfig})")
        operator = OperatorProcess(
            cluster,
            self.workdir / "operator",
            operator_config(self.prometheus_url, scenario),
            new_session=True,
        )
        stack.callback(operator.stop)
        operator.start()
        self.operator = operator
        self._place(
            "Operator (finops-operator run)",
            f"pid {operator.pid}, log {operator.log_path}, config {operator.config_path}",
        )
        self._place(
            "  admission webhooks",
            f"https://localhost:{operator.webhook_port}{conventions.VALIDATE_PATH} and "
            f"{conventions.MUTATE_PATH}  (CA {operator.cert})",
        )
        self._place("  metrics", f"http://127.0.0.1:{operator.metrics_port}/metrics")
        self._place("Work directory", str(self.workdir))
        for name, where in self.places:
            self.p.line(f"  {name + ':':34} {where}")

    def _place(self, name: str, where: str) -> None:
        self.places.append((name, where))

    # ------------------------------------------------ workloads

    def apply_workloads(self) -> None:
        from finops_devtools.devcluster.api_server import (
            AdmissionChain,
            created_line,
            denied_line,
            warning_lines,
        )

        assert self.cluster is not None and self.operator is not None
        cluster, operator = self.cluster, self.operator
        self.p.step("Workloads through the admission webhooks (mode: enforce by default)")
        for namespace in demo_workloads.namespaces():
            labels = {
                k: v
                for k, v in namespace["metadata"]["labels"].items()
                if not k.startswith("kubernetes.io/")
            }
            cluster.create(namespace)
            shown = ", ".join(f"{k}={v}" for k, v in labels.items()) or "no cost labels"
            self.p.line(f"  namespace/{namespace['metadata']['name']} created ({shown})")
        cluster.create(demo_workloads.gpu_node())
        # The namespace index must hold the labels before workloads inherit them.
        wait_for("the operator to see the namespaces", self._namespaces_indexed, timeout=30)
        chain = AdmissionChain(operator, cluster)
        for sample in demo_workloads.samples():
            path = self.workdir / sample.file
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(yaml.safe_dump(sample.obj, sort_keys=False))
            self.p.line()
            self.p.line(f"  # {sample.shows}")
            self.p.command(f"kubectl apply -f {sample.file}")
            result = chain.create(sample.obj)
            for line in warning_lines(result.warnings):
                self.p.line(f"  {line}")
            if result.outcome == "denied":
                self.p.line("  " + denied_line(sample.file, result.webhook, result.message))
            else:
                self.p.line(f"  {created_line(result.obj)}")
                if result.inherited:
                    inherited = ", ".join(f"{k}={v}" for k, v in sorted(result.inherited.items()))
                    self.p.line(
                        f"  (labels inherited from namespace/{sample.namespace}: {inherited})"
                    )
                for pod in demo_workloads.running_pods(result.obj):
                    cluster.create(pod)
            self._expect(sample, result.outcome, bool(result.warnings), bool(result.inherited))

    def _namespaces_indexed(self) -> bool:
        # The inheriting namespace's labels are indexed once a label-less Job gets a patch.
        from finops_devtools.devcluster.api_server import admission_review

        assert self.operator is not None
        probe = next(s for s in demo_workloads.samples() if s.expect == "inherited")
        response = self.operator.review(conventions.MUTATE_PATH, admission_review(probe.obj))
        return bool(response.get("patch"))

    def _expect(
        self, sample: demo_workloads.Sample, outcome: str, warned: bool, inherited: bool
    ) -> None:
        got = {
            "created": outcome == "created" and not warned,
            "ignored": outcome == "created" and not warned,
            "denied": outcome == "denied",
            "warned": outcome == "created" and warned,
            "inherited": outcome == "created" and inherited,
        }[sample.expect]
        if not got:
            self.problems.append(
                f"{sample.file}: expected {sample.expect}, got {outcome}"
                f"{' with warnings' if warned else ''}"
            )

    def show_audit(self) -> None:
        assert self.cluster is not None and self.operator is not None
        cluster = self.cluster
        sample = next(s for s in demo_workloads.samples() if s.expect == "warned")
        kind, namespace, name = sample.obj["kind"], sample.namespace, sample.name
        self.p.step("What the background audit wrote on the admitted, flagged workload")
        key = conventions.VIOLATIONS_ANNOTATION
        annotated = wait_for(
            f"the {key} annotation on {kind} {namespace}/{name}",
            lambda: (
                ((cluster.get(kind, namespace, name) or {}).get("metadata") or {})
                .get("annotations", {})
                .get(key)
            ),
            timeout=30,
        )
        escaped = key.replace(".", "\\.")
        self.p.command(
            f"kubectl get {kind.lower()} {name} -n {namespace} "
            f"-o jsonpath='{{.metadata.annotations.{escaped}}}'"
        )
        self.p.line(f"  {annotated}")

        def warning_events() -> list[dict[str, Any]]:
            return [
                e
                for e in cluster.list("Event", namespace)
                if (e.get("involvedObject") or {}).get("name") == name
                and e.get("type") == "Warning"
            ]

        events = wait_for(f"a Warning Event about {name}", warning_events, timeout=30)
        self.p.command(
            f"kubectl get events -n {namespace} --field-selector involvedObject.name={name}"
        )
        self.p.block(events_table(events, datetime.datetime.now(datetime.UTC)), "  ")

        allocation = wait_for(
            "the GPU allocation of the running pods on /metrics",
            lambda: [
                line
                for line in self.operator.metrics().splitlines()  # type: ignore[union-attr]
                if line.startswith(conventions.METRIC_POD_GPU_ALLOCATION + "{")
            ],
            timeout=30,
        )
        self.p.line()
        self.p.line("  # the operator's inventory of running GPU pods, scraped by Prometheus")
        self.p.command(
            f"curl -s 127.0.0.1:{self.operator.metrics_port}/metrics | "
            f"grep ^{conventions.METRIC_POD_GPU_ALLOCATION}"
        )
        for line in allocation:
            self.p.line(f"  {line}")

    # ------------------------------------------------ policy and reports

    def wait_for_reports(self, periods: list[str], with_budget_of: str | None = None) -> list[Any]:
        assert self.cluster is not None
        cluster = self.cluster

        def ready() -> list[Any] | None:
            reports = [r for r in cluster.list(COSTREPORTS) if r.get("status")]
            have = {r["metadata"]["name"] for r in reports}
            if not all(f"cluster-{p}" in have for p in periods):
                return None
            if with_budget_of is not None:
                team = report_of(reports, with_budget_of, periods[0])
                if team is None or "budgetUsedPercent" not in team["status"]:
                    return None
            return reports

        result: list[Any] = wait_for(
            f"the CostReports of {', '.join(periods)}", ready, self.args.timeout, interval=0.5
        )
        return result

    def apply_policy(self, periods: list[str]) -> None:
        assert self.cluster is not None
        cluster = self.cluster
        self.p.step("A CostPolicy becomes a PrometheusRule")
        first = self.wait_for_reports(periods)
        team = report_of(first, demo_workloads.POLICY_TEAM, periods[0])
        spent = Decimal(str(team["status"]["gpuCost"])) if team else Decimal(0)
        policy = demo_workloads.sample_policy(budget_for(spent))
        meta = policy["metadata"]
        path = self.workdir / "manifests" / meta["namespace"] / f"costpolicy-{meta['name']}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(to_yaml(policy))
        self.p.command(f"cat {path.relative_to(self.workdir)}")
        self.p.block(to_yaml(policy), "  ")
        self.p.command(f"kubectl apply -f {path.relative_to(self.workdir)}")
        cluster.create(policy)
        self.p.line(f"  costpolicy.{conventions.API_GROUP}/{meta['name']} created")
        rule_name = conventions.COSTPOLICY_RULE_PREFIX + meta["name"]
        rule = wait_for(
            f"PrometheusRule {meta['namespace']}/{rule_name}",
            lambda: cluster.get("PrometheusRule", meta["namespace"], rule_name),
            timeout=30,
        )
        full = self.workdir / f"prometheusrule-{rule_name}.yaml"
        full.write_text(to_yaml(rule))
        self.p.line()
        self.p.command(f"kubectl get prometheusrule {rule_name} -n {meta['namespace']} -o yaml")
        self.p.block(abbreviated_rule(rule), "  ")
        self.p.line(f"  # (the whole rule: {full})")
        stored = wait_for(
            "the CostPolicy's status",
            lambda: (
                (p := cluster.get("CostPolicy", meta["namespace"], meta["name"]))
                and (p.get("status") or {}).get("conditions")
                and p
            ),
            timeout=30,
        )
        self.p.line()
        self.p.command(f"kubectl get costpolicies -n {meta['namespace']}")
        self.p.block(costpolicies_table([stored], datetime.datetime.now(datetime.UTC)), "  ")
        self.p.command(
            f"kubectl get costpolicy {meta['name']} -n {meta['namespace']} "
            "-o jsonpath='{.status}'"
        )
        self.p.block(to_yaml(stored.get("status")), "  ")
        recording = cluster.get(
            "PrometheusRule", conventions.OPERATOR_NAMESPACE, conventions.RECORDING_RULES_NAME
        )
        if recording:
            count = sum(len(g.get("rules") or []) for g in recording["spec"]["groups"])
            self.p.line(
                f"  # its alerts build on {count} shared recording rules in prometheusrule/"
                f"{conventions.RECORDING_RULES_NAME} -n {conventions.OPERATOR_NAMESPACE}"
            )

    def show_reports(self, periods: list[str]) -> list[Any]:
        self.p.step("CostReports, written by the operator from Prometheus")
        reports = self.wait_for_reports(periods, with_budget_of=demo_workloads.POLICY_TEAM)
        self.p.command("kubectl get costreports")
        self.p.block(costreports_table(reports, datetime.datetime.now(datetime.UTC)), "  ")
        return reports

    def write_showback(self, reports: list[Any]) -> Path:
        self.p.step("A showback report for people")
        output: Path = self.args.output or DEFAULT_OUTPUT
        output.mkdir(parents=True, exist_ok=True)
        path = output / "showback.html"
        page = render_showback(
            reports,
            datetime.datetime.now(datetime.UTC),
            title="GPU showback",
            note="Simulated data: made by `finops-operator demo`.",
        )
        path.write_text(page, encoding="utf-8")
        self.p.line(f"  {path.resolve()}  (open it in a browser; one file, no external assets)")
        return path

    # ------------------------------------------------ run

    def run(self) -> int:
        self.check_prerequisites()
        self.p.line("finops-operator demo: GPU cost labels, policies and reports on one machine.")
        with contextlib.ExitStack() as stack:
            _restore_signals_at_the_end(stack)
            self.workdir = self._workdir(stack)
            try:
                self.tour(stack)
            except Exception:
                self._print_log_tail()
                raise
            finally:
                _ignore_signals()  # a second Ctrl-C must not cut the cleanup short
            self.p.step("Done; cleaning up")
        self.p.line(f"  stopped the operator, Prometheus and the emulator{self._kept()}")
        return 0

    def tour(self, stack: contextlib.ExitStack) -> None:
        scenario = self.start_prometheus(stack)
        self.start_cluster(stack, scenario)
        self.apply_workloads()
        self.show_audit()
        start, end = simulated_window(self.args.days, self.now)
        periods = refreshed_periods(start, end)
        self.apply_policy(periods)
        reports = self.show_reports(periods)
        self.write_showback(reports)
        if self.problems:
            raise DemoError("; ".join(self.problems))
        if self.args.hold:
            self.hold()

    def _print_log_tail(self, lines: int = 25) -> None:
        if self.operator is None:
            return
        with contextlib.suppress(OSError):
            tail = self.operator.log().splitlines()[-lines:]
            print(f"last lines of the operator's log ({self.operator.log_path}):", file=sys.stderr)
            for line in tail:
                print(f"  {line}", file=sys.stderr)

    def _workdir(self, stack: contextlib.ExitStack) -> Path:
        if self.args.workdir is not None:
            workdir: Path = self.args.workdir
            workdir.mkdir(parents=True, exist_ok=True)
            return workdir.resolve()
        workdir = Path(tempfile.mkdtemp(prefix="finops-demo-"))
        if not self.args.keep:
            stack.callback(shutil.rmtree, workdir, True)
        return workdir

    def _kept(self) -> str:
        if self.args.keep or self.args.workdir is not None:
            return f"; kept {self.workdir}"
        return f"; removed {self.workdir}"

    def hold(self) -> None:
        self.p.step("Holding: everything keeps running until Ctrl-C")
        for name, where in self.places:
            self.p.line(f"  {name + ':':34} {where}")
        _, end = simulated_window(self.args.days, self.now)
        at = int(end.timestamp()) - self.args.scrape_interval
        self.p.line(f"  The simulated series end at {end:%Y-%m-%d %H:%M} UTC. Try:")
        config = self.operator.config_path if self.operator else "CONFIG"
        self.p.command(f"{_own_command()} report --config {config} --period {end:%Y-%m}")
        self.p.command(
            f"curl -s '{self.prometheus_url}/api/v1/query"
            f"?query=sum(finops_pod_gpu_allocation)&time={at}'"
        )
        with contextlib.suppress(KeyboardInterrupt):
            while True:
                time.sleep(3600)


def _own_command() -> str:
    """How to run finops-operator from here: the script next to this Python, if any."""
    script = Path(sys.executable).parent / "finops-operator"
    return str(script) if script.exists() else "finops-operator"


def report_of(reports: list[Any], team: str, period: str) -> Any:
    for report in reports:
        spec = report.get("spec") or {}
        if spec.get("team") == team and spec.get("period") == period and report.get("status"):
            return report
    return None


def events_table(events: list[dict[str, Any]], now: datetime.datetime) -> str:
    """`kubectl get events`: LAST SEEN, TYPE, REASON, OBJECT, MESSAGE."""
    rows = [["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]]
    for event in events:
        seen = (
            event.get("lastTimestamp")
            or event.get("eventTime")
            or event.get("firstTimestamp")
            or (event.get("metadata") or {}).get("creationTimestamp")
        )
        age = "<unknown>"
        if isinstance(seen, str):
            with contextlib.suppress(ValueError):
                moment = datetime.datetime.fromisoformat(seen.replace("Z", "+00:00"))
                age = human_duration((now - moment).total_seconds())
        involved = event.get("involvedObject") or {}
        rows.append(
            [
                age,
                str(event.get("type", "")),
                str(event.get("reason", "")),
                f"{str(involved.get('kind', '')).lower()}/{involved.get('name', '')}",
                str(event.get("message", "")),
            ]
        )
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    return "\n".join("   ".join([*(r[i].ljust(widths[i]) for i in range(4)), r[4]]) for r in rows)


_STOP_SIGNALS: Final = (signal.SIGINT, signal.SIGTERM)


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def _restore_signals_at_the_end(stack: contextlib.ExitStack) -> None:
    if _in_main_thread():
        for signum in _STOP_SIGNALS:
            stack.callback(signal.signal, signum, signal.getsignal(signum))


def _ignore_signals() -> None:
    if _in_main_thread():
        for signum in _STOP_SIGNALS:
            signal.signal(signum, signal.SIG_IGN)


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    def handler(signum: int, frame: FrameType | None) -> None:
        raise _Terminated()

    if not _in_main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run(args: argparse.Namespace, out: TextIO | None = None) -> int:
    printer = Printer(out or sys.stdout)
    demo = Demo(args, printer)
    try:
        with _sigterm_as_interrupt():
            return demo.run()
    except MissingPrerequisiteError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except (KeyboardInterrupt, _Terminated) as err:
        print("\ninterrupted: stopped the operator, Prometheus and the emulator", file=sys.stderr)
        return 143 if isinstance(err, _Terminated) else 130
    except (DemoError, OSError, urllib.error.URLError, AssertionError, RuntimeError) as err:
        print(f"error: the demo failed: {err}", file=sys.stderr)
        if demo.operator is not None and demo.args.keep:
            print(f"  operator log: {demo.operator.log_path}", file=sys.stderr)
        return 1
