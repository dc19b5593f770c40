"""The webhook's shared TLS Secret and the `caBundle` of its configurations, as plain data.

Pure: `controllers.webhook_tls` reads and writes the objects these build and read.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any, Final

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
