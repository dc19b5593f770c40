"""A webhook certificate on disk the way kubelet mounts a Secret, and clients that
report which certificate served each request (one call, or `Traffic` in a loop)."""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import ssl
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cryptography import x509

from finops_devtools.devcluster.reviews import review, workload
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


class Traffic:
    """AdmissionReviews over new HTTPS connections, from a thread, until stopped.

    `with` it in a synchronous test (the operator as a process), `async with` it
    where the server runs on the test's own event loop. Every request that fails or
    is answered for another uid is kept in `failures`; `serials` are the serial
    numbers of the certificates that served each answered request.
    """

    def __init__(self, port: int, context: Callable[[], ssl.SSLContext]) -> None:
        self.port, self.context = port, context
        self._body = lambda: review(workload("Pod"))
        self.serials: list[int] = []
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            body = self._body()
            try:
                status, answer, served = post_review(self.port, "/validate", body, self.context())
                if status != 200 or answer["response"]["uid"] != body["request"]["uid"]:
                    self.failures.append(f"HTTP {status}: {answer}")
                self.serials.append(served)
            except Exception as err:  # any failure counts
                self.failures.append(repr(err))

    def __enter__(self) -> Traffic:
        self._thread.start()
        _wait(lambda: len(self.serials) >= 3, timeout=20)
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    async def __aenter__(self) -> Traffic:
        self._thread.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        self._stop.set()  # joined off the event loop, which answers the last request
        await asyncio.to_thread(self._thread.join, 20)

    def switches_to(self, serial: int, timeout: float = 30) -> None:
        """Blocks until the newest answers come from the certificate `serial`."""
        _wait(lambda: bool(self.serials) and self.serials[-1] == serial, timeout=timeout)
        count = len(self.serials)
        _wait(lambda: len(self.serials) >= count + 3, timeout=timeout)

    async def until(self, check: Callable[[], bool], timeout: float = 20) -> None:
        deadline = asyncio.get_running_loop().time() + timeout
        while not check():
            assert asyncio.get_running_loop().time() < deadline, (self.serials[-3:], self.failures)
            await asyncio.sleep(0.05)


def _wait(check: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)
