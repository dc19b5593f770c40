"""Self-signed TLS for the admission webhook: what `run` serves with no certificate given.

The pair stays in memory (`certificate_reloader`); the development tools write one
to files for the operators they start (`finops_devtools/devcluster/certificates.py`).

kopf's own generator (certbuilder/oscrypto) cannot read this machine's OpenSSL,
so the certificate is made with `cryptography`. In a cluster, mount a real
certificate (cert-manager) and pass --webhook-cert/--webhook-key instead.
"""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import Iterable

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

DEFAULT_HOSTNAMES = (
    "localhost",
    "127.0.0.1",
    "finops-operator-webhook",
    "finops-operator-webhook.finops-system",
    "finops-operator-webhook.finops-system.svc",
)


def _san(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def self_signed(
    hostnames: Iterable[str] = DEFAULT_HOSTNAMES, days: int = 365
) -> tuple[bytes, bytes]:
    """A PEM certificate and its PEM private key, valid for `hostnames`."""
    names = list(hostnames)
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName([_san(n) for n in names]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def service_hostnames(namespace: str, service: str = "finops-operator-webhook") -> list[str]:
    """The names the API server may use for the webhook Service, plus loopback."""
    return [
        service,
        f"{service}.{namespace}",
        f"{service}.{namespace}.svc",
        f"{service}.{namespace}.svc.cluster.local",
        "localhost",
        "127.0.0.1",
    ]


def for_service(namespace: str) -> tuple[bytes, bytes]:
    """A self-signed certificate and key for the webhook Service in `namespace`."""
    return self_signed(service_hostnames(namespace))
