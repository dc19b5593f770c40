"""`metrics.secure`: /metrics over HTTPS, for the tokens the real API server allows.

A second replica of the operator (a standby beside the script's) runs with the
installed configuration plus `metrics.secure: true`, under the manifests' own
ServiceAccount and RBAC (which grant `create` on tokenreviews and
subjectaccessreviews). Scrapers are ServiceAccounts of the test, with tokens
from the TokenRequest API: one bound to a ClusterRole with
`nonResourceURLs: [/metrics]`, `verbs: [get]` (what kube-prometheus-stack gives
its Prometheus), one without. The certificate is checked against the CA of the
webhook's Secret, which the metrics server shares. The API server's audit log
counts the reviews: a verdict is cached, so repeated scrapes send none. Runs
before test_rbac, which then sees the reviews among the operator's requests.
"""

from __future__ import annotations

import base64
import json
import ssl
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from .conftest import OPERATOR_USER, Cluster, stop_process, wait_until
from .test_leader_election import start_second_operator

NAMESPACE = "e2e-metrics-auth"
READER_ROLE = "e2e-metrics-reader"


def scrape(port: int, context: ssl.SSLContext, path: str, token: str | None) -> tuple[int, str]:
    request = urllib.request.Request(f"https://127.0.0.1:{port}{path}")
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10, context=context) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def reviews(cluster: Cluster) -> list[str]:
    """The operator's TokenReviews and SubjectAccessReviews in the audit log, in order."""
    found = []
    for line in cluster.audit_log.read_text(encoding="utf-8").splitlines():
        entry: dict[str, Any] = json.loads(line)
        resource = (entry.get("objectRef") or {}).get("resource")
        if entry["user"]["username"] == OPERATOR_USER and resource in (
            "tokenreviews",
            "subjectaccessreviews",
        ):
            found.append(f"{resource} {entry['responseStatus'].get('code')}")
    return found


@pytest.fixture(scope="module")
def secure(cluster: Cluster) -> Iterator[tuple[int, ssl.SSLContext]]:
    config = yaml.safe_load(Path(cluster.info["config"]).read_text(encoding="utf-8"))
    config["metrics"] = {**(config.get("metrics") or {}), "secure": True}
    path = cluster.dir / "config-secure-metrics.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    proc, port, _, log = start_second_operator(cluster, path, name="metrics")
    try:
        secret = cluster.get("secret", "finops-operator-webhook-tls", "finops-system")
        context = ssl.create_default_context(
            cadata=base64.b64decode(secret["data"]["ca.crt"]).decode()
        )
        wait_until(
            lambda: proc.poll() is None and scrape(port, context, "/healthz", None)[0] == 200,
            timeout=60,
            what=f"the secure replica's /healthz (log {log})",
        )
        yield port, context
    finally:
        stop_process(proc)
        (Path(cluster.info["state"]) / "extra-operator-metrics.pid").unlink(missing_ok=True)


@pytest.fixture(scope="module")
def tokens(cluster: Cluster) -> dict[str, str]:
    cluster.namespace(NAMESPACE)
    cluster.apply(
        [
            *(
                {
                    "apiVersion": "v1",
                    "kind": "ServiceAccount",
                    "metadata": {"name": name, "namespace": NAMESPACE},
                }
                for name in ("scraper", "nosy")
            ),
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRole",
                "metadata": {"name": READER_ROLE},
                "rules": [{"nonResourceURLs": ["/metrics"], "verbs": ["get"]}],
            },
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRoleBinding",
                "metadata": {"name": READER_ROLE},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "ClusterRole",
                    "name": READER_ROLE,
                },
                "subjects": [{"kind": "ServiceAccount", "name": "scraper", "namespace": NAMESPACE}],
            },
        ]
    )
    return {
        name: cluster.kubectl("-n", NAMESPACE, "create", "token", name).stdout.strip()
        for name in ("scraper", "nosy")
    }


def test_the_probes_answer_without_a_token(secure: tuple[int, ssl.SSLContext]) -> None:
    port, context = secure
    assert scrape(port, context, "/healthz", None)[0] == 200
    wait_until(
        lambda: scrape(port, context, "/readyz", None)[0] == 200,
        timeout=60,
        what="/readyz of the secure replica",
    )


def test_plain_http_gets_no_metrics(secure: tuple[int, ssl.SSLContext]) -> None:
    port, _ = secure
    with pytest.raises((urllib.error.URLError, ConnectionError)):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read()


def test_only_a_user_granted_get_on_metrics_reads_them(
    cluster: Cluster, secure: tuple[int, ssl.SSLContext], tokens: dict[str, str]
) -> None:
    port, context = secure
    before = len(reviews(cluster))
    status, text = scrape(port, context, "/metrics", None)
    assert status == 401 and "finops_" not in text, (status, text)
    status, text = scrape(port, context, "/metrics", "not-a-token")
    assert status == 401 and "finops_" not in text, (status, text)
    status, text = scrape(port, context, "/metrics", tokens["nosy"])
    assert status == 403 and "finops_" not in text, (status, text)
    status, text = scrape(port, context, "/metrics", tokens["scraper"])
    assert status == 200 and "finops_leader 0.0" in text, (status, text[:500])
    # Each token was reviewed once; the scrapes that follow are answered from the cache.
    for _ in range(3):
        assert scrape(port, context, "/metrics", tokens["scraper"])[0] == 200
        assert scrape(port, context, "/metrics", tokens["nosy"])[0] == 403
    expected = [
        "tokenreviews 201",  # not-a-token: not authenticated, no access review
        "tokenreviews 201",
        "subjectaccessreviews 201",  # nosy: denied
        "tokenreviews 201",
        "subjectaccessreviews 201",  # scraper: allowed
    ]
    wait_until(
        lambda: reviews(cluster)[before:] == expected,
        timeout=10,
        what=f"the reviews {expected} in the audit log",
    )


def test_a_revoked_grant_is_refused_once_the_cached_verdict_expires(
    cluster: Cluster, secure: tuple[int, ssl.SSLContext], tokens: dict[str, str]
) -> None:
    port, context = secure
    assert scrape(port, context, "/metrics", tokens["scraper"])[0] == 200
    cluster.kubectl("delete", "clusterrolebinding", READER_ROLE)
    try:
        # Allowed verdicts hold a minute (domain/metrics_access.ALLOWED_SECONDS).
        wait_until(
            lambda: scrape(port, context, "/metrics", tokens["scraper"])[0] == 403,
            timeout=75,
            interval=2,
            what="the scraper refused after its binding was deleted",
        )
    finally:
        subprocess.run(
            [cluster.info["kubectl"], "delete", "clusterrole", READER_ROLE, "--ignore-not-found"],
            env=cluster.env(),
            capture_output=True,
            timeout=60,
        )
