"""The webhook's certificate from one shared Secret, and its CA in the webhook configurations.

With `--webhook-secret NAME`, every replica reads the TLS Secret NAME in the
operator's namespace. The first replica to find it missing creates it (a
self-signed certificate for the webhook Service's names, acting as its own CA);
a replica that loses that race (409) reads the winner's. So all replicas serve
one certificate, and one CA goes into the `caBundle` of the Validating and
Mutating webhook configurations. With cert-manager, pass --webhook-cert and
--webhook-key instead and let its CA injector fill `caBundle`.

With the CA goes what only the running configuration knows: the matchConditions
that let the API server admit plainly compliant objects without calling the
webhooks, the `gpu-workload` condition from `gpuResources` and the exempt
namespaces (`domain/policies/webhook_conditions.py`). Every replica writes both at
start, so a restart with a new configuration brings them in step.
"""

from __future__ import annotations

import logging
from typing import Final

from finops_operator.domain.policies.webhook_conditions import WebhookSettings, conditions_patch
from finops_operator.domain.webhook_certificate import (
    WEBHOOK_CONFIGURATION_NAME,
    WEBHOOK_CONFIGURATIONS,
    ca_bundle_patch,
    pair_from_secret,
    secret_body,
)
from finops_operator.errors import KubeError
from finops_operator.ports import CertificateIssuer, KubePort

logger = logging.getLogger(__name__)
JSON_PATCH: Final = "application/json-patch+json"


async def shared_certificate(
    kube: KubePort, namespace: str, secret_name: str, issue: CertificateIssuer
) -> tuple[bytes, bytes, bytes]:
    """The webhook certificate, key and CA from the Secret, creating it once if absent.

    `issue` makes a self-signed certificate and key for the webhook Service of a
    namespace; it is called only when the Secret is missing.
    """
    secret = await kube.get_secret(namespace, secret_name)
    if secret is None:
        cert, key = issue(namespace)
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


async def first_shared_certificate(
    kube: KubePort,
    namespace: str,
    secret_name: str,
    issue: CertificateIssuer,
    conditions: WebhookSettings | None = None,
) -> tuple[bytes, bytes, bytes]:
    """The shared certificate, key and CA at start, the CA (and the operator's
    matchConditions) put into the webhook configurations."""
    cert, key, ca = await shared_certificate(kube, namespace, secret_name, issue)
    await inject_ca_bundle(kube, ca, conditions)
    return cert, key, ca


async def inject_ca_bundle(
    kube: KubePort, ca_pem: bytes, conditions: WebhookSettings | None = None
) -> None:
    """Put the CA into both webhook configurations, where it is not already; then, with
    `conditions` (`webhook_conditions.webhook_settings`), the operator's matchConditions
    and namespaceSelector, in a patch of their own: one the API server refuses never keeps
    the CA out."""
    for plural in WEBHOOK_CONFIGURATIONS:
        path = f"/apis/admissionregistration.k8s.io/v1/{plural}/{WEBHOOK_CONFIGURATION_NAME}"
        try:
            configuration = await kube.raw("GET", path)
            ops = ca_bundle_patch(configuration, ca_pem)
            if ops:
                configuration = await kube.raw("PATCH", path, ops, JSON_PATCH)
                logger.info("Set caBundle on %s/%s", plural, WEBHOOK_CONFIGURATION_NAME)
        except KubeError as err:
            logger.warning(
                "Cannot set caBundle on %s/%s: %s (apply manifests/ with kubectl apply -k; "
                "the API server cannot call the webhook without it)",
                plural,
                WEBHOOK_CONFIGURATION_NAME,
                err,
            )
            continue
        ops = [] if conditions is None else conditions_patch(configuration, conditions)
        if not ops:
            continue
        try:
            await kube.raw("PATCH", path, ops, JSON_PATCH)
            logger.info(
                "Set the operator's matchConditions and namespaceSelector on %s/%s",
                plural,
                WEBHOOK_CONFIGURATION_NAME,
            )
        except KubeError as err:
            logger.warning(
                "Cannot set the operator's matchConditions and namespaceSelector on %s/%s: %s "
                "(the API server then calls the webhook for every GPU workload, compliant or "
                "not, and only for the GPU resources and exempt namespaces the manifest names)",
                plural,
                WEBHOOK_CONFIGURATION_NAME,
                err,
            )
