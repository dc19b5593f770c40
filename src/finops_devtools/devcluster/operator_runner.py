"""`finops-operator run` as a real process against the emulator, over real HTTPS.

    process = OperatorProcess(cluster, workdir, {"mode": "audit"}).start()
    process.review("/validate", admission_review)   # what the API server sends
    process.metrics()                               # /metrics text
    process.probe("/readyz")                        # (status, text); start() waits for 200
    process.stop()                                  # SIGINT, then SIGKILL after 20 s

The process gets a kubeconfig pointing at the API (the emulator, or anything
that writes a kubeconfig to itself: the benchmark's recording proxy), a
configuration file, a self-signed certificate for `localhost` (`cert`, which
callers trust), and two free ports on 127.0.0.1; its output goes to `log_path`.
The one runner of the operator as a process: tests, the admission benchmark and
the scale benchmark (which starts it through `entry`, under tracemalloc, and
does not wait: it measures how long the operator takes to be ready).
"""

from __future__ import annotations

import json
import os
import signal
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import yaml

from finops_devtools.devcluster import eventually, free_port
from finops_devtools.devcluster.certificates import write_self_signed
from finops_devtools.errors import OperatorError


class Api(Protocol):
    """What the runner needs of the API it points the operator at."""

    def write_kubeconfig(self, path: Path) -> Path:
        """A kubeconfig to this API, written at `path`."""
        ...

    def requests_to(self, method: str, path: str) -> Sequence[Any]:
        """The requests with this method and path the API has received so far."""
        ...


# `python -m finops_operator.cli`; the scale benchmark runs bench/traced_operator.py instead.
CLI_ENTRY: tuple[str, ...] = ("-m", "finops_operator.cli")
# `run --webhook-drain-seconds`: no API server pools connections to it here, and a stop
# need not wait the default 5 s; short, not 0, so the drain still runs.
DRAIN_SECONDS = "0.2"


class OperatorProcess:
    def __init__(
        self,
        cluster: Api,
        workdir: Path,
        config: dict[str, Any],
        own_cert: bool = True,
        new_session: bool = False,
        extra_args: tuple[str, ...] = (),
        entry: Sequence[str] = CLI_ENTRY,
    ) -> None:
        self.cluster = cluster
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.config_path = workdir / "config.yaml"
        self.config_path.write_text(yaml.safe_dump(config))
        self.own_cert = own_cert
        self.extra_args = extra_args
        self.new_session = new_session  # out of the terminal's process group (Ctrl-C)
        self.cert, self.key = write_self_signed(workdir)
        self.webhook_port = free_port()
        self.metrics_port = free_port()
        self.log_path = workdir / "operator.log"
        self.entry = tuple(entry)
        self.process: subprocess.Popen[bytes] | None = None
        self.started = 0.0  # time.monotonic() when the process was started
        self.tls = ssl.create_default_context(cafile=str(self.cert))

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def start(
        self, timeout: float = 30.0, wait_ready: bool = True, wait: bool = True
    ) -> OperatorProcess:
        """Start the process; unless `wait` is False, wait until it serves (and is ready)."""
        kubeconfig = self.cluster.write_kubeconfig(self.workdir / "kubeconfig")
        env = {**os.environ, "KUBECONFIG": str(kubeconfig)}
        env.pop("KUBERNETES_SERVICE_HOST", None)
        command = [
            sys.executable, *self.entry, "run",
            "--config", str(self.config_path),
            "--webhook-host", "127.0.0.1",
            "--webhook-port", str(self.webhook_port),
            "--metrics-port", str(self.metrics_port),
            "--webhook-drain-seconds", DRAIN_SECONDS,
        ]  # fmt: skip
        if self.own_cert:
            command += ["--webhook-cert", str(self.cert), "--webhook-key", str(self.key)]
        command += self.extra_args
        with self.log_path.open("wb") as log:
            self.started = time.monotonic()
            self.process = subprocess.Popen(
                command,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=self.new_session,
            )
        if not wait:
            return self
        try:
            eventually(self._serving, timeout=timeout)
            # The namespace index is filled once kopf's watch stream is open.
            eventually(
                lambda: self.cluster.requests_to("GET", "/api/v1/namespaces"), timeout=timeout
            )
            if wait_ready:  # /readyz: the watches delivered every namespace and workload
                eventually(lambda: self.probe("/readyz")[0] == 200, timeout=timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _serving(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise OperatorError(f"the operator exited early:\n{self.log()}")
        try:
            self.metrics()
            return True
        except OSError:
            return False

    def stop(self) -> int:
        """SIGINT (kopf stops cleanly), SIGKILL after 20 s; the exit code. Safe to call twice."""
        if self.process is None:
            return 0
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        return self.process.returncode

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def post(self, path: str, body: bytes, verify: bool = True) -> tuple[int, Any]:
        """POST raw bytes to the webhook over HTTPS; the HTTP status and the parsed answer."""
        context = self.tls if verify else ssl._create_unverified_context()
        request = urllib.request.Request(
            f"https://localhost:{self.webhook_port}{path}", data=body, method="POST"
        )
        request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=10, context=context) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read() or b"null")

    def review(self, path: str, review: dict[str, Any]) -> dict[str, Any]:
        """Send an AdmissionReview; its `response` (checked: HTTP 200, the same uid)."""
        status, answer = self.post(path, json.dumps(review).encode())
        if status != 200 or not isinstance(answer, dict):
            raise OperatorError(f"{path} answered HTTP {status}: {answer!r}")
        response: dict[str, Any] = answer["response"]
        if response.get("uid") != review["request"]["uid"]:
            raise OperatorError(f"{path} answered for another request: {response!r}")
        return response

    def probe(self, path: str = "/readyz") -> tuple[int, str]:
        """GET a path of the metrics port (/readyz, /healthz): the status and the text."""
        url = f"http://127.0.0.1:{self.metrics_port}{path}"
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as err:
            return err.code, err.read().decode()

    def get(self, path: str, gzip_ok: bool = False, timeout: float = 60.0) -> tuple[int, bytes]:
        """GET a path of the metrics port as bytes; (0, b"") while nothing listens."""
        request = urllib.request.Request(f"http://127.0.0.1:{self.metrics_port}{path}")
        if gzip_ok:
            request.add_header("Accept-Encoding", "gzip")
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as err:
            return err.code, err.read()
        except OSError:
            return 0, b""

    def metrics(self) -> str:
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as response:
            text: str = response.read().decode()
            return text
