"""The webhook's serving certificate, reloaded without a restart.

The listening socket's TLS context never changes; its SNI callback (which
OpenSSL runs for every ClientHello, with or without a server name) hands each
new connection the context of the newest valid pair. Open connections keep the
pair they started with.

`keep_reloading` reads the pair every few seconds, from the files
(--webhook-cert/--webhook-key: read through their paths, so kubelet's atomic
`..data` symlink swap of a mounted Secret and in-place writes both show) or from
the operator-managed Secret (--webhook-secret). A pair that changed is loaded
into a fresh context first; a half-written or mismatched pair is logged, counted
(`finops_webhook_certificate_reloads_total{result="invalid"}`) and ignored, and
the old pair is served until a valid one appears. `serving_certificate` starts
it from a source, or serves a fixed self-signed pair when there is none.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import ssl
import tempfile
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any, NamedTuple

from cryptography import x509
from prometheus_client import CollectorRegistry, Counter, Gauge

from finops_operator.adapters.certificates import self_signed
from finops_operator.domain.webhook_certificate import pair_from_secret
from finops_operator.errors import KubeError
from finops_operator.ports import KubePort

logger = logging.getLogger(__name__)


class TlsPair(NamedTuple):
    """A PEM certificate (chain), its PEM key, and the CA that signs it."""

    cert: bytes
    key: bytes
    ca: bytes


Read = Callable[[], Awaitable[TlsPair]]
OnChange = Callable[[TlsPair], Awaitable[None]]


def server_context(cert_pem: bytes, key_pem: bytes) -> ssl.SSLContext:
    """A TLS server context for the pair; ssl.SSLError or ValueError when it is not one."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    with tempfile.TemporaryDirectory(prefix="finops-tls-") as folder:
        cert_path, key_path = Path(folder) / "tls.crt", Path(folder) / "tls.key"
        cert_path.write_bytes(cert_pem)
        key_path.touch(mode=0o600)
        key_path.write_bytes(key_pem)
        # An encrypted key fails at once instead of OpenSSL prompting on the terminal.
        context.load_cert_chain(str(cert_path), str(key_path), password=_no_password)
    return context


def _no_password() -> bytes:
    return b""


def _digest(pair: TlsPair) -> str:
    return hashlib.sha256(pair.cert + b"\0" + pair.key).hexdigest()


class ServingCertificate:
    """The context to listen with (`context`), serving the newest valid pair offered."""

    def __init__(self, pair: TlsPair, registry: CollectorRegistry | None = None) -> None:
        self.reloads = Counter(
            "finops_webhook_certificate_reloads",
            "Webhook certificate changes seen, by result (reloaded, invalid, unreadable).",
            ("result",),
            registry=registry,
        )
        self.not_after = Gauge(
            "finops_webhook_certificate_expiry_timestamp_seconds",
            "When the webhook certificate being served expires.",
            registry=registry,
        )
        self.current = server_context(pair.cert, pair.key)  # raises: the start fails
        self.certificate = x509.load_pem_x509_certificate(pair.cert)
        self.not_after.set(self.certificate.not_valid_after_utc.timestamp())
        self._tried = _digest(pair)
        self.context = server_context(pair.cert, pair.key)
        self.context.sni_callback = self._select

    @property
    def serial(self) -> int:
        return self.certificate.serial_number

    def _select(self, connection: ssl.SSLObject, _name: str | None, _: ssl.SSLContext) -> None:
        connection.context = self.current

    def offer(self, pair: TlsPair) -> bool:
        """Serve `pair` to new connections if it is new and valid; whether it was taken."""
        digest = _digest(pair)
        if digest == self._tried:
            return False
        self._tried = digest  # an invalid pair is reported once, not at every poll
        try:
            certificate = x509.load_pem_x509_certificate(pair.cert)
            context = server_context(pair.cert, pair.key)
        except (ssl.SSLError, ValueError) as err:
            self.reloads.labels("invalid").inc()
            logger.warning(
                "Ignored a new webhook certificate and key that do not load (%s); still "
                "serving serial %x until a valid pair appears",
                err,
                self.serial,
            )
            return False
        self.current, self.certificate = context, certificate
        self.not_after.set(certificate.not_valid_after_utc.timestamp())
        self.reloads.labels("reloaded").inc()
        logger.info(
            "Serving a new webhook certificate to new connections: serial %x, valid until %s",
            certificate.serial_number,
            certificate.not_valid_after_utc.isoformat(),
        )
        return True

    def unreadable(self) -> None:
        self.reloads.labels("unreadable").inc()


def file_source(cert: str | Path, key: str | Path) -> Read:
    """Reads the pair through its paths (symlinks resolved at each read)."""

    async def read() -> TlsPair:
        cert_pem, key_pem = await asyncio.to_thread(_read_both, Path(cert), Path(key))
        return TlsPair(cert_pem, key_pem, cert_pem)

    return read


def _read_both(cert: Path, key: Path) -> tuple[bytes, bytes]:
    return cert.read_bytes(), key.read_bytes()


def secret_source(kube: KubePort, namespace: str, name: str) -> Read:
    """Reads the pair (and its CA) from the Secret."""

    async def read() -> TlsPair:
        secret = await kube.get_secret(namespace, name)
        if secret is None:
            raise KubeError(404, f"the Secret {namespace}/{name} does not exist")
        return TlsPair(*pair_from_secret(secret))

    return read


async def keep_reloading(
    serving: ServingCertificate,
    read: Read,
    every_seconds: float,
    on_change: OnChange | None = None,
) -> None:
    """Forever: read the pair every `every_seconds`, and serve it when it changed.

    `on_change` (the Secret's CA into `caBundle`) runs after each change, and again
    at every poll until it succeeds.
    """
    problem = ""
    pending: TlsPair | None = None
    while True:
        await asyncio.sleep(every_seconds)
        try:
            pair = await read()
        except Exception as err:  # whatever the source raises, the loop goes on
            serving.unreadable()
            if str(err) != problem:
                logger.warning("Cannot read the webhook certificate (still serving it): %s", err)
            problem = str(err)
            continue
        problem = ""
        if serving.offer(pair):
            pending = pair
        if pending is not None and on_change is not None:
            try:
                await on_change(pending)
                pending = None
            except Exception as err:  # retried at the next poll
                logger.warning("After a webhook certificate change: %s", err)


async def serving_certificate(
    registry: CollectorRegistry,
    every_seconds: float,
    read: Read | None,
    first: Read | None = None,
    on_change: OnChange | None = None,
) -> tuple[ServingCertificate, Coroutine[Any, Any, None] | None]:
    """The certificate to serve, and the loop that reloads it from `read` (`keep_reloading`).

    The first pair comes from `first` when given (a Secret made on first use), else from
    `read`. Without `read`, a self-signed pair is served and never reloaded.
    """
    if read is None:
        cert_pem, key_pem = self_signed()
        logger.warning("No --webhook-cert given: serving a self-signed certificate")
        return ServingCertificate(TlsPair(cert_pem, key_pem, cert_pem), registry), None
    serving = ServingCertificate(await (first or read)(), registry)
    return serving, keep_reloading(serving, read, every_seconds, on_change)
