"""KubeApi against broken API servers: every transport failure is a KubeError(0).

A raw socket server on loopback plays each fault: nothing listening, a
connection closed before any answer, an answer cut mid-body, no answer at all,
an answer that is not JSON. Before the fix only `OSError` was mapped, and
urllib3's `MaxRetryError`/`ProtocolError` escaped the callers (the leadership
loop died without a log line).
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator

import kubernetes
import pytest

from finops_operator.adapters.kube_api import KubeApi
from finops_operator.errors import KubeError

Reply = Callable[[socket.socket], None]


def client_for(port: int) -> kubernetes.client.ApiClient:
    configuration = kubernetes.client.Configuration()
    configuration.host = f"http://127.0.0.1:{port}"
    configuration.retries = 0
    return kubernetes.client.ApiClient(configuration)


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
