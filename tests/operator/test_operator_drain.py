"""`finops-operator run` at SIGTERM: the servers drain as kopf begins to stop.

kopf, once stopped, waits up to 5 s for the tasks started while it ran, then cancels
them: each connection's task among them, which left a connection open with nobody to
answer it (a review written on it waited for the API server's timeout) or cut it
(EOF). So the drain runs as kopf's cleanup handler, before that; this holds it there.
The drain itself is tested in tests/adapters/test_webhook_server.py.
"""

from __future__ import annotations

import http.client
import json
import signal
import socket
import time
from pathlib import Path

from finops_devtools.devcluster.reviews import review, workload
from tests.support.kube_emulator import KubeEmulator, eventually
from tests.support.operator_process import OperatorProcess

DRAIN = 3.0  # seconds: under kopf's 5 s, so a drain begun after kopf's wait fails here


def validate(connection: http.client.HTTPSConnection) -> tuple[int, str | None, str]:
    """A review on `connection`: the status, the Connection header and the answer's uid."""
    body = json.dumps(review(workload("Deployment")))
    connection.request("POST", "/validate", body, {"Content-Type": "application/json"})
    answer = connection.getresponse()
    uid = json.loads(answer.read())["response"]["uid"]
    return answer.status, answer.getheader("Connection"), uid


def refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except ConnectionRefusedError:
        return True
    return False


def test_at_sigterm_a_kept_alive_connection_is_answered_with_close_in_the_drain(
    cluster: KubeEmulator, tmp_path: Path
) -> None:
    args = ("--webhook-drain-seconds", str(DRAIN))
    process = OperatorProcess(cluster, tmp_path, {"mode": "audit"}, extra_args=args).start()
    assert process.process is not None
    port = process.webhook_port
    connection = http.client.HTTPSConnection("127.0.0.1", port, context=process.tls, timeout=5)
    try:
        for _ in range(2):  # one connection, kept alive
            status, close, uid = validate(connection)
            assert (status, close) == (200, None) and uid
        process.process.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        while close is None:  # answered, kept alive, until the drain begins
            time.sleep(0.05)
            status, close, uid = validate(connection)
            assert status == 200 and uid
        assert close == "close"
        assert time.monotonic() - signalled < DRAIN  # as kopf began to stop
        eventually(lambda: refused(port), timeout=DRAIN + 10)  # then the port closes
        assert process.process.wait(timeout=30) == 0, process.log()
    finally:
        connection.close()
        process.stop()
