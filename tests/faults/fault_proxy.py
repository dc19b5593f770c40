"""A fault-injecting HTTP proxy in front of the API emulator, on 127.0.0.1.

The operator's kubeconfig names the proxy; the proxy forwards every request to
its upstream (a `KubeEmulator`), streaming the answers, watches included. The
tests then break it:

- `down()` / `up()`: the listening socket closes (connections refused) and every
  open connection drops; `up()` listens again on the same port.
- `blackhole()` / `heal()`: a partition. Connections are accepted, requests are
  read and never forwarded nor answered; `heal()` drops them unanswered (so
  nothing sent during the partition lands late) and forwarding resumes.
- `answer(status, method=..., path=..., times=...)`: the next matching requests
  get that status (a Kubernetes `Status` body) without reaching the upstream.
- `cut_watches()`: every open watch stream ends abruptly.
- `upstream = other_emulator`: an API restarted empty, behind the same address.

`ProxiedCluster` is what `OperatorProcess` needs from a cluster (a kubeconfig
and the request log), with the proxy's address in the kubeconfig.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import threading
from collections.abc import Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from finops_devtools.devcluster import free_port
from finops_devtools.devcluster.emulator import KubeEmulator

HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "transfer-encoding",
    "content-length",
    "content-encoding",
    "host",
    "upgrade",
}
REASONS = {409: "Conflict", 429: "TooManyRequests", 500: "InternalError", 503: "ServiceUnavailable"}


@dataclass
class Rule:
    status: int
    method: str | None
    path: re.Pattern[str] | None
    times: int
    hits: int = 0

    def matches(self, method: str, path: str) -> bool:
        return (self.method is None or self.method == method) and (
            self.path is None or self.path.search(path) is not None
        )


class FaultProxy:
    def __init__(self, upstream: KubeEmulator, port: int | None = None) -> None:
        self.upstream = upstream
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.rules: list[Rule] = []
        self.injected: list[tuple[int, str, str]] = []  # status, method, path answered here
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self._streams: set[asyncio.Task[Any]] = set()
        self._handlers: set[asyncio.Task[Any]] = set()
        self._healed: asyncio.Event | None = None

    # ------------------------------------------------------------ control, from the test

    def start(self) -> FaultProxy:
        self._thread.start()
        self._run(self._start_session())
        self.up()
        return self

    def stop(self) -> None:
        try:
            self.down()
            self._run(self._close_session())
            self._run(self._drain())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)

    def up(self) -> None:
        self._run(self._listen())

    def down(self) -> None:
        """Refuse connections and drop every open one."""
        self._run(self._unlisten())

    def blackhole(self) -> None:
        self._run(self._set_blackhole(True))

    def heal(self) -> None:
        self._run(self._set_blackhole(False))

    def answer(
        self, status: int, *, method: str | None = None, path: str | None = None, times: int = 1
    ) -> Rule:
        rule = Rule(status, method, re.compile(path) if path else None, times)
        self._loop.call_soon_threadsafe(self.rules.append, rule)
        return rule

    def cut_watches(self) -> int:
        """End every open watch stream; how many there were."""
        return self._run(self._cut())

    def _run(self, coroutine: Coroutine[Any, Any, Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout=30)

    # ------------------------------------------------------------ inside the proxy's loop

    async def _start_session(self) -> None:
        self._healed = asyncio.Event()
        self._healed.set()
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=5),
            auto_decompress=False,
        )

    async def _drain(self) -> None:
        """Cancel and await whatever still runs here, so nothing is left half done."""
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _close_session(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def _listen(self) -> None:
        if self._runner is not None:
            return
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=0.5)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", self.port, reuse_address=True)
        await site.start()
        self._runner = runner

    async def _unlisten(self) -> None:
        runner, self._runner = self._runner, None
        for task in list(self._handlers):
            task.cancel()
        if runner is not None:
            await runner.cleanup()

    async def _set_blackhole(self, on: bool) -> None:
        assert self._healed is not None
        if on:
            self._healed.clear()
            return
        held = [t for t in self._handlers if getattr(t, "held", False)]
        for task in held:
            task.cancel()  # dropped unanswered: a partition delivers nothing late
        self._healed.set()

    async def _cut(self) -> int:
        streams = list(self._streams)
        for task in streams:
            task.cancel()
        return len(streams)

    def _rule_for(self, method: str, path: str) -> Rule | None:
        for rule in self.rules:
            if rule.hits < rule.times and rule.matches(method, path):
                rule.hits += 1
                return rule
        return None

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        task = asyncio.current_task()
        assert task is not None and self._healed is not None and self._session is not None
        self._handlers.add(task)
        try:
            body = await request.read()
            if not self._healed.is_set():
                task.held = True  # type: ignore[attr-defined]
                await asyncio.Event().wait()  # until healed: then cancelled, never answered
            rule = self._rule_for(request.method, request.path)
            if rule is not None:
                self.injected.append((rule.status, request.method, request.path))
                return web.json_response(
                    {
                        "kind": "Status",
                        "apiVersion": "v1",
                        "status": "Failure",
                        "message": f"injected by the fault proxy: {rule.status}",
                        "reason": REASONS.get(rule.status, "InternalError"),
                        "code": rule.status,
                    },
                    status=rule.status,
                    headers={"Retry-After": "1"} if rule.status == 429 else None,
                )
            return await self._forward(request, body, task)
        finally:
            self._handlers.discard(task)
            self._streams.discard(task)

    async def _forward(
        self, request: web.Request, body: bytes, task: asyncio.Task[Any]
    ) -> web.StreamResponse:
        assert self._session is not None
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
        watching = request.query.get("watch") in ("true", "1")
        if watching:
            self._streams.add(task)
        try:
            upstream = await self._session.request(
                request.method,
                self.upstream.url + request.path_qs,
                headers=headers,
                data=body or None,
            )
        except aiohttp.ClientError:
            return web.Response(status=502, text="upstream unreachable")
        async with upstream:
            response = web.StreamResponse(
                status=upstream.status,
                headers={k: v for k, v in upstream.headers.items() if k.lower() not in HOP_BY_HOP},
            )
            await response.prepare(request)
            with contextlib.suppress(aiohttp.ClientError, ConnectionResetError):
                async for chunk in upstream.content.iter_any():
                    await response.write(chunk)
            await response.write_eof()
            return response


class ProxiedCluster:
    """An emulator as seen through a proxy: what `OperatorProcess` calls on a cluster."""

    def __init__(self, proxy: FaultProxy) -> None:
        self.proxy = proxy

    @property
    def emulator(self) -> KubeEmulator:
        return self.proxy.upstream

    def write_kubeconfig(self, path: Path) -> Path:
        path = self.emulator.write_kubeconfig(path)
        path.write_text(path.read_text().replace(self.emulator.url, self.proxy.url))
        return path

    def requests_to(self, method: str, path: str) -> list[tuple[str, str]]:
        return self.emulator.requests_to(method, path)
