"""`finops-operator run` answering AdmissionReviews over real HTTPS, against the emulator."""

from __future__ import annotations

import base64
import json
import socket
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from cryptography import x509

from finops_devtools.devcluster.reviews import COMPLETE_LABELS, review, workload
from finops_operator.domain.workloads import WORKLOAD_KINDS
from tests.support.kube_emulator import KubeEmulator, eventually
from tests.support.operator_process import OperatorProcess, running_operator
from tests.support.paths import ROOT

MANIFESTS = ROOT / "manifests"
KINDS = list(WORKLOAD_KINDS)


@pytest.fixture(scope="module")
def enforcing(
    cluster: KubeEmulator, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    with running_operator(cluster, tmp_path_factory, {"mode": "enforce"}) as process:
        yield process


@pytest.fixture(scope="module")
def auditing(
    cluster: KubeEmulator, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    with running_operator(cluster, tmp_path_factory, {"mode": "audit"}) as process:
        yield process


def webhook_paths() -> dict[str, str]:
    """The service path each webhook configuration in manifests/ registers, by its kind."""
    paths = {}
    for doc in yaml.safe_load_all((MANIFESTS / "base" / "webhooks.yaml").read_text()):
        if doc and doc["kind"].endswith("WebhookConfiguration"):
            for hook in doc["webhooks"]:
                paths[doc["kind"]] = hook["clientConfig"]["service"]["path"]
    return paths


@pytest.mark.parametrize("kind", KINDS)
def test_enforce_denies_an_untagged_gpu_workload_of_every_kind_naming_the_missing_keys(
    enforcing: OperatorProcess, kind: str
) -> None:
    path = webhook_paths()["ValidatingWebhookConfiguration"]
    labels = {"resilio.tech/team": "search-platform", "resilio.tech/environment": "prod"}
    response = enforcing.review(path, review(workload(kind, labels=labels)))
    assert response["allowed"] is False
    message = response["status"]["message"]
    assert message.startswith(f"{kind} team-a/llm ")
    for key in ("feature", "workload-type", "cost-center"):
        assert f"missing resilio.tech/{key}" in message
    assert "resilio.tech/environment='prod'" in message
    assert "missing resilio.tech/team" not in message


@pytest.mark.parametrize("kind", KINDS)
def test_audit_admits_an_untagged_gpu_workload_of_every_kind_with_warnings(
    auditing: OperatorProcess, kind: str
) -> None:
    path = webhook_paths()["ValidatingWebhookConfiguration"]
    response = auditing.review(path, review(workload(kind)))
    assert response["allowed"] is True
    assert len(response["warnings"]) == 5
    assert json.loads(response["auditAnnotations"]["violations"])["missing"][0] == (
        "resilio.tech/team"
    )


@pytest.mark.parametrize("kind", KINDS)
def test_compliant_and_non_gpu_workloads_are_admitted_silently(
    enforcing: OperatorProcess, kind: str
) -> None:
    path = webhook_paths()["ValidatingWebhookConfiguration"]
    for obj in (workload(kind, labels=COMPLETE_LABELS), workload(kind, gpus=None)):
        response = enforcing.review(path, review(obj))
        assert response["allowed"] is True
        assert "warnings" not in response


def test_the_mutating_path_fills_labels_from_the_namespace_index(
    cluster: KubeEmulator, enforcing: OperatorProcess
) -> None:
    cluster.create(
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": "ranking", "labels": {"resilio.tech/cost-center": "cc-900"}},
        }
    )
    path = webhook_paths()["MutatingWebhookConfiguration"]
    body = review(workload("Deployment", namespace="ranking"))
    response = eventually(lambda: enforcing.review(path, body).get("patch"), timeout=15)
    ops = json.loads(base64.b64decode(response))
    assert {
        "op": "add",
        "path": "/spec/template/metadata/labels/resilio.tech~1cost-center",
        "value": "cc-900",
    } in ops


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not json at all",
        b"\xff\xfe\x00",
        b"[1, 2, 3]",
        b'{"kind": "AdmissionReview", "apiVersion": "admission.k8s.io/v1"}',
        b'{"kind": "AdmissionReview", "apiVersion": "admission.k8s.io/v1", "request": {"uid": 5}}',
        json.dumps(
            {
                "kind": "AdmissionReview",
                "apiVersion": "admission.k8s.io/v1",
                "request": {
                    "uid": "x",
                    "operation": "CREATE",
                    "kind": {"kind": "Pod"},
                    "object": [],
                },
            }
        ).encode(),
    ],
    ids=[
        "an empty body",
        "text",
        "binary",
        "a JSON list",
        "a review without request",
        "a numeric uid",
        "an object that is a list",
    ],
)
def test_garbage_gets_a_clear_error_and_the_server_keeps_serving(
    enforcing: OperatorProcess, body: bytes
) -> None:
    path = webhook_paths()["ValidatingWebhookConfiguration"]
    status, answer = enforcing.post(path, body)
    assert status in (200, 400)
    assert answer["response"]["allowed"] is False
    assert answer["response"]["status"]["code"] == 400
    assert answer["response"]["status"]["message"].startswith("malformed AdmissionReview: ")
    assert enforcing.review(path, review(workload("Pod")))["allowed"] is False
    assert enforcing.process is not None and enforcing.process.poll() is None


@pytest.mark.parametrize(
    "body",
    [
        b'{"kind": "AdmissionReview", "request": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
        json.dumps(review(workload("Pod", gpus="1e999999999999"))).encode(),
        b" " * (3 * 1024 * 1024 + 1),
    ],
    ids=["JSON nested 100k deep", "a GPU quantity of 1e999999999999", "a body over 3 MiB"],
)
def test_hostile_bodies_get_a_clear_4xx_never_a_5xx(
    enforcing: OperatorProcess, body: bytes
) -> None:
    path = webhook_paths()["ValidatingWebhookConfiguration"]
    status, answer = enforcing.post(path, body)
    assert status < 500, answer
    response = answer["response"]
    assert response["allowed"] is False
    assert 400 <= response["status"]["code"] < 500
    assert "Traceback" not in response["status"]["message"]
    assert enforcing.review(path, review(workload("Pod")))["allowed"] is False


def test_a_dry_run_is_answered_without_writing_anything(
    cluster: KubeEmulator, enforcing: OperatorProcess
) -> None:
    assert cluster.emulator is not None
    writes_before = [r for r in cluster.emulator.log if r[0] in ("POST", "PATCH", "PUT", "DELETE")]
    path = webhook_paths()["ValidatingWebhookConfiguration"]
    for kind in KINDS:
        assert enforcing.review(path, review(workload(kind), dry_run=True))["allowed"] is False
        assert enforcing.review(path, review(workload(kind), dry_run=True))["allowed"] is False
    writes_after = [r for r in cluster.emulator.log if r[0] in ("POST", "PATCH", "PUT", "DELETE")]
    assert writes_after == writes_before


def test_admission_traffic_is_counted_in_metrics(enforcing: OperatorProcess) -> None:
    path = webhook_paths()["ValidatingWebhookConfiguration"]
    enforcing.review(path, review(workload("Job")))
    metrics = enforcing.metrics()
    assert 'finops_admission_requests_total{kind="Job",outcome="denied",webhook="validate"}' in (
        metrics
    )
    assert "finops_admission_duration_seconds_bucket" in metrics


def test_without_a_certificate_the_operator_serves_a_self_signed_one_for_localhost(
    cluster: KubeEmulator, tmp_path: Path
) -> None:
    process = OperatorProcess(cluster, tmp_path, {"mode": "enforce"}, own_cert=False).start()
    try:
        context = ssl._create_unverified_context()
        with (
            socket.create_connection(("127.0.0.1", process.webhook_port), timeout=5) as raw,
            context.wrap_socket(raw, server_hostname="localhost") as tls,
        ):
            der = tls.getpeercert(binary_form=True)
        assert der is not None
        cert = x509.load_der_x509_certificate(der)
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert "localhost" in names.get_values_for_type(x509.DNSName)
        assert "finops-operator-webhook.finops-system.svc" in names.get_values_for_type(
            x509.DNSName
        )
        status, answer = process.post(
            "/validate", json.dumps(review(workload("Pod"))).encode(), verify=False
        )
        assert status == 200 and answer["response"]["allowed"] is False
    finally:
        process.stop()
