"""The tour: start everything, take the steps in order, stop everything, whatever happens.

`run` is `finops-operator demo`: it maps what went wrong to an exit code. `Demo`
starts Prometheus over the simulated cluster, the API emulator and the operator
(setup), runs the admission and reports steps, holds on `--hold`, and stops what it
started on exit, error or Ctrl-C.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import shutil
import sys
import tempfile
import time
import urllib.error
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, TextIO

import yaml

from finops_devtools.demo.admission_step import apply_workloads, show_audit
from finops_devtools.demo.reports_step import (
    apply_policy,
    show_reports,
    write_showback,
)
from finops_devtools.demo.scenario import (
    operator_config,
    refreshed_periods,
    scenario_params,
    simulated_window,
)
from finops_devtools.demo.signals import (
    Terminated,
    ignore_signals,
    restore_signals_at_the_end,
    sigterm_as_interrupt,
)
from finops_devtools.demo.terminal import Printer
from finops_devtools.demo.waiting import wait_for
from finops_devtools.errors import DemoError, MissingPrerequisiteError
from finops_devtools.simulator.generation import generate_scenario
from finops_devtools.simulator.openmetrics import ExportOptions
from finops_devtools.simulator.world import Scenario
from finops_operator.domain import conventions

if TYPE_CHECKING:
    from finops_devtools.devcluster.emulator import KubeEmulator
    from finops_devtools.devcluster.operator_runner import OperatorProcess
    from finops_devtools.devcluster.prometheus_runner import PrometheusServer

# The demo's Prometheus: no scrape targets (the data is backfilled), and it evaluates
# the rule files in rules/ every 5 seconds.
RULES_CONFIG: Final = """\
# Written by finops-operator demo: no scrape targets, the data is backfilled.
global:
  scrape_interval: 1m
  evaluation_interval: 5s
rule_files: [rules/*.yaml]
"""


class Demo:
    """The tour: setup, the steps in order, and a cleanup whatever happens."""

    def __init__(self, args: argparse.Namespace, printer: Printer) -> None:
        self.args = args
        self.p = printer
        self.now = datetime.datetime.now(datetime.UTC)
        self.workdir: Path = Path()
        self.cluster: KubeEmulator | None = None
        self.operator: OperatorProcess | None = None
        self.prometheus_url = ""
        self.prometheus_server: PrometheusServer | None = None
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
                "pip install -e ./devtools (or run scripts/bootstrap.sh)"
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
        # It evaluates whatever rule files the demo puts in rules/: the operator's
        # shared recording rules once it has written them (load_operator_rules).
        server = PrometheusServer(
            self.workdir / "prometheus",
            prometheus=self.args.prometheus,
            promtool=self.args.promtool,
            config=RULES_CONFIG,
        )
        (server.workdir / "rules").mkdir(parents=True, exist_ok=True)
        self.prometheus_server = server
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

    def start_cluster(
        self, stack: contextlib.ExitStack, scenario: Scenario
    ) -> tuple[KubeEmulator, OperatorProcess]:
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
        self.load_operator_rules(cluster)
        self._place("Work directory", str(self.workdir))
        for name, where in self.places:
            self.p.line(f"  {name + ':':34} {where}")
        return cluster, operator

    def load_operator_rules(self, cluster: Any) -> None:
        """Hand Prometheus the recording rules the operator wrote, as the Prometheus
        Operator would after its ruleSelector matched their labels, and reload it; the
        CostPolicies' RulesEvaluating condition then reads True."""
        from finops_operator.domain.rules.prometheus_rule import rule_groups_file

        server = self.prometheus_server
        if server is None:
            return
        written = wait_for(
            "the shared recording rules",
            lambda: cluster.get(
                "PrometheusRule", conventions.OPERATOR_NAMESPACE, conventions.RECORDING_RULES_NAME
            ),
            timeout=30,
        )
        target = server.workdir / "rules" / f"{conventions.RECORDING_RULES_NAME}.yaml"
        target.write_text(yaml.safe_dump(rule_groups_file(written), sort_keys=False))
        server.reload()
        self._place("  rules loaded by Prometheus", str(target))

    def _place(self, name: str, where: str) -> None:
        self.places.append((name, where))

    # ------------------------------------------------ run

    def run(self) -> int:
        self.check_prerequisites()
        self.p.line("finops-operator demo: GPU cost labels, policies and reports on one machine.")
        with contextlib.ExitStack() as stack:
            restore_signals_at_the_end(stack)
            self.workdir = self._workdir(stack)
            try:
                self.tour(stack)
            except Exception:
                self._print_log_tail()
                raise
            finally:
                ignore_signals()  # a second Ctrl-C must not cut the cleanup short
            self.p.step("Done; cleaning up")
        self.p.line(f"  stopped the operator, Prometheus and the emulator{self._kept()}")
        return 0

    def tour(self, stack: contextlib.ExitStack) -> None:
        scenario = self.start_prometheus(stack)
        cluster, operator = self.start_cluster(stack, scenario)
        self.problems += apply_workloads(self.p, cluster, operator, self.workdir)
        show_audit(self.p, cluster, operator)
        start, end = simulated_window(self.args.days, self.now)
        periods = refreshed_periods(start, end)
        apply_policy(self.p, cluster, self.workdir, periods, self.args.timeout)
        reports = show_reports(self.p, cluster, periods, self.args.timeout)
        write_showback(self.p, reports, self.args.output)
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


def run(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """`finops-operator demo`: 0 when every step showed what it should, 1 when one did
    not, 2 when a prerequisite is missing, 130 or 143 when interrupted."""
    printer = Printer(out or sys.stdout)
    demo = Demo(args, printer)
    try:
        with sigterm_as_interrupt():
            return demo.run()
    except MissingPrerequisiteError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except (KeyboardInterrupt, Terminated) as err:
        print("\ninterrupted: stopped the operator, Prometheus and the emulator", file=sys.stderr)
        return 143 if isinstance(err, Terminated) else 130
    except (DemoError, OSError, urllib.error.URLError, AssertionError, RuntimeError) as err:
        print(f"error: the demo failed: {err}", file=sys.stderr)
        if demo.operator is not None and demo.args.keep:
            print(f"  operator log: {demo.operator.log_path}", file=sys.stderr)
        return 1
