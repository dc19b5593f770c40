"""What names the audit's Event of a decision, the same on every replica.

The audit writer names a decision's Event after a digest of the object's uid,
the decision and this *labels state*: the object's labels and its pods' labels,
without the `metadata.generation` that `audit.judged_state` also reads. A new
leader that finds a decision in place posts its Event under that name, and 409
tells it the old leader did (controllers/audit_writer.py). Scaling a Deployment
moves its generation but is the same violation, so the name must not move with
it; labels broken again after a fix are a new violation with an Event of its own
(unless they are the very labels of the first, while its Event lives).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from finops_operator.domain.workloads import pod_labels


def labels_state(obj: Mapping[str, Any]) -> str:
    """A short digest of the object's labels and its pods' labels."""
    labels = (obj.get("metadata") or {}).get("labels")
    labels = labels if isinstance(labels, Mapping) else {}
    state = [sorted(labels.items()), sorted(pod_labels(obj).items())]
    text = json.dumps(state, default=str, separators=(",", ":"))
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()
