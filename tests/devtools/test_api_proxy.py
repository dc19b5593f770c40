"""The API proxy of the benchmarks and the fault tests: it records, forwards and injects,
and as a TCP balancer spreads connections over replicas."""

from __future__ import annotations

import json
import socket
import socketserver
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from finops_devtools.devcluster.api_proxy import ApiProxy, classify
from tests.support.kube_emulator import KubeEmulator


@pytest.mark.parametrize(
    ("method", "path", "query", "expected"),
    [
        ("GET", "/api/v1/pods", {}, ("list", "pods")),
        ("GET", "/api/v1/pods", {"watch": "true"}, ("watch", "pods")),
        ("GET", "/api/v1/namespaces/team-a", {}, ("get", "namespaces")),
        ("PATCH", "/apis/apps/v1/namespaces/a/deployments/x", {}, ("patch", "deployments.apps")),
        ("PUT", "/api/v1/namespaces/a/pods/x/status", {}, ("update", "pods/status")),
        ("GET", "/apis/apps/v1", {}, ("get", "discovery /apis/apps/v1")),
    ],
)
def test_requests_are_named_as_the_audit_log_names_them(
    method: str, path: str, query: dict[str, str], expected: tuple[str, str]
) -> None:
    assert classify(method, path, query) == expected


@pytest.fixture(scope="module")
def proxy(cluster: KubeEmulator) -> Iterator[ApiProxy]:
    proxy = ApiProxy(cluster.url).start()
    yield proxy
    proxy.stop()


def _get(url: str) -> tuple[int, dict[str, object]]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def test_it_forwards_and_records_each_request(proxy: ApiProxy, tmp_path: Path) -> None:
    status, body = _get(proxy.url + "/api/v1/namespaces")
    assert status == 200 and "items" in body
    (seen,) = proxy.requests_to("GET", "/api/v1/namespaces")
    assert (seen.verb, seen.resource, seen.status) == ("list", "namespaces", 200)
    assert seen.bytes > 0
    kubeconfig = json.loads(proxy.write_kubeconfig(tmp_path / "kubeconfig").read_text())
    assert kubeconfig["clusters"][0]["cluster"]["server"] == proxy.url


def test_an_injected_status_never_reaches_the_upstream(
    proxy: ApiProxy, cluster: KubeEmulator
) -> None:
    proxy.answer(503, method="GET", path=r"/api/v1/nodes$")
    status, body = _get(proxy.url + "/api/v1/nodes")
    assert status == 503 and body["reason"] == "ServiceUnavailable"
    assert proxy.injected[-1] == (503, "GET", "/api/v1/nodes")
    assert not cluster.requests_to("GET", "/api/v1/nodes")
    assert _get(proxy.url + "/api/v1/nodes")[0] == 200  # once only


class _Named(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        line = self.rfile.readline()
        self.wfile.write(self.server.name.encode() + b":" + line)  # type: ignore[attr-defined]


@pytest.fixture
def replicas() -> Iterator[list[socketserver.ThreadingTCPServer]]:
    servers = []
    for name in ("a", "b"):
        server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Named)
        server.name = name  # type: ignore[attr-defined]
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
    yield servers
    for server in servers:
        server.shutdown()
        server.server_close()


def _ask(port: int, line: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(line)
        sock.shutdown(socket.SHUT_WR)
        return b"".join(iter(lambda: sock.recv(65536), b""))


def _closed_without_answer(port: int) -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        try:
            sock.sendall(b"lost\n")
            sock.shutdown(socket.SHUT_WR)
            return sock.recv(65536) == b""
        except (ConnectionResetError, OSError):  # closed before it read what was sent: a reset
            return True


def test_the_balancer_hands_connections_to_each_upstream_in_turn(
    replicas: list[socketserver.ThreadingTCPServer],
) -> None:
    balancer = ApiProxy.balancer([s.server_address[1] for s in replicas]).start()
    try:
        answers = [_ask(balancer.port, b"%d\n" % i) for i in range(4)]
        assert answers == [b"a:0\n", b"b:1\n", b"a:2\n", b"b:3\n"]
        assert balancer.connections == [2, 2]
        big = b"x" * 300_000 + b"\n"  # more than one read: passed through whole
        assert _ask(balancer.port, big) == b"a:" + big
    finally:
        balancer.stop()


def test_a_refused_upstream_closes_the_connection_and_the_next_one_serves(
    replicas: list[socketserver.ThreadingTCPServer],
) -> None:
    with socket.socket() as gone:  # bound, not listening: connections to it are refused
        gone.bind(("127.0.0.1", 0))
        balancer = ApiProxy.balancer([gone.getsockname()[1], replicas[1].server_address[1]])
        balancer.start()
        try:
            assert _closed_without_answer(balancer.port)
            assert _ask(balancer.port, b"kept\n") == b"b:kept\n"
        finally:
            balancer.stop()
    with pytest.raises(ValueError, match="at least one"):
        ApiProxy.balancer([])
