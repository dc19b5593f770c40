"""Thanos processes for the fleet tests and bench: sidecars, Query and Ruler on 127.0.0.1.

One `thanos` binary (scripts/build-thanos.sh) plays every role. A sidecar serves its
Prometheus' TSDB over the Store API and adds that Prometheus' external labels
(`cluster`, `prometheus_replica`) to every series, which is how a fleet looks
through Thanos Query: the same data, labelled by cluster.

    with ThanosProcess.sidecar(thanos, workdir, prometheus) as sidecar, ThanosProcess.query(
        thanos, workdir, [sidecar.grpc], replica_labels=("prometheus_replica",)
    ) as query:
        PrometheusClient(PrometheusConfig(url=query.url))
"""

from __future__ import annotations

import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from finops_devtools.devcluster import free_port, log_tail, stop_process
from finops_devtools.devcluster.prometheus_runner import PrometheusServer
from finops_devtools.errors import PrometheusRunnerError

FLEET_CONFIG = """\
# Written by finops-operator (devcluster): no scrape targets, the data is backfilled.
global:
  scrape_interval: 1m
  evaluation_interval: 1m
  external_labels:
{labels}
"""


def prometheus_config(external_labels: Sequence[tuple[str, str]]) -> str:
    """A prometheus.yml with these external labels (what a Thanos sidecar adds)."""
    lines = "\n".join(f'    {name}: "{value}"' for name, value in external_labels)
    return FLEET_CONFIG.format(labels=lines)


class ThanosProcess:
    """One `thanos <role>` process; `url` is its HTTP address, `grpc` its Store API."""

    def __init__(self, thanos: str, workdir: Path, role: str, args: Sequence[str]) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.http_port, self.grpc_port = free_port(), free_port()
        self.log_path = workdir / f"thanos-{role}-{self.http_port}.log"
        command = [
            thanos, role,
            f"--http-address=127.0.0.1:{self.http_port}",
            f"--grpc-address=127.0.0.1:{self.grpc_port}",
            "--log.level=warn",
            *args,
        ]  # fmt: skip
        with self.log_path.open("ab") as log:
            self.process: subprocess.Popen[bytes] | None = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True,
            )  # fmt: skip

    @classmethod
    def sidecar(cls, thanos: str, workdir: Path, prometheus: PrometheusServer) -> ThanosProcess:
        return cls(
            thanos,
            workdir,
            "sidecar",
            [f"--prometheus.url={prometheus.url}", f"--tsdb.path={prometheus.data_dir}"],
        ).ready()

    @classmethod
    def query(
        cls,
        thanos: str,
        workdir: Path,
        endpoints: Sequence[str],
        replica_labels: Sequence[str] = (),
        extra_args: Sequence[str] = (),
    ) -> ThanosProcess:
        args = [f"--endpoint={endpoint}" for endpoint in endpoints]
        args += [f"--query.replica-label={label}" for label in replica_labels]
        return cls(thanos, workdir, "query", [*args, *extra_args]).ready()

    @classmethod
    def rule(
        cls, thanos: str, workdir: Path, rule_files: Sequence[Path], query_url: str
    ) -> ThanosProcess:
        data = workdir / "ruler-data"
        data.mkdir(parents=True, exist_ok=True)
        args = [f"--rule-file={path}" for path in rule_files]
        args += [
            f"--data-dir={data}",
            f"--query={query_url.removeprefix('http://')}",
            "--eval-interval=15s",
            '--label=ruler="fleet"',
        ]
        return cls(thanos, workdir, "rule", args).ready()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def grpc(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def ready(self, timeout: float = 60.0) -> ThanosProcess:
        deadline = time.monotonic() + timeout
        while True:
            if self.process is None or self.process.poll() is not None:
                self.stop()
                raise PrometheusRunnerError(f"thanos exited early:\n{self.log()}")
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as response:
                    if response.status == 200:
                        return self
            except (OSError, urllib.error.HTTPError):
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise PrometheusRunnerError(f"thanos not ready after {timeout}s:\n{self.log()}")
            time.sleep(0.2)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 20 s; safe to call twice."""
        process, self.process = self.process, None
        stop_process(process)

    def log(self) -> str:
        return log_tail(self.log_path)

    def __enter__(self) -> ThanosProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
