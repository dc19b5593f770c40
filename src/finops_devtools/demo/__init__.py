"""`finops-operator demo`: the whole product on one machine, no cluster needed.

    finops-operator demo [--days 10] [--teams 12] [--output DIR] [--keep] [--hold]

1. simulates a GPU cluster's recent days (`simulator`) and backfills a real
   Prometheus with them (`devcluster.prometheus_runner`; Debian's `prometheus`);
2. starts a Kubernetes API emulator on loopback (`devcluster.emulator`, kmock) and
   `finops-operator run` against both (`devcluster.operator_runner`);
3. applies the sample workloads of `demo.workloads` through the admission
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

The package, one idea per module: `tour` (the steps in order, setup and cleanup,
exit codes), `scenario` (the simulated cluster and the operator's configuration),
`admission_step` (workloads through the webhooks, and the audit's marks),
`reports_step` (the CostPolicy, the CostReports and the showback page),
`terminal` (what the demo prints), `waiting` and `signals` (Ctrl-C and SIGTERM).
"""

from __future__ import annotations

from finops_devtools.demo.tour import run

__all__ = ["run"]
