"""`finops-operator run` serving admission: readiness that means ready, and certificates
reloaded without a restart (issue 13, items 5 and 2)."""

from __future__ import annotations

import base64
import json
import ssl
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from finops_devtools.devcluster.reviews import review, workload
from finops_operator.domain import conventions
from finops_operator.domain.policies.webhook_conditions import OWNED
from finops_operator.domain.webhook_certificate import secret_body
from tests.support.kube_emulator import KubeEmulator, eventually, store_namespaces
from tests.support.operator_process import OperatorProcess
from tests.support.paths import ROOT
from tests.support.tls_files import KubeletMount, Traffic, fresh_pair, serial

WEBHOOKS = ROOT / "manifests" / "base" / "webhooks.yaml"
SECRET = "finops-operator-webhook-tls"

NAMESPACES = 1500
OFF_EVERY = 17  # one namespace in 17 is in mode `off`: 89 of them


def namespace(index: int) -> dict[str, Any]:
    labels = {"resilio.tech/cost-center": f"cc-{index}"}
    if index % OFF_EVERY == 0:
        labels[conventions.MODE_NAMESPACE_LABEL] = "off"
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": f"ns-{index:04d}", "labels": labels},
    }


@pytest.fixture(scope="module")
def many_namespaces(cluster: KubeEmulator) -> KubeEmulator:
    """The emulator with NAMESPACES namespaces: one created over HTTP, the rest stored
    directly (creating each over HTTP costs the emulator time linear in what it holds)."""
    store_namespaces(cluster, NAMESPACES, namespace)
    assert len(cluster.list("Namespace")) == NAMESPACES
    return cluster


def test_readyz_fails_until_every_namespace_is_indexed_then_admission_is_right(
    many_namespaces: KubeEmulator, tmp_path: Path
) -> None:
    process = OperatorProcess(many_namespaces, tmp_path, {"mode": "enforce"})
    process.start(timeout=60, wait_ready=False)
    try:
        seen = [process.probe()]
        liveness = process.probe("/healthz")
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            seen.append(process.probe())
            if seen[-1][0] == 200:
                break
            time.sleep(0.02)
        statuses = [status for status, _ in seen]
        assert statuses[-1] == 200, seen[-3:]
        assert statuses[0] == 503, "ready before the namespaces were listed"
        assert set(statuses[:-1]) == {503}
        assert "namespace" in seen[0][1].lower()
        assert liveness[0] == 200  # /healthz is liveness only: ok while not ready
        # Ready: every answer from now on knows every namespace.
        off = [i for i in range(NAMESPACES) if i % OFF_EVERY == 0]
        for index in off:
            obj = workload("Pod", namespace=f"ns-{index:04d}")
            response = process.review("/validate", review(obj))
            assert response["allowed"] is True, (index, response)
        for index in (1, 750, NAMESPACES - 1):
            obj = workload("Deployment", namespace=f"ns-{index:04d}")
            response = process.review("/mutate", review(obj))
            ops = json.loads(base64.b64decode(response["patch"]))
            assert {
                "op": "add",
                "path": "/spec/template/metadata/labels/resilio.tech~1cost-center",
                "value": f"cc-{index}",
            } in ops
        assert process.probe()[0] == 200
    finally:
        process.stop()


def cert_manager_like(
    cluster: KubeEmulator, tmp_path: Path
) -> tuple[OperatorProcess, KubeletMount]:
    mount = KubeletMount(tmp_path / "tls")
    mount.directory.mkdir()
    mount.renew()
    args = ("--webhook-cert", str(mount.cert), "--webhook-key", str(mount.key))
    args += ("--webhook-cert-reload-seconds", "0.2")
    process = OperatorProcess(
        cluster, tmp_path / "operator", {"mode": "audit"}, own_cert=False, extra_args=args
    )
    return process.start(), mount


def test_a_mounted_secret_renewed_by_kubelet_is_served_without_a_restart(
    cluster: KubeEmulator, tmp_path: Path
) -> None:
    process, mount = cert_manager_like(cluster, tmp_path)
    try:
        with Traffic(process.webhook_port, mount.client_context) as traffic:
            first = traffic.serials[0]
            second = mount.renew()  # kubelet's atomic ..data swap
            traffic.switches_to(second)
            third = mount.write_in_place(pause=0.5)  # in place, half-written for a while
            traffic.switches_to(third)
        assert traffic.failures == []
        assert set(traffic.serials) == {first, second, third}
        assert process.process is not None and process.process.poll() is None
        metrics = process.metrics()
        assert 'finops_webhook_certificate_reloads_total{result="reloaded"} 2.0' in metrics
        assert 'finops_webhook_certificate_reloads_total{result="invalid"}' in metrics
    finally:
        process.stop()


def test_the_operator_managed_secret_is_reread_and_its_ca_set_on_the_webhooks(
    tmp_path: Path,
) -> None:
    cluster = KubeEmulator().start()
    try:
        for doc in yaml.safe_load_all(WEBHOOKS.read_text()):
            if doc and doc["kind"].endswith("WebhookConfiguration"):
                cluster.create(doc)
        args = ("--webhook-secret", SECRET, "--webhook-cert-reload-seconds", "0.2")
        process = OperatorProcess(
            cluster, tmp_path, {"mode": "audit"}, own_cert=False, extra_args=args
        ).start()
        try:
            cas = [
                base64.b64decode(cluster.get("Secret", "finops-system", SECRET)["data"]["ca.crt"])
            ]
            context = lambda: ssl.create_default_context(  # noqa: E731
                cadata="".join(ca.decode() for ca in cas)
            )
            with Traffic(process.webhook_port, context) as traffic:
                cert, key = fresh_pair()
                cas.append(cert)
                renewed = secret_body("finops-system", SECRET, cert, key)
                cluster.patch("Secret", "finops-system", SECRET, {"data": renewed["data"]})
                traffic.switches_to(serial(cert))
            assert traffic.failures == []
            for kind in ("ValidatingWebhookConfiguration", "MutatingWebhookConfiguration"):
                eventually(
                    lambda k=kind: all(
                        base64.b64decode(hook["clientConfig"]["caBundle"]) == cert
                        for hook in cluster.get(k, None, "finops-operator")["webhooks"]
                    )
                )
                # The operator's own matchConditions went in with the first CA, last.
                [hook] = cluster.get(kind, None, "finops-operator")["webhooks"]
                assert hook["matchConditions"][-1]["name"] in OWNED
        finally:
            process.stop()
    finally:
        cluster.stop()
