"""KubeApi against broken API servers: every transport failure is a KubeError(0).

A raw socket server on loopback plays each fault: nothing listening, a
connection closed before any answer, an answer cut mid-body, no answer at all,
an answer that is not JSON. Before the fix only `OSError` was mapped, and
urllib3's `MaxRetryError`/`ProtocolError` escaped the callers (the leadership
loop died without a log line).
"""

from __future__ import annotations

import asyncio
import contextlib
import http.server
import socket
import threading
import time
from collections.abc import Callable, Iterator

import kubernetes
import pytest

from finops_operator.adapters.kube_api import KubeApi, user_agent
from finops_operator.errors import KubeError, NotSentError

Reply = Callable[[socket.socket], None]


def client_for(port: int) -> kubernetes.client.Configuration:
    configuration = kubernetes.client.Configuration()
    configuration.host = f"http://127.0.0.1:{port}"
    configuration.retries = 0
    return configuration


@contextlib.contextmanager
def serving(reply: Reply) -> Iterator[int]:
    """A loopback server answering every connection with `reply`; its port."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    server.settimeout(0.2)
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            with conn, contextlib.suppress(OSError):
                conn.settimeout(5)
                conn.recv(65536)
                reply(conn)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1]
    finally:
        stop.set()
        thread.join(timeout=5)
        server.close()


def close_at_once(conn: socket.socket) -> None:
    conn.shutdown(socket.SHUT_RDWR)


def cut_mid_body(conn: socket.socket) -> None:
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n")
    conn.sendall(b'Content-Length: 500\r\n\r\n{"metadata":')


def not_json(conn: socket.socket) -> None:
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n")
    conn.sendall(b"Content-Length: 9\r\n\r\n<html>oh!")


def never_answer(conn: socket.socket) -> None:
    time.sleep(3)


def garbage(conn: socket.socket) -> None:
    conn.sendall(b"\x16\x03\x01 this is not HTTP\r\n\r\n")


CALLS = {
    "get": lambda api: api.get("coordination.k8s.io", "v1", "leases", "ns", "lease"),
    "patch": lambda api: api.patch("coordination.k8s.io", "v1", "leases", "ns", "x", {}),
    "create_event": lambda api: api.create_event("ns", {"metadata": {"name": "e"}}),
    "patch_workload": lambda api: api.patch_workload("Deployment", "ns", "d", {}),
}


@pytest.mark.parametrize("call", list(CALLS))
async def test_nothing_listening_is_a_kube_error_0(call: str) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, never listening: refused
    api = KubeApi(client_for(port))
    with pytest.raises(KubeError) as caught:
        await CALLS[call](api)
    assert caught.value.status == 0
    assert "cannot reach the API server" in str(caught.value)


@pytest.mark.parametrize("reply", [close_at_once, cut_mid_body, not_json, garbage])
@pytest.mark.parametrize("call", ["get", "create_event"])
async def test_a_broken_answer_is_a_kube_error_0(reply: Reply, call: str) -> None:
    with serving(reply) as port:
        api = KubeApi(client_for(port))
        with pytest.raises(KubeError) as caught:
            await CALLS[call](api)
    assert caught.value.status == 0


async def test_a_server_that_never_answers_times_out_as_a_kube_error_0() -> None:
    with serving(never_answer) as port:
        api = KubeApi(client_for(port), request_timeout=0.5)
        started = time.monotonic()
        with pytest.raises(KubeError) as caught:
            await CALLS["get"](api)
        assert time.monotonic() - started < 2.5
    assert caught.value.status == 0


# --- Threads of its own, writes only while leading (issue 14, item 6) ---------------------


class Recorder(http.server.BaseHTTPRequestHandler):
    """Answers `{}` to everything, after `delay` seconds on paths ending in /slow."""

    seen: list[tuple[str, str, str]]
    media_types: list[tuple[str, str, str | None]]
    delay = 0.6

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        self.seen.append((self.command, self.path, self.headers.get("User-Agent", "")))
        self.media_types.append((self.command, self.path, self.headers.get("Content-Type")))
        if self.path.endswith("/slow"):
            time.sleep(self.delay)
        body = b"{}"
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        self._answer()

    def do_PATCH(self) -> None:
        self._answer()

    def do_POST(self) -> None:
        self._answer()

    def log_message(self, *_: object) -> None:
        pass


@contextlib.contextmanager
def recording() -> Iterator[tuple[int, list[tuple[str, str, str]]]]:
    seen: list[tuple[str, str, str]] = []
    handler = type("Handler", (Recorder,), {"seen": seen, "media_types": MEDIA_TYPES})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], seen
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


MEDIA_TYPES: list[tuple[str, str, str | None]] = []


async def test_every_write_says_what_its_body_is() -> None:
    # kube-apiserver reads a body without a Content-Type as JSON, but a proxy in front of
    # it may not: aiohttp forwards one as application/octet-stream, which the API server
    # refuses (415), and the Lease was never created behind the scale benchmark's proxy.
    MEDIA_TYPES.clear()
    with recording() as (port, _):
        api = KubeApi(client_for(port))
        await api.create(
            "coordination.k8s.io", "v1", "leases", {"metadata": {"name": "l", "namespace": "ns"}}
        )
        await api.create(
            "finops.resilio.tech", "v1alpha1", "costreports", {"metadata": {"name": "r"}}
        )
        await api.patch("coordination.k8s.io", "v1", "leases", "ns", "l", {"spec": {}})
        await api.patch(
            "finops.resilio.tech", "v1alpha1", "costpolicies", "ns", "p", {}, status=True
        )
        await api.patch_workload("Job", "ns", "j", {"metadata": {}})
        await api.create_event("ns", {"metadata": {"name": "e"}})
        await api.raw("POST", "/api/v1/namespaces/ns/secrets", {"metadata": {"name": "s"}})
        api.close()
    writes = [(method, kind) for method, _, kind in MEDIA_TYPES if method != "GET"]
    assert len(writes) == 7
    assert all(
        kind in ("application/json", "application/merge-patch+json") for _, kind in writes
    ), writes
    assert [kind for method, kind in writes if method == "POST"] == ["application/json"] * 4


async def test_writes_are_not_sent_once_the_replica_no_longer_leads_reads_are() -> None:
    with recording() as (port, seen):
        api = KubeApi(client_for(port)).writing_only_while(lambda: False)
        with pytest.raises(NotSentError) as caught:
            await api.patch_workload("Deployment", "ns", "d", {})
        assert caught.value.status == 0 and "no longer leads" in str(caught.value)
        with pytest.raises(NotSentError):
            await api.create_event("ns", {"metadata": {"name": "e"}})
        assert await api.get_workload("Deployment", "ns", "d") == {}
        api.close()
    assert [method for method, _, _ in seen] == ["GET"]


async def test_a_write_queued_while_leading_is_dropped_if_the_lease_is_lost_before_its_turn() -> (
    None
):
    leading = {"now": True}
    with recording() as (port, seen):
        api = KubeApi(client_for(port), workers=1).writing_only_while(lambda: leading["now"])
        busy = asyncio.ensure_future(api.raw("GET", "/api/v1/slow"))
        queued = asyncio.ensure_future(api.patch_workload("Deployment", "ns", "late", {}))
        await asyncio.sleep(0.2)  # the GET is under way; the PATCH waits for the thread
        leading["now"] = False
        await busy
        with pytest.raises(NotSentError):
            await queued
        api.close()
    assert [path for _, path, _ in seen] == ["/api/v1/slow"]


async def test_the_lease_api_answers_while_the_bulk_api_is_saturated() -> None:
    with recording() as (port, seen):
        bulk = KubeApi(client_for(port), workers=2, agent=user_agent("replica-a", "operator"))
        lease = KubeApi(client_for(port), workers=1, agent=user_agent("replica-a", "lease"))
        backlog = [asyncio.ensure_future(bulk.raw("GET", "/api/v1/slow")) for _ in range(6)]
        await asyncio.sleep(0.1)
        started = time.monotonic()
        await lease.get("coordination.k8s.io", "v1", "leases", "ns", "lease")
        took = time.monotonic() - started
        await asyncio.gather(*backlog)
        bulk.close()
        lease.close()
    # The backlog takes 3 rounds of 0.6 s on 2 threads; the Lease waits for none of them.
    assert took < 0.5, took
    agents = {agent for _, path, agent in seen if "leases" in path}
    assert agents == {"finops-operator/replica-a (lease)"}
    assert {agent for _, path, agent in seen if path.endswith("/slow")} == {
        "finops-operator/replica-a (operator)"
    }
