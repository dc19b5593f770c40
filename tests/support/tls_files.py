"""A webhook certificate on disk the way kubelet mounts a Secret, and a client that
reports which certificate served each request."""

from __future__ import annotations

import http.client
import json
import os
import ssl
import time
import uuid
from pathlib import Path
from typing import Any

from cryptography import x509

from finops_operator.adapters.certificates import self_signed


def fresh_pair() -> tuple[bytes, bytes]:
    """A self-signed pair for localhost with a subject of its own: a client that trusts
    several of them finds the right one by name."""
    return self_signed((f"renewal-{uuid.uuid4().hex[:8]}.test", "localhost", "127.0.0.1"))


class KubeletMount:
    """DIR/tls.crt -> ..data/tls.crt, ..data -> ..<version>/: renewed by an atomic swap."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.version = 0
        self.cas: list[bytes] = []

    @property
    def cert(self) -> Path:
        return self.directory / "tls.crt"

    @property
    def key(self) -> Path:
        return self.directory / "tls.key"

    def renew(self, pair: tuple[bytes, bytes] | None = None) -> int:
        """A new pair (or `pair`, maybe broken), swapped in atomically as kubelet does;
        the new serial (0 for a given pair)."""
        cert_pem, key_pem = pair or fresh_pair()
        if pair is None:
            self.cas.append(cert_pem)
        self.version += 1
        version = self.directory / f"..{self.version}"
        version.mkdir()
        (version / "tls.crt").write_bytes(cert_pem)
        (version / "tls.key").write_bytes(key_pem)
        staged = self.directory / "..data_tmp"
        staged.symlink_to(version.name)
        staged.replace(self.directory / "..data")  # rename(2): atomic
        for name in ("tls.crt", "tls.key"):
            if not (self.directory / name).is_symlink():
                (self.directory / name).symlink_to(f"..data/{name}")
        return serial(cert_pem) if pair is None else 0

    def write_in_place(self, pause: float = 0.0) -> int:
        """A new pair written over the files, certificate first: half-written meanwhile."""
        cert_pem, key_pem = fresh_pair()
        self.cas.append(cert_pem)
        Path(os.path.realpath(self.cert)).write_bytes(cert_pem)
        time.sleep(pause)
        Path(os.path.realpath(self.key)).write_bytes(key_pem)
        return serial(cert_pem)

    def client_context(self) -> ssl.SSLContext:
        """Trusts every certificate this mount has held (each is its own CA)."""
        context = ssl.create_default_context(cadata="".join(c.decode() for c in self.cas))
        return context


def serial(cert_pem: bytes) -> int:
    return x509.load_pem_x509_certificate(cert_pem).serial_number


def post_review(
    port: int, path: str, review: dict[str, Any], context: ssl.SSLContext
) -> tuple[int, dict[str, Any], int]:
    """POST over a new HTTPS connection: the status, the answer and the served serial."""
    connection = http.client.HTTPSConnection("localhost", port, context=context, timeout=10)
    try:
        connection.request("POST", path, json.dumps(review), {"Content-Type": "application/json"})
        assert connection.sock is not None
        der = connection.sock.getpeercert(binary_form=True)
        response = connection.getresponse()
        answer = json.loads(response.read())
        assert der is not None
        return response.status, answer, x509.load_der_x509_certificate(der).serial_number
    finally:
        connection.close()
