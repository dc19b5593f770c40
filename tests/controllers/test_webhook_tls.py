"""The shared webhook Secret and the caBundle patch, as plain data."""

from __future__ import annotations

import base64

import pytest
from cryptography import x509

from finops_operator.adapters.certificates import self_signed, service_hostnames
from finops_operator.domain.webhook_certificate import (
    ca_bundle_patch,
    pair_from_secret,
    secret_body,
)


def test_a_secret_round_trips_the_certificate_key_and_ca() -> None:
    cert, key = self_signed(service_hostnames("finops-system"))
    secret = secret_body("finops-system", "finops-operator-webhook-tls", cert, key)
    assert secret["type"] == "kubernetes.io/tls"
    assert pair_from_secret(secret) == (cert, key, cert)


def test_the_certificate_names_the_webhook_service_in_its_namespace() -> None:
    cert, _ = self_signed(service_hostnames("platform-finops"))
    names = x509.load_pem_x509_certificate(cert).extensions.get_extension_for_class(
        x509.SubjectAlternativeName
    )
    assert "finops-operator-webhook.platform-finops.svc" in names.value.get_values_for_type(
        x509.DNSName
    )


def test_a_secret_without_a_key_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match=r"Secret broken has no tls\.key"):
        pair_from_secret({"metadata": {"name": "broken"}, "data": {"tls.crt": "eA=="}})


def test_the_ca_is_added_to_every_webhook_that_lacks_it_and_only_those() -> None:
    ca = b"-----BEGIN CERTIFICATE-----\nabc\n-----END CERTIFICATE-----\n"
    bundle = base64.b64encode(ca).decode()
    configuration = {
        "webhooks": [
            {"name": "a", "clientConfig": {"service": {"name": "s"}}},
            {"name": "b", "clientConfig": {"caBundle": bundle}},
            {"name": "c", "clientConfig": {"caBundle": "b2xk"}},
        ]
    }
    assert ca_bundle_patch(configuration, ca) == [
        {"op": "add", "path": "/webhooks/0/clientConfig/caBundle", "value": bundle},
        {"op": "add", "path": "/webhooks/2/clientConfig/caBundle", "value": bundle},
    ]
