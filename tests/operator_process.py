"""`finops-operator run` as a real process against the test emulator, over real HTTPS."""

from __future__ import annotations

import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from finops_operator.certificates import write_self_signed
from tests.kube_emulator import KubeEmulator, eventually


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class OperatorProcess:
    def __init__(
        self, cluster: KubeEmulator, workdir: Path, config: dict[str, Any], own_cert: bool = True
    ) -> None:
        self.cluster = cluster
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.config_path = workdir / "config.yaml"
        self.config_path.write_text(yaml.safe_dump(config))
        self.own_cert = own_cert
        self.cert, self.key = write_self_signed(workdir)
        self.webhook_port = free_port()
        self.metrics_port = free_port()
        self.log_path = workdir / "operator.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.tls = ssl.create_default_context(cafile=str(self.cert))

    def start(self) -> OperatorProcess:
        kubeconfig = self.cluster.write_kubeconfig(self.workdir / "kubeconfig")
        env = {**os.environ, "KUBECONFIG": str(kubeconfig)}
        env.pop("KUBERNETES_SERVICE_HOST", None)
        command = [
            sys.executable, "-m", "finops_operator.cli", "run",
            "--config", str(self.config_path),
            "--webhook-host", "127.0.0.1",
            "--webhook-port", str(self.webhook_port),
            "--metrics-port", str(self.metrics_port),
        ]  # fmt: skip
        if self.own_cert:
            command += ["--webhook-cert", str(self.cert), "--webhook-key", str(self.key)]
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            eventually(self._serving, timeout=30)
            # The namespace index is filled once kopf's watch stream is open.
            eventually(lambda: self.cluster.requests_to("GET", "/api/v1/namespaces"), timeout=30)
        except BaseException:
            self.stop()
            raise
        return self

    def _serving(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"the operator exited early:\n{self.log()}")
        try:
            self.metrics()
            return True
        except OSError:
            return False

    def stop(self) -> int:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        return self.process.returncode

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
        status, answer = self.post(path, json.dumps(review).encode())
        assert status == 200, answer
        assert answer["response"]["uid"] == review["request"]["uid"]
        response: dict[str, Any] = answer["response"]
        return response

    def metrics(self) -> str:
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as response:
            text: str = response.read().decode()
            return text
