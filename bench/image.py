"""Benchmark the operator's image: its size, and how soon it answers once started.

Runs the image the way a kubelet's containerd runs it (uid 65532 without a passwd
entry, read-only root, a tmpfs at /tmp, no network) with podman and measures, each
`--repeat` times, the median wall time of
- `podman run ... --entrypoint=/bin/true`: the container runtime alone (the floor);
- `podman run ... --help`: the interpreter, the CLI and its imports on top of it;
- `podman run ...` (`run`, in-cluster configuration, an API server that refuses):
  until the first log line, and until the admission and metrics servers listen
  ("Admission on ..."), i.e. everything before the first API call.
Prints one JSON object. Everything it starts, it stops.

Run from the repository root:  .venv/bin/python bench/image.py [--image NAME] [--repeat 5]
Without --image it builds (or finds) the image with scripts/build-image.sh.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT / "src") not in sys.path:
    sys.path.insert(0, str(ROOT / "src"))

from finops_operator.adapters.certificates import self_signed  # noqa: E402

AS_KUBERNETES_RUNS_IT = (
    "--passwd=false",
    "--user=65532:65532",
    "--read-only",
    "--read-only-tmpfs=false",
    "--tmpfs=/tmp:rw,mode=1777,size=64m",
    "--network=none",
)


def podman(*args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["podman", *args], capture_output=True, text=True, env=_env(), check=True, **kwargs
    )


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("CONTAINERS_CONF", str(ROOT / "scripts" / "containers.conf"))
    return env


def timed_run(image: str, *args: str, options: tuple[str, ...] = ()) -> float:
    start = time.perf_counter()
    podman("run", "--rm", *AS_KUBERNETES_RUNS_IT, *options, image, *args, timeout=120)
    return time.perf_counter() - start


def operator_start(image: str, service_account: Path) -> tuple[float, float]:
    """Seconds from `podman run` to the first log line, and to the servers listening."""
    name = f"finops-operator-bench-{uuid.uuid4().hex[:8]}"
    command = [
        "podman", "run", "--rm", "--name", name, *AS_KUBERNETES_RUNS_IT,
        f"--volume={service_account}:/var/run/secrets/kubernetes.io/serviceaccount:ro",
        "--env=KUBERNETES_SERVICE_HOST=127.0.0.1",
        "--env=KUBERNETES_SERVICE_PORT=1",
        "--add-host=kubernetes.default.svc:127.0.0.1",
        image,
    ]  # fmt: skip
    start = time.perf_counter()
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=_env()
    )
    first = listening = float("nan")
    try:
        assert process.stdout is not None
        for line in process.stdout:
            now = time.perf_counter() - start
            if first != first:  # nan: the first line
                first = now
            if "Admission on https://" in line:
                listening = now
                break
    finally:
        subprocess.run(["podman", "kill", name], capture_output=True, env=_env(), check=False)
        process.wait(timeout=60)
    return first, listening


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", help="image name (default: scripts/build-image.sh's)")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    image = (
        args.image
        or subprocess.run(
            [str(ROOT / "scripts" / "build-image.sh")], capture_output=True, text=True, check=True
        )
        .stdout.strip()
        .splitlines()[-1]
    )
    size = int(podman("image", "inspect", "--format", "{{.Size}}", image).stdout)
    sizes = [
        podman(
            "run", "--rm", *AS_KUBERNETES_RUNS_IT, "--entrypoint=du", image, "-s", "-m", path
        ).stdout.split()[0]
        for path in ("/opt/venv", "/opt/venv/lib/python3.11/site-packages/kubernetes")
    ]  # fmt: skip
    runtime = [timed_run(image, options=("--entrypoint=/bin/true",)) for _ in range(args.repeat)]
    helps = [timed_run(image, "--help") for _ in range(args.repeat)]
    with tempfile.TemporaryDirectory() as folder:
        account = Path(folder)
        account.chmod(0o755)
        ca = self_signed()[0].decode()
        for name, text in (("token", "bench"), ("namespace", "finops-system"), ("ca.crt", ca)):
            (account / name).write_text(text)
            (account / name).chmod(0o644)
        starts = [operator_start(image, account) for _ in range(args.repeat)]
    print(
        json.dumps(
            {
                "image": image,
                "size_mb": round(size / 1e6),
                "venv_mb": int(sizes[0]),
                "kubernetes_client_mb": int(sizes[1]),
                "container_runtime_s": round(statistics.median(runtime), 2),
                "help_s": round(statistics.median(helps), 2),
                "run_first_log_line_s": round(statistics.median(s[0] for s in starts), 2),
                "run_servers_listening_s": round(statistics.median(s[1] for s in starts), 2),
                "repeat": args.repeat,
                "machine": f"{platform.processor() or platform.machine()}, "
                f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}",
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
