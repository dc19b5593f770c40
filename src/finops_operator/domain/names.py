"""Names and the syntax Kubernetes gives them, hashed names, currency codes: one home.

The configuration, the CostPolicy checks and the names the operator gives its
objects all ask the same questions: is this a DNS label (a namespace), a DNS
subdomain (an object's name), a label key or value; how is a name that is too
long, or that is not a name at all, shortened without two of them colliding; is
this an ISO 4217 code. Each answer is written once, here, so the syntax the
operator checks cannot drift between the places that check it.
"""

from __future__ import annotations

import hashlib
import re
from typing import Final

# Kubernetes' own syntax (apimachinery's validation), anchored: `DNS_LABEL` is also
# the default label rule of `team` and `feature`, shown as is in its messages.
DNS_LABEL: Final = r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"
DNS_SUBDOMAIN: Final = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
LABEL_VALUE: Final = r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$"
_LABEL_NAME: Final = re.compile(r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?")
MAX_SUBDOMAIN_LENGTH: Final = 253
MAX_LABEL_LENGTH: Final = 63  # a DNS label, a label value, a label key's name part


def is_dns_label(name: str) -> bool:
    """A DNS-1123 label (a namespace's name): 1-63 lower-case letters, digits and `-`."""
    return re.fullmatch(DNS_LABEL, name) is not None


def is_dns_subdomain(name: str) -> bool:
    """A DNS-1123 subdomain (most objects' names): labels joined by `.`, at most 253."""
    return len(name) <= MAX_SUBDOMAIN_LENGTH and re.fullmatch(DNS_SUBDOMAIN, name) is not None


def is_label_value(value: str) -> bool:
    """A label value: empty, or at most 63 letters, digits, `-`, `_`, `.` between alphanumerics."""
    return len(value) <= MAX_LABEL_LENGTH and re.fullmatch(LABEL_VALUE, value) is not None


def label_key_problem(key: str) -> str | None:
    """Why `key` is not a valid Kubernetes label key, or None when it is."""
    prefix, slash, name = key.rpartition("/")
    if slash and (not prefix or not is_dns_subdomain(prefix)):
        return f"{key!r} is not a valid label key: the prefix must be a DNS subdomain"
    if not name or len(name) > MAX_LABEL_LENGTH or not _LABEL_NAME.fullmatch(name):
        return (
            f"{key!r} is not a valid label key: the name must be 1-63 letters, digits, "
            "'-', '_' or '.', starting and ending with a letter or digit"
        )
    return None


# A hashed name ends in `-` and `HASH_LENGTH` hex digits of the hash of what it names.
HASH_LENGTH: Final = 8
_HASHED: Final = re.compile(rf"-[0-9a-f]{{{HASH_LENGTH}}}$")


def ends_like_hash(name: str) -> bool:
    """Whether `name` ends as a hashed name does, so that keeping it could collide with one."""
    return _HASHED.search(name) is not None


def hashed_name(name: str, original: str, max_length: int) -> str:
    """`name` cut to fit `max_length` with `-<hash of original>` appended.

    Two originals give two names (but for a sha256 collision in 8 hex digits) however
    alike their starts; the hash is of `original`, the whole thing the name stands for,
    not of what was cut.
    """
    digest = hashlib.sha256(original.encode()).hexdigest()[:HASH_LENGTH]
    return name[: max_length - HASH_LENGTH - 1].rstrip("-.") + "-" + digest


def currency_code(currency: str) -> str:
    """`currency` when it is an ISO 4217 code (three capital letters); ValueError if not."""
    if not re.fullmatch(r"[A-Z]{3}", currency):
        raise ValueError(f"{currency!r} is not an ISO 4217 currency code such as USD")
    return currency
