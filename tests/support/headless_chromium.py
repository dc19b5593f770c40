"""Headless Chromium for the tests: open a local page as a browser lays it out, and ask it.

The showback HTML is for people, so its test opens it in a real browser (Debian's
`chromium`, installed by scripts/bootstrap.sh) and reads what the browser made of
it: the geometry of the SVG lines and the text of the tables, through the Chrome
DevTools protocol (JSON over a WebSocket, with aiohttp's client). No Node, no
driver. The browser runs with a fresh profile in a temporary directory, loopback
only, and is stopped (its whole process group) when the `with` block ends,
whatever happens; every call has a deadline.

    with Chromium() as browser:
        value = browser.evaluate(path, "document.title")

`needs_chromium` marks a test module that needs Chromium (`needs_tool`, tests/support/tools.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Any, Final

import aiohttp

from tests.support.tools import CHROMIUM, needs_tool

FLAGS: Final = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--remote-debugging-address=127.0.0.1",
    "--remote-debugging-port=0",
    "--window-size=1280,1000",
)
START_SECONDS: Final = 30.0
CALL_SECONDS: Final = 30.0

needs_chromium = needs_tool("chromium")


class ChromiumError(RuntimeError):
    """The browser did not start, or did not answer in time; the message says which."""


class Chromium:
    """One headless Chromium process with its own temporary profile."""

    def __init__(self) -> None:
        self.profile = Path(tempfile.mkdtemp(prefix="finops-chromium-"))
        self.log_path = self.profile / "chromium.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.port = 0
        self._ids = itertools.count(1)

    def __enter__(self) -> Chromium:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        user_data = self.profile / "profile"
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [CHROMIUM, *FLAGS, f"--user-data-dir={user_data}", "about:blank"],
                stdout=subprocess.DEVNULL,
                stderr=log,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # its own process group: stop() ends every child
            )
        # With --remote-debugging-port=0 Chromium writes the port it chose here.
        active = user_data / "DevToolsActivePort"
        deadline = time.monotonic() + START_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ChromiumError(
                    f"chromium exited with {self.process.returncode}: {self._log()}"
                )
            lines = active.read_text().split() if active.exists() else []
            if lines and lines[0].isdigit():
                self.port = int(lines[0])
                return
            time.sleep(0.1)
        raise ChromiumError(f"chromium did not open its DevTools port in {START_SECONDS}s")

    def _log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-2000:]
        except OSError:
            return ""

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            try:
                os.killpg(process.pid, signal.SIGTERM)
                process.wait(timeout=10)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
        shutil.rmtree(self.profile, ignore_errors=True)

    # ------------------------------------------------ the DevTools protocol

    def evaluate(self, page: Path, expression: str) -> Any:
        """Open `page` (a local file) in a new tab, wait until it is loaded and laid
        out, and return the value of the JavaScript `expression` (JSON-like)."""
        return asyncio.run(
            asyncio.wait_for(self._evaluate(page.resolve().as_uri(), expression), CALL_SECONDS)
        )

    async def _call(
        self, socket: aiohttp.ClientWebSocketResponse, method: str, **params: Any
    ) -> Any:
        ident = next(self._ids)
        await socket.send_json({"id": ident, "method": method, "params": params})
        while True:
            message = await socket.receive_json()
            if message.get("id") != ident:
                continue  # an event
            if "error" in message:
                raise ChromiumError(f"{method}: {message['error']}")
            return message.get("result", {})

    async def _evaluate(self, url: str, expression: str) -> Any:
        base = f"http://127.0.0.1:{self.port}"
        async with aiohttp.ClientSession() as session:
            async with session.put(f"{base}/json/new?about:blank") as answer:
                target = await answer.json(content_type=None)
            try:
                async with session.ws_connect(target["webSocketDebuggerUrl"]) as socket:
                    await self._call(socket, "Page.navigate", url=url)
                    loaded = f"document.readyState === 'complete' && location.href === {url!r}"
                    while True:
                        state = await self._call(
                            socket, "Runtime.evaluate", expression=loaded, returnByValue=True
                        )
                        if state.get("result", {}).get("value") is True:
                            break
                        await asyncio.sleep(0.05)
                    result = await self._call(
                        socket,
                        "Runtime.evaluate",
                        expression=f"JSON.stringify({expression})",
                        returnByValue=True,
                    )
            finally:
                async with session.get(f"{base}/json/close/{target['id']}") as closed:
                    await closed.read()
        if "exceptionDetails" in result:
            raise ChromiumError(f"the page's script failed: {result['exceptionDetails']}")
        return json.loads(result["result"]["value"])
