"""The API proxy of the benchmark and the fault tests: it records, forwards and injects."""

from __future__ import annotations

import json
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
