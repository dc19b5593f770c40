"""`finops-operator demo` end to end: the real command, a small scenario, then nothing left.

The demo runs as a user runs it (a subprocess of the CLI) and must exit 0 having
shown each part of the product; afterwards the processes it started are gone,
their ports are closed and its work directory is removed. Ctrl-C in the middle
cleans up the same way, and a missing Prometheus is explained, not a traceback.
"""

from __future__ import annotations

import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from decimal import Decimal
from pathlib import Path

from finops_operator.domain import conventions
from tests.support.prometheus_server import needs_prometheus

SMALL = ["--days", "2", "--teams", "4", "--seed", "7"]
TEAMS = ("search-platform", "recsys", "llm-core", "vision")


def demo_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "finops_operator.cli", "demo", *args]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead too: it holds no port and runs nothing.
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except OSError:
        return False
    return state != "Z"


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def started_things(out: str) -> tuple[list[int], list[int], Path]:
    """The pids, the ports and the work directory the demo said it started."""
    pids = [int(p) for p in re.findall(r"\bpid (\d+)", out)]
    ports = [int(p) for p in re.findall(r"(?:127\.0\.0\.1|localhost):(\d+)", out)]
    workdir = re.search(r"Work directory:\s+(\S+)", out)
    assert workdir, out
    return pids, ports, Path(workdir.group(1))


def assert_cleaned_up(out: str) -> None:
    pids, ports, workdir = started_things(out)
    assert len(pids) == 2, out  # Prometheus and the operator
    assert len(set(ports)) >= 4, out  # Prometheus, the emulator, webhook, metrics
    deadline = time.monotonic() + 10
    while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [pid for pid in pids if alive(pid)]
    assert not [port for port in set(ports) if port_open(port)]
    assert not workdir.exists()


@needs_prometheus
def test_the_demo_shows_every_part_and_leaves_nothing_behind(tmp_path: Path) -> None:
    output = tmp_path / "out"
    started = time.monotonic()
    result = subprocess.run(
        demo_command(*SMALL, "--output", str(output)),
        capture_output=True, text=True, timeout=240, check=False,
    )  # fmt: skip
    elapsed = time.monotonic() - started
    out = result.stdout
    assert result.returncode == 0, f"{out}\n{result.stderr}"
    assert elapsed < 120, elapsed

    # Where things are.
    for place in ("Prometheus:", "Kubernetes API (kmock emulator):", "admission webhooks:",
                  "metrics:", "Work directory:", "operator.log", "prometheus.log"):  # fmt: skip
        assert place in out

    # The refused workload names each missing key, as kubectl prints a denial.
    denial = next(line for line in out.splitlines() if "llm-finetune" in line and "Error" in line)
    assert denial.strip().startswith("Error from server (Forbidden): error when creating")
    assert 'admission webhook "labels.finops.resilio.tech" denied the request:' in denial
    for key in ("resilio.tech/feature", "resilio.tech/environment", "resilio.tech/cost-center"):
        assert f"missing {key}" in denial
    assert "deployment.apps/semantic-search created" in out
    assert "labels inherited from namespace/recsys" in out
    assert "Warning: finops: StatefulSet research-sandbox/notebook-alice" in out

    # The audit's annotation and Event, and the allocation on /metrics.
    assert '"missing":["resilio.tech/feature"' in out
    assert re.search(r"Warning\s+MissingCostLabels\s+statefulset/notebook-alice", out)
    assert 'pod="ranker-train-0412-' in out and 'team="recsys"' in out

    # The CostPolicy's PrometheusRule and status.
    assert "kind: PrometheusRule" in out and "name: costpolicy-search-platform" in out
    assert f"alert: {conventions.ALERT_SPEND_ANOMALY}" in out
    assert "reason: RulesApplied" in out
    # Prometheus evaluates the recording rules the operator wrote (the demo loads them).
    assert "reason: HeartbeatFound" in out

    # kubectl get costreports.
    lines = out.splitlines()
    at = next(i for i, line in enumerate(lines) if line.strip() == "$ kubectl get costreports")
    header = lines[at + 1].split()
    assert header == ["NAME", "TEAM", "PERIOD", "GPU", "HOURS", "COST", "IDLE", "%", "BUDGET",
                      "%", "FORECAST", "AGE"]  # fmt: skip
    rows = {}
    for line in lines[at + 2 :]:
        if not line.startswith("  ") or line.startswith("  $") or not line.strip():
            break
        cells = line.split()
        rows[cells[0]] = cells
    period = next(iter(rows))[-7:]
    expected = {f"{team}-{period}" for team in TEAMS} | {f"untagged-{period}", f"cluster-{period}"}
    assert expected <= set(rows), rows
    assert rows[f"search-platform-{period}"][6] != "<none>"  # the policy's budget

    # The showback report.
    html_path = output / "showback.html"
    assert str(html_path.resolve()) in out
    page = html_path.read_text(encoding="utf-8")
    assert '<table class="teams">' in page
    for team in TEAMS:
        assert f"<td>{team}</td>" in page
    assert "<script" not in page
    # Cost centers carry all spend: their totals (first period) are the cluster total.
    table = page.split('<table class="cost-centers">', 1)[1].split("</table>", 1)[0]
    rows = [row for row in table.split("<tr")[1:] if 'class="totalCost"' in row]
    totals = [re.findall(r'<td class="totalCost">([0-9,.]+) USD</td>', row)[0] for row in rows]
    *centers, cluster = [Decimal(total.replace(",", "")) for total in totals]
    assert rows[-1].startswith(' class="total"') and len(centers) > 1
    assert sum(centers) == cluster
    # The daily trend: a line per team, from the CostReports' status.daily; two days of
    # figures are not enough to compare weeks, and the page says so.
    trend = page.split('<table class="trend">', 1)[1].split("</table>", 1)[0]
    for team in TEAMS:
        assert f'data-team="{team}"' in trend
    assert trend.count('class="trend-line"') == len(TEAMS) + 1 + ('data-team="untagged"' in trend)
    assert "Week over week: not enough history." in page

    assert_cleaned_up(out)


def as_in_a_terminal() -> None:
    # Ctrl-C as a terminal delivers it. A test run started in the background by a
    # shell (`cmd &`) has SIGINT ignored, the demo would inherit that, Python would
    # then raise no KeyboardInterrupt, and the demo would finish with 0.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@needs_prometheus
def test_ctrl_c_stops_everything_and_removes_the_work_directory(tmp_path: Path) -> None:
    process = subprocess.Popen(
        demo_command("--days", "1", "--teams", "2", "--output", str(tmp_path)),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=as_in_a_terminal,
    )  # fmt: skip
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(
        target=lambda: [lines.put(x) for x in process.stdout or ()], daemon=True
    ).start()
    seen = []
    try:
        deadline = time.monotonic() + 90
        while not any(line.startswith("== Workloads") for line in seen):
            assert time.monotonic() < deadline, "".join(seen)
            try:
                seen.append(lines.get(timeout=1))
            except queue.Empty:
                assert process.poll() is None, "".join(seen) + (
                    process.stderr.read() if process.stderr else ""
                )
        process.send_signal(signal.SIGINT)
        code = process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert code == 130
    stderr = process.stderr.read() if process.stderr else ""
    assert "interrupted" in stderr
    assert_cleaned_up("".join(seen))


def test_a_missing_prometheus_is_explained(tmp_path: Path) -> None:
    result = subprocess.run(
        demo_command("--prometheus", str(tmp_path / "no-prometheus")),
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 2
    assert "apt-get install prometheus" in result.stderr
    assert "Traceback" not in result.stderr
