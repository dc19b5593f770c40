"""The built image, run the way a kubelet's containerd runs it (issue 24).

Kubernetes starts the image as `runAsUser: 65532` with the image's own /etc/passwd,
which has no such user, and (manifests/base/deployment.yaml) a read-only root file
system with an emptyDir at /tmp. podman adds a passwd entry unless told not to:
`--passwd=false` gives what containerd gives. The image is scripts/build-image.sh's
(its name in $FINOPS_OPERATOR_IMAGE, as scripts/test.sh exports it, or built here).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from finops_operator.adapters.certificates import self_signed
from tests.support.paths import ROOT

BUILD = ROOT / "scripts" / "build-image.sh"
PODMAN = shutil.which("podman")
SITE_PACKAGES = "/opt/venv/lib/python3.11/site-packages"
# Without a registry (CI here), what a pod runs as and how.
AS_KUBERNETES_RUNS_IT = (
    "--passwd=false",
    "--user=65532:65532",
    "--read-only",
    "--read-only-tmpfs=false",
    "--tmpfs=/tmp:rw,mode=1777,size=64m",
    "--network=none",
)


def podman_env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("CONTAINERS_CONF", str(ROOT / "scripts" / "containers.conf"))
    return env


@pytest.fixture(scope="module")
def image() -> str:
    if PODMAN is None:
        pytest.skip("needs podman and the image: scripts/build-image.sh installs and builds both")
    name = os.environ.get("FINOPS_OPERATOR_IMAGE")
    if not name:
        built = subprocess.run(
            [str(BUILD)], capture_output=True, text=True, timeout=1800, check=False
        )
        if built.returncode != 0:
            pytest.fail(f"scripts/build-image.sh failed:\n{built.stderr[-4000:]}")
        name = built.stdout.strip().splitlines()[-1]
    return name


def podman_run(
    image: str, *args: str, options: tuple[str, ...] = (), timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    assert PODMAN is not None
    return subprocess.run(
        [PODMAN, "run", "--rm", *AS_KUBERNETES_RUNS_IT, *options, image, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=podman_env(),
        check=False,
    )


def test_the_container_has_no_passwd_entry_for_its_user(image: str) -> None:
    # What makes the other tests mean something: the uid is unknown inside, as in a pod.
    done = podman_run(
        image,
        "-c",
        "import getpass, os; print(os.getuid(), os.getgid()); getpass.getuser()",
        options=("--entrypoint=python",),
    )
    assert done.stdout.split() == ["65532", "65532"], done.stderr
    assert done.returncode == 1
    assert "KeyError: 'getpwuid(): uid not found: 65532'" in done.stderr


def test_help_runs_as_65532_on_a_read_only_root(image: str) -> None:
    done = podman_run(image, "--help")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: finops-operator")
    for command in ("lint", "run", "render", "report"):
        assert f"    {command} " in done.stdout, command
    assert done.stderr == ""


@pytest.fixture
def manifests(tmp_path: Path) -> Path:
    folder = tmp_path / "manifests"
    folder.mkdir()
    shutil.copy(ROOT / "tests" / "data" / "clean" / "compliant.yaml", folder)
    shutil.copy(ROOT / "tests" / "data" / "malformed" / "valid-untagged.yaml", folder)
    for path in (tmp_path, folder, *folder.iterdir()):
        path.chmod(0o755 if path.is_dir() else 0o644)  # readable by 65532
    return folder


def test_lint_reads_manifests_mounted_read_only(image: str, manifests: Path) -> None:
    mount = (f"--volume={manifests}:/manifests:ro",)
    clean = podman_run(image, "lint", "/manifests/compliant.yaml", options=mount)
    assert clean.returncode == 0, clean.stderr
    assert "checked 2 workload(s): 0 with cost-label violations" in clean.stdout
    untagged = podman_run(image, "lint", "/manifests", options=mount)
    assert untagged.returncode == 1, untagged.stderr
    assert (
        "/manifests/valid-untagged.yaml: Job ml/untagged-training: missing resilio.tech/team"
        in untagged.stdout
    )
    assert "checked 3 workload(s): 1 with cost-label violations" in untagged.stdout
    assert "Traceback" not in untagged.stderr


@pytest.fixture
def service_account(tmp_path: Path) -> Path:
    """What the kubelet mounts in a pod: a token and the cluster's CA."""
    folder = tmp_path / "serviceaccount"
    folder.mkdir()
    ca, _ = self_signed()
    (folder / "ca.crt").write_bytes(ca)
    (folder / "token").write_text("not-a-real-token")
    (folder / "namespace").write_text("finops-system")
    for path in (tmp_path, folder, *folder.iterdir()):
        path.chmod(0o755 if path.is_dir() else 0o644)
    return folder


@pytest.fixture
def container_name() -> Iterator[str]:
    name = f"finops-operator-test-{uuid.uuid4().hex[:8]}"
    yield name
    assert PODMAN is not None
    subprocess.run(
        [PODMAN, "rm", "--force", "--time=0", name],
        capture_output=True,
        timeout=60,
        env=podman_env(),
        check=False,
    )


def test_run_starts_in_cluster_without_passwd_entry(
    image: str, service_account: Path, container_name: str
) -> None:
    """`run` as a pod: in-cluster configuration, an API server that refuses (nothing
    listens on 127.0.0.1 in the container's own network), no passwd entry. It gets
    past kopf's start (kopf's API calls are retried and logged) instead of dying.
    kopf's service-account login calls https://kubernetes.default.svc, the operator's
    client $KUBERNETES_SERVICE_HOST: both lead to 127.0.0.1 here."""
    assert PODMAN is not None
    command = [
        PODMAN, "run", "--rm", "--name", container_name, *AS_KUBERNETES_RUNS_IT,
        f"--volume={service_account}:/var/run/secrets/kubernetes.io/serviceaccount:ro",
        "--env=KUBERNETES_SERVICE_HOST=127.0.0.1",
        "--env=KUBERNETES_SERVICE_PORT=1",
        "--env=POD_NAMESPACE=finops-system",
        "--add-host=kubernetes.default.svc:127.0.0.1",
        image,
    ]  # fmt: skip
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        env=podman_env(),
    )
    lines: list[str] = []
    kopf_retries = threading.Event()

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line)
            if "kopf" in line and "Request attempt #1/" in line and "Connect call failed" in line:
                kopf_retries.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 90
        while not kopf_retries.is_set() and process.poll() is None:
            if time.monotonic() > deadline:
                break
            time.sleep(0.2)
        running = process.poll() is None
    finally:
        subprocess.run(
            [PODMAN, "kill", container_name],
            capture_output=True,
            timeout=60,
            env=podman_env(),
            check=False,
        )
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        reader.join(timeout=10)
    log = "".join(lines)
    assert "getpwuid" not in log and "KeyError" not in log, log[-4000:]
    assert running, f"`run` exited by itself:\n{log[-4000:]}"
    assert kopf_retries.is_set(), f"kopf never called the API server:\n{log[-4000:]}"
    assert "Admission on https://0.0.0.0:9443/validate" in log
    # The in-cluster configuration was read: the calls went to KUBERNETES_SERVICE_HOST.
    assert "cannot reach the API server" in log


def test_the_image_holds_the_operator_and_not_the_devtools(image: str) -> None:
    done = podman_run(image, SITE_PACKAGES, options=("--entrypoint=ls",))
    assert done.returncode == 0, done.stderr
    installed = set(done.stdout.split())
    assert {"finops_operator", "kopf", "kubernetes"} <= installed
    assert not {name for name in installed if name.startswith("finops_devtools")}
    for tool in ("pytest", "mypy", "ruff", "kmock", "hypothesis", "setuptools", "pip"):
        assert tool not in installed, tool
    demo = podman_run(image, "demo")
    assert demo.returncode == 2
    assert "the demo is not part of this installation" in demo.stderr
    assert "Traceback" not in demo.stderr
