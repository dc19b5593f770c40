"""A real Prometheus on loopback, over a TSDB backfilled from the cluster simulator.

    server = PrometheusServer(workdir)
    server.backfill(scenario, ExportOptions(scrape_interval=300, operator_replicas=2))
    server.start()          # waits until /-/ready answers 200
    server.query("sum(finops_gpu_hourly_price)", at=some_datetime)
    server.stop()           # always (or use `backfilled_prometheus`, a context manager)

Debian's `prometheus` package (2.42) provides both binaries (`sudo apt-get install
prometheus`; scripts/bootstrap.sh does it). Other binaries can be named with
$FINOPS_PROMETHEUS and $FINOPS_PROMTOOL (the tests also read $FINOPS_TEST_PROMETHEUS
and $FINOPS_TEST_PROMTOOL). Notes on the backfill:

- `promtool tsdb create-blocks-from openmetrics` writes 2-hour blocks and re-reads
  its whole input once per block, so `backfill` writes one file per day
  (`write_openmetrics_chunks`) and imports them one by one; `keep_files=False`
  deletes each file once imported.
- Prometheus deletes blocks older than its retention at start, so the server runs
  with `--storage.tsdb.retention.time=3650d`.
- Backfilled series have no staleness markers: a series stays visible for the
  5-minute lookback after its last sample.
- Keep the simulated period in the past (`recent_days`, `previous_month`): the data
  is read as history, and instant queries are made `at` times inside it.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from finops_devtools.devcluster import free_port, log_tail, stop_process
from finops_devtools.errors import PrometheusRunnerError
from finops_devtools.simulator.openmetrics import ExportOptions, write_openmetrics_chunks
from finops_devtools.simulator.world import Scenario

__all__ = [
    "INSTALL_HINT",
    "PROMETHEUS",
    "PROMTOOL",
    "PrometheusRunnerError",
    "PrometheusServer",
    "backfilled_prometheus",
    "free_port",
    "previous_month",
    "recent_days",
    "tools_available",
]

PROMETHEUS = (
    os.environ.get("FINOPS_PROMETHEUS") or os.environ.get("FINOPS_TEST_PROMETHEUS") or "prometheus"
)
PROMTOOL = os.environ.get("FINOPS_PROMTOOL") or os.environ.get("FINOPS_TEST_PROMTOOL") or "promtool"
INSTALL_HINT = (
    "Debian's prometheus package provides both: sudo apt-get install prometheus "
    "(or run scripts/bootstrap.sh as root); other binaries can be named with "
    "$FINOPS_PROMETHEUS and $FINOPS_PROMTOOL"
)

MINIMAL_CONFIG = """\
# Written by finops-operator (devcluster): no scrape targets, the data is backfilled.
global:
  scrape_interval: 1m
  evaluation_interval: 1m
"""


def recent_days(days: int, ago: int = 1) -> tuple[datetime, datetime]:
    """[start, end) of `days` whole UTC days ending at midnight `ago` days before today."""
    end = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    end -= timedelta(days=ago)
    return end - timedelta(days=days), end


def previous_month() -> tuple[datetime, datetime]:
    """[start, end) of the calendar month before the current one (UTC)."""
    this_month = datetime.now(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    start = (this_month - timedelta(days=1)).replace(day=1)
    return start, this_month


def tools_available(prometheus: str | None = None, promtool: str | None = None) -> bool:
    """Whether both binaries can be run (by path, or found on $PATH)."""
    return all(shutil.which(tool) for tool in (prometheus or PROMETHEUS, promtool or PROMTOOL))


class PrometheusServer:
    """One Prometheus process on 127.0.0.1 over its own data directory."""

    def __init__(
        self,
        workdir: Path,
        extra_args: tuple[str, ...] = (),
        prometheus: str | None = None,
        promtool: str | None = None,
        config: str = MINIMAL_CONFIG,
    ) -> None:
        self.config = config  # the prometheus.yml written at each start
        self.prometheus = prometheus or PROMETHEUS
        self.promtool = promtool or PROMTOOL
        self.workdir = workdir
        self.data_dir = workdir / "data"
        self.config_path = workdir / "prometheus.yml"
        self.log_path = workdir / "prometheus.log"
        self.extra_args = extra_args
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None
        workdir.mkdir(parents=True, exist_ok=True)
        self.data_dir.mkdir(exist_ok=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # ------------------------------------------------------------ data

    def backfill_file(self, openmetrics: Path) -> str:
        """Import an OpenMetrics file into the data directory with promtool."""
        if self.process is not None:
            raise PrometheusRunnerError("backfill before start(): Prometheus reads blocks at start")
        result = subprocess.run(
            [self.promtool, "tsdb", "create-blocks-from", "openmetrics", "--quiet",
             str(openmetrics), str(self.data_dir)],
            capture_output=True, text=True, timeout=600, check=False,
        )  # fmt: skip
        if result.returncode != 0:
            raise PrometheusRunnerError(
                f"promtool refused {openmetrics}:\n{result.stdout}\n{result.stderr}"
            )
        return result.stdout

    def backfill(
        self,
        scenario: Scenario,
        options: ExportOptions | None = None,
        keep_files: bool = True,
        progress: Callable[[int, int], None] | None = None,
    ) -> list[Path]:
        """Write the scenario's OpenMetrics (one file per day) and import it; the files.

        `progress(done, total)` is called after each file; with `keep_files=False`
        each file is deleted once imported (the returned paths no longer exist).
        """
        folder = self.workdir / f"openmetrics-{len(list(self.workdir.glob('openmetrics-*')))}"
        paths = write_openmetrics_chunks(scenario, folder, options)
        for done, path in enumerate(paths, start=1):
            self.backfill_file(path)
            if not keep_files:
                path.unlink()
            if progress is not None:
                progress(done, len(paths))
        if not keep_files:
            shutil.rmtree(folder, ignore_errors=True)
        return paths

    # ------------------------------------------------------------ process

    def start(
        self, timeout: float = 60.0, same_port: bool = False, config: str | None = None
    ) -> PrometheusServer:
        """Start on a free port, or on the previous one with `same_port` (a restart).

        `config` replaces the prometheus.yml given to the constructor (by default no
        scrape target: the data is backfilled).
        """
        if config is not None:
            self.config = config
        self.config_path.write_text(self.config)
        if not (same_port and self.port):
            self.port = free_port()
        command = [
            self.prometheus,
            f"--config.file={self.config_path}",
            f"--storage.tsdb.path={self.data_dir}",
            "--storage.tsdb.retention.time=3650d",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--log.level=warn",
            *self.extra_args,
        ]
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True,
            )  # fmt: skip
        try:
            self._wait_ready(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            assert self.process is not None
            if self.process.poll() is not None:
                raise PrometheusRunnerError(f"prometheus exited early:\n{self.log()}")
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as response:
                    if response.status == 200:
                        return
            except (OSError, urllib.error.HTTPError):
                pass
            if time.monotonic() > deadline:
                raise PrometheusRunnerError(f"prometheus not ready after {timeout}s:\n{self.log()}")
            time.sleep(0.1)

    def reload(self) -> None:
        """Make the running Prometheus read its configuration and rule files again (SIGHUP)."""
        if self.process is None or self.process.poll() is not None:
            raise PrometheusRunnerError("reload(): Prometheus is not running")
        self.process.send_signal(signal.SIGHUP)

    def stop(self) -> None:
        """Stop the process (SIGTERM, then SIGKILL after 20 s); safe to call twice."""
        process, self.process = self.process, None
        stop_process(process)

    def log(self) -> str:
        return log_tail(self.log_path)

    def __enter__(self) -> PrometheusServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------ HTTP API

    def api(self, path: str, **params: str) -> Any:
        """GET /api/v1/<path> and return its `data`; PrometheusRunnerError on an error status."""
        query = urllib.parse.urlencode(params)
        try:
            with urllib.request.urlopen(f"{self.url}/api/v1/{path}?{query}", timeout=60) as resp:
                body = json.loads(resp.read())
        except urllib.error.HTTPError as err:
            raise PrometheusRunnerError(
                f"{path} {params}: HTTP {err.code}: {err.read()!r}"
            ) from None
        if body.get("status") != "success":
            raise PrometheusRunnerError(f"{path} {params}: {body}")
        return body["data"]

    def query(self, expr: str, at: datetime | float | None = None) -> list[dict[str, Any]]:
        """An instant query; the result vector (a list of {metric, value})."""
        params = {"query": expr}
        if at is not None:
            params["time"] = str(at.timestamp() if isinstance(at, datetime) else at)
        data = self.api("query", **params)
        result: list[dict[str, Any]] = data["result"] if data["resultType"] == "vector" else []
        return result

    def query_value(self, expr: str, at: datetime | float | None = None) -> float:
        """An instant query expected to return one sample; its value as a float."""
        result = self.query(expr, at)
        if len(result) != 1:
            raise PrometheusRunnerError(
                f"{expr} returned {len(result)} series, not 1: {result[:3]}"
            )
        return float(result[0]["value"][1])


@contextlib.contextmanager
def backfilled_prometheus(
    workdir: Path, scenario: Scenario, options: ExportOptions | None = None
) -> Iterator[PrometheusServer]:
    """A started Prometheus holding the scenario's series; stopped on exit, always."""
    server = PrometheusServer(workdir)
    try:
        server.backfill(scenario, options)
        server.start()
        yield server
    finally:
        server.stop()
