"""A fake Prometheus HTTP API on 127.0.0.1 that answers what the test scripts.

`ScriptedPrometheus` serves `/api/v1/query` and `/api/v1/query_range` (GET or POST)
from a thread, one thread per request. By default it answers every query
healthily: one series (`SERIES_LABELS`, value `value`), as a vector for an instant
query and a matrix for a range query. A test breaks it with `fault`, an `Answer`
(or a function of the request returning one) served to every request until
`fault` is set back to None; `recover()` does that. Every request is kept in
`requests`.

    with ScriptedPrometheus() as prometheus:
        prometheus.fault = Answer(status=503, body="upstream down")
        ...
        prometheus.recover()

The answers of the fault suite are built with `success`, `html`, `error` and the
samples `NAN`, `POS_INF`, `NEG_INF` (as Prometheus writes them).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

NAN, POS_INF, NEG_INF = "NaN", "+Inf", "-Inf"
# The labels of the healthy series: a team, a GPU model, an LLM model and a job.
SERIES_LABELS = {
    "team": "ml",
    "gpu_model": "a100",
    "model": "llama",
    "namespace": "ml",
    "owner_name": "train",
}


@dataclass(frozen=True)
class Answer:
    """One HTTP answer: status, body (a str, or anything JSON), headers, a delay first."""

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    content_type: str = "application/json"
    drip: float = 0.0  # seconds between bytes of the body: a slow or hostile server
    length_header: bool = True  # without one, the body ends when the connection closes

    def payload(self) -> bytes:
        if isinstance(self.body, bytes):
            return self.body
        if isinstance(self.body, str):
            return self.body.encode()
        return json.dumps(self.body).encode()


@dataclass(frozen=True)
class Request:
    kind: str  # "instant" or "range"
    params: dict[str, str]


def success(result_type: str, result: Any, **extra: Any) -> Answer:
    """A 200 `status: success` answer with `data` = {resultType, result}; extra top-level keys
    (`warnings=[...]`) as given."""
    return Answer(
        body={"status": "success", "data": {"resultType": result_type, "result": result}, **extra}
    )


def error(status: int, error_type: str, message: str) -> Answer:
    """Prometheus' own error answer."""
    return Answer(status, {"status": "error", "errorType": error_type, "error": message})


def html(status: int, title: str) -> Answer:
    """What a proxy or a load balancer sends: an HTML page."""
    page = f"<html><head><title>{title}</title></head><body><h1>{title}</h1></body></html>"
    return Answer(status, page, content_type="text/html")


def healthy(request: Request, value: str = "10", warnings: list[str] | None = None) -> Answer:
    """One series with `value`: a vector for an instant query, a matrix for a range query."""
    extra: dict[str, Any] = {} if warnings is None else {"warnings": warnings}
    if request.kind == "instant":
        sample = [float(request.params.get("time", "0")), value]
        return success("vector", [{"metric": SERIES_LABELS, "value": sample}], **extra)
    start = float(request.params.get("start", "0"))
    return success("matrix", [{"metric": SERIES_LABELS, "values": [[start, value]]}], **extra)


Script = Answer | Callable[[Request], Answer]


class ScriptedPrometheus:
    def __init__(self) -> None:
        self.fault: Script | None = None
        self.value = "10"
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass  # quiet

            def _serve(self, params: dict[str, str]) -> None:
                path = urlparse(self.path).path
                kind = {"/api/v1/query": "instant", "/api/v1/query_range": "range"}.get(path)
                if kind is None:
                    self._send(Answer(404, "not found", content_type="text/plain"))
                    return
                request = Request(kind, params)
                with outer._lock:
                    outer.requests.append(request)
                    script = outer.fault
                if script is None:
                    answer = healthy(request, outer.value)
                elif isinstance(script, Answer):
                    answer = script
                else:
                    answer = script(request)
                if answer.delay:
                    time.sleep(answer.delay)
                self._send(answer)

            def _send(self, answer: Answer) -> None:
                payload = answer.payload()
                try:
                    self.send_response(answer.status)
                    self.send_header("Content-Type", answer.content_type)
                    if answer.length_header:
                        self.send_header("Content-Length", str(len(payload)))
                    else:
                        self.send_header("Connection", "close")
                        self.close_connection = True
                    for name, value in answer.headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    if not answer.drip:
                        self.wfile.write(payload)
                    for index in range(len(payload) if answer.drip else 0):
                        self.wfile.write(payload[index : index + 1])
                        self.wfile.flush()
                        time.sleep(answer.drip)
                except OSError:
                    pass  # the client gave up (a timeout test)

            def do_GET(self) -> None:
                query = parse_qs(urlparse(self.path).query)
                self._serve({k: v[-1] for k, v in query.items()})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                form = parse_qs(self.rfile.read(length).decode())
                self._serve({k: v[-1] for k, v in form.items()})

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def recover(self) -> None:
        self.fault = None

    def start(self) -> ScriptedPrometheus:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    def __enter__(self) -> ScriptedPrometheus:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
