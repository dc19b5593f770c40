"""A self-signed webhook certificate written to files, for the operator the dev cluster runs.

The operator itself never writes its certificate where a test can read it (with
neither --webhook-secret nor --webhook-cert it keeps a self-signed pair private);
the dev cluster, the demo, the benchmarks and the process tests start it with
--webhook-cert/--webhook-key pointing at this pair, and trust its certificate.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path

from finops_operator.adapters.certificates import self_signed


def write_self_signed(
    directory: str | Path | None = None, hosts: Sequence[str] | None = None
) -> tuple[Path, Path]:
    """Write a fresh self-signed pair (for `hosts`, else the operator's defaults) to tls.crt
    and tls.key (a new private folder by default)."""
    cert_pem, key_pem = self_signed(hosts) if hosts is not None else self_signed()
    folder = Path(directory) if directory else Path(tempfile.mkdtemp(prefix="finops-webhook-"))
    cert_path, key_path = folder / "tls.crt", folder / "tls.key"
    cert_path.write_bytes(cert_pem)
    key_path.touch(mode=0o600)
    key_path.write_bytes(key_pem)
    return cert_path, key_path
