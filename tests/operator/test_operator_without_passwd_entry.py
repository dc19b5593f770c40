"""The operator starts under a uid that has no passwd entry, as every pod does (issue 24).

Kubernetes runs the image as `runAsUser: 65532` with the image's /etc/passwd, which
has no such user; podman hides this by adding an entry, containerd does not. There,
Python's `pwd.getpwuid(os.getuid())` raises KeyError, and so does `getpass.getuser()`
when no LOGNAME/USER is set: kopf asked it for the operator's identity, and the pod
died at start. Here the process runs `serve` in-process with both failing exactly so.
(tests/install/test_image.py runs the built image without a passwd entry.)
"""

from __future__ import annotations

import asyncio
import getpass
import pwd
import time
from pathlib import Path
from typing import NoReturn

import kubernetes.config.kube_config
import pytest

from finops_devtools.devcluster.certificates import write_self_signed
from finops_operator.controllers.assembly import RunOptions
from finops_operator.domain import conventions
from finops_operator.domain.config import Config
from finops_operator.operator import OperatorState, serve
from tests.support.kube_emulator import KubeEmulator
from tests.support.operator_process import free_port

POLICIES = (
    f"/apis/{conventions.API_GROUP}/{conventions.API_VERSION}/{conventions.COSTPOLICY_PLURAL}"
)


def no_passwd_entry(uid: int) -> NoReturn:
    raise KeyError(f"getpwuid(): uid not found: {uid}")


@pytest.fixture
def without_passwd_entry(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(pwd, "getpwuid", no_passwd_entry)
    for name in ("LOGNAME", "USER", "LNAME", "USERNAME", "POD_ID"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # as the image sets it: HOME=/tmp
    with pytest.raises(KeyError, match="uid not found"):
        getpass.getuser()


async def test_run_starts_and_stops_for_a_uid_without_passwd_entry(
    cluster: KubeEmulator,
    without_passwd_entry: None,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    kubeconfig = str(cluster.write_kubeconfig(tmp_path / "kubeconfig"))
    monkeypatch.setenv("KUBECONFIG", kubeconfig)
    # The kubernetes client reads $KUBECONFIG once, when it is imported.
    monkeypatch.setattr(kubernetes.config.kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", kubeconfig)
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    cert, key = write_self_signed(tmp_path)
    stop = asyncio.Event()
    before = len(cluster.requests_to("GET", POLICIES))

    async def stop_once_kopf_watches() -> None:
        # kopf lists CostPolicies once it has its identity and its watches start.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if len(cluster.requests_to("GET", POLICIES)) > before:
                break
            await asyncio.sleep(0.1)
        stop.set()

    stopper = asyncio.create_task(stop_once_kopf_watches())
    await asyncio.wait_for(
        serve(
            OperatorState(
                # Nothing listens there: the operator's Prometheus calls fail at once.
                config=Config.model_validate({"prometheus": {"url": "http://127.0.0.1:1"}}),
                namespace="finops-system",
            ),
            RunOptions(
                webhook_host="127.0.0.1",
                webhook_port=free_port(),
                webhook_cert=str(cert),
                webhook_key=str(key),
                metrics_port=free_port(),
                leader_election=False,
            ),
            stop_flag=stop,
        ),
        timeout=120,
    )
    await stopper
    assert len(cluster.requests_to("GET", POLICIES)) > before, (
        "kopf never listed the CostPolicies: it did not start"
    )
