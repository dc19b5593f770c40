"""The webhook's certificate from one shared Secret, and its CA in the webhook configurations.

With `--webhook-secret NAME`, every replica reads the TLS Secret NAME in the
operator's namespace. The first replica to find it missing creates it (a
self-signed certificate for the webhook Service's names, acting as its own CA);
a replica that loses that race (409) reads the winner's. So all replicas serve
one certificate, and one CA goes into the `caBundle` of the Validating and
Mutating webhook configurations. With cert-manager, pass --webhook-cert and
--webhook-key instead and let its CA injector fill `caBundle`.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Mapping
from typing import Any, Final

from finops_operator.adapters.certificates import self_signed, service_hostnames
from finops_operator.adapters.kube_api import KubeApi
from finops_operator.errors import KubeError

logger = logging.getLogger(__name__)

WEBHOOK_CONFIGURATION_NAME: Final = "finops-operator"
WEBHOOK_CONFIGURATIONS: Final = (
    "validatingwebhookconfigurations",
    "mutatingwebhookconfigurations",
)


def secret_body(namespace: str, name: str, cert_pem: bytes, key_pem: bytes) -> dict[str, Any]:
    def b64(data: bytes) -> str:
        return base64.b64encode(data).decode()

    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "kubernetes.io/tls",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {"app.kubernetes.io/managed-by": "finops-operator"},
        },
        "data": {"tls.crt": b64(cert_pem), "tls.key": b64(key_pem), "ca.crt": b64(cert_pem)},
    }


def pair_from_secret(secret: Mapping[str, Any]) -> tuple[bytes, bytes, bytes]:
    """(certificate, key, CA) in PEM; ValueError naming what the Secret lacks."""
    data = secret.get("data") or {}
    missing = [key for key in ("tls.crt", "tls.key") if not data.get(key)]
    if missing:
        name = (secret.get("metadata") or {}).get("name")
        raise ValueError(f"Secret {name} has no {', '.join(missing)}")
    cert = base64.b64decode(data["tls.crt"])
    ca = base64.b64decode(data["ca.crt"]) if data.get("ca.crt") else cert
    return cert, base64.b64decode(data["tls.key"]), ca


def ca_bundle_patch(configuration: Mapping[str, Any], ca_pem: bytes) -> list[dict[str, Any]]:
    """JSON Patch operations setting `caBundle` on each webhook that lacks this CA."""
    bundle = base64.b64encode(ca_pem).decode()
    ops = []
    for index, hook in enumerate(configuration.get("webhooks") or []):
        if (hook.get("clientConfig") or {}).get("caBundle") != bundle:
            path = f"/webhooks/{index}/clientConfig/caBundle"
            ops.append({"op": "add", "path": path, "value": bundle})
    return ops


async def shared_certificate(
    kube: KubeApi, namespace: str, secret_name: str
) -> tuple[bytes, bytes, bytes]:
    """The webhook certificate, key and CA from the Secret, creating it once if absent."""
    secret = await kube.get_secret(namespace, secret_name)
    if secret is None:
        cert, key = self_signed(service_hostnames(namespace))
        try:
            await kube.create_secret(namespace, secret_body(namespace, secret_name, cert, key))
            logger.info("Created the webhook certificate Secret %s/%s", namespace, secret_name)
            return cert, key, cert
        except KubeError as err:
            if err.status != 409:
                raise
            secret = await kube.get_secret(namespace, secret_name)
            if secret is None:
                raise
    return pair_from_secret(secret)


async def inject_ca_bundle(kube: KubeApi, ca_pem: bytes) -> None:
    """Put the CA into both webhook configurations, where it is not already."""
    for plural in WEBHOOK_CONFIGURATIONS:
        path = f"/apis/admissionregistration.k8s.io/v1/{plural}/{WEBHOOK_CONFIGURATION_NAME}"
        try:
            configuration = await kube.raw("GET", path)
            ops = ca_bundle_patch(configuration, ca_pem)
            if ops:
                await kube.raw("PATCH", path, ops, "application/json-patch+json")
                logger.info("Set caBundle on %s/%s", plural, WEBHOOK_CONFIGURATION_NAME)
        except KubeError as err:
            logger.warning(
                "Cannot set caBundle on %s/%s: %s (apply manifests/ with kubectl apply -k; "
                "the API server cannot call the webhook without it)",
                plural,
                WEBHOOK_CONFIGURATION_NAME,
                err,
            )
