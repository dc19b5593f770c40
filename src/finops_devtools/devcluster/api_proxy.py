"""An HTTP proxy in front of a Kubernetes API, on 127.0.0.1: it records every request and
injects faults on demand.

The operator's kubeconfig names the proxy (`write_kubeconfig`); the proxy forwards
every request to its upstream (the emulator, or a real kube-apiserver with its
own CA and token), streaming the answers, watches included. It serves the scale
benchmark and the fault tests alike:

- `requests`: every request as `Recorded` (verb and resource as kube-apiserver's
  audit log names them, status, bytes sent back, when it came), recorded as it
  arrives since a watch ends only when the operator stops; `requests_to(method,
  path)` answers what `OperatorProcess` asks of an API;
- `down()` / `up()`: the listening socket closes (connections refused) and every
  open connection drops; `up()` listens again on the same port;
- `blackhole()` / `heal()`: a partition. Connections are accepted, requests are
  read and never forwarded nor answered; `heal()` drops them unanswered (so
  nothing sent during the partition lands late) and forwarding resumes;
- `answer(status, method=..., path=..., times=...)`: the next matching requests
  get that status (a Kubernetes `Status` body) without reaching the upstream;
- `cut_watches()`: every open watch stream ends abruptly;
- `upstream = other_url`: an API restarted empty, behind the same address.

`ApiProxy.balancer(ports)` is the same proxy as a round-robin TCP balancer, the
Service in front of several replicas that a local process lacks (the admission
benchmark's two operator replicas behind one webhook URL): each connection goes to
the next upstream in turn and its bytes pass untouched, TLS included, so the
replicas' own certificate answers; `connections` counts them per upstream.
`down()`/`up()` apply; recording and the HTTP faults do not (nothing is parsed).

It runs its own event loop in a thread, so that a synchronous test or benchmark
drives it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import ssl
import threading
import time
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from finops_devtools.devcluster import free_port

# Not forwarded either way: they describe one connection, not the request.
HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "transfer-encoding", "content-length", "host", "upgrade"}
)
REASONS = {409: "Conflict", 429: "TooManyRequests", 500: "InternalError", 503: "ServiceUnavailable"}

_PATH = re.compile(
    r"^/(?:api/v1|apis/(?P<group>[^/]+)/[^/]+)(?:/namespaces/(?P<ns>[^/]+))?"
    r"(?:/(?P<plural>[^/]+))?(?:/(?P<name>[^/]+))?(?:/(?P<sub>[^/]+))?$"
)


def classify(method: str, path: str, query: dict[str, str]) -> tuple[str, str]:
    """(verb, resource) of an API request, as kube-apiserver's audit log names them."""
    match = _PATH.match(path)
    if match is None:
        return method.lower(), path
    group, ns, plural, name, sub = match.group("group", "ns", "plural", "name", "sub")
    if plural is None and ns is not None:  # /api/v1/namespaces/NAME
        plural, name = "namespaces", ns
    elif plural is None:  # /api/v1, /apis/apps/v1: discovery
        return "get", f"discovery {path}"
    resource = f"{plural}.{group}" if group else str(plural)
    if sub:
        resource += f"/{sub}"
    if method == "GET":
        verb = "watch" if query.get("watch") in ("true", "1") else "get" if name else "list"
    else:
        verb = {"POST": "create", "PATCH": "patch", "PUT": "update", "DELETE": "delete"}.get(
            method, method.lower()
        )
    return verb, resource


@dataclass
class Recorded:
    """One request through the proxy; status and bytes are filled in as the answer goes."""

    verb: str
    resource: str
    status: int
    bytes: int
    at: float  # time.monotonic() when it arrived
    method: str = ""
    path: str = ""


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


class ApiProxy:
    def __init__(
        self,
        upstream: str,
        *,
        ca: ssl.SSLContext | None = None,
        token: str | None = None,
        port: int | None = None,
    ) -> None:
        self.upstream = upstream.rstrip("/")
        self.ca = ca
        self.token = token  # sent upstream instead of the operator's own credentials
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.requests: list[Recorded] = []
        self.rules: list[Rule] = []
        self.injected: list[tuple[int, str, str]] = []  # status, method, path answered here
        self._loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self._streams: set[asyncio.Task[Any]] = set()
        self._handlers: set[asyncio.Task[Any]] = set()
        self._healed: asyncio.Event | None = None
        self.balanced: list[int] = []  # upstream ports on 127.0.0.1, when a TCP balancer
        self.connections: list[int] = []  # connections handed to each of them
        self._tcp_server: asyncio.Server | None = None

    @classmethod
    def balancer(cls, ports: Sequence[int], *, port: int | None = None) -> ApiProxy:
        """A round-robin TCP balancer over these ports of 127.0.0.1 (not yet started)."""
        if not ports:
            raise ValueError("a balancer needs at least one upstream port")
        proxy = cls(f"tcp://127.0.0.1:{ports[0]}", port=port)
        proxy.balanced = list(ports)
        proxy.connections = [0] * len(ports)
        return proxy

    # ------------------------------------------------------------ the API, as the operator sees it

    def write_kubeconfig(self, path: Path) -> Path:
        """A kubeconfig to the proxy, written at `path`."""
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "proxy", "cluster": {"server": self.url}}],
            "users": [{"name": "operator", "user": {"token": "operator-token"}}],
            "contexts": [{"name": "proxy", "context": {"cluster": "proxy", "user": "operator"}}],
            "current-context": "proxy",
        }
        path.write_text(json.dumps(config))
        return path

    def requests_to(self, method: str, path: str) -> list[Recorded]:
        """The requests with this method and path that reached the proxy so far."""
        return [r for r in list(self.requests) if r.method == method and r.path == path]

    # ------------------------------------------------------------ control, from the caller

    def start(self) -> ApiProxy:
        self.thread.start()
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
            self.thread.join(timeout=10)

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
        count: int = self._run(self._cut())
        return count

    def _run(self, coroutine: Coroutine[Any, Any, Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout=30)

    # ------------------------------------------------------------ inside the proxy's loop

    async def _start_session(self) -> None:
        self._healed = asyncio.Event()
        self._healed.set()
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, ssl=self.ca if self.ca else False),
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=10),
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
        if self._runner is not None or self._tcp_server is not None:
            return
        if self.balanced:
            self._tcp_server = await asyncio.start_server(
                self._pipe, "127.0.0.1", self.port, reuse_address=True
            )
            return
        app = web.Application(client_max_size=256 * 1024**2)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=0.5)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", self.port, reuse_address=True)
        await site.start()
        self._runner = runner

    async def _unlisten(self) -> None:
        runner, self._runner = self._runner, None
        server, self._tcp_server = self._tcp_server, None
        if server is not None:
            server.close()
        for task in list(self._handlers):
            task.cancel()
        if runner is not None:
            await runner.cleanup()
        if server is not None:
            await server.wait_closed()

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
        assert task is not None and self._healed is not None
        self._handlers.add(task)
        verb, resource = classify(request.method, request.path, dict(request.query))
        record = Recorded(verb, resource, 0, 0, time.monotonic(), request.method, request.path)
        self.requests.append(record)
        try:
            body = await request.read()
            if not self._healed.is_set():
                task.held = True  # type: ignore[attr-defined]
                await asyncio.Event().wait()  # until healed: then cancelled, never answered
            rule = self._rule_for(request.method, request.path)
            if rule is not None:
                self.injected.append((rule.status, request.method, request.path))
                record.status = rule.status
                return web.json_response(
                    {
                        "kind": "Status",
                        "apiVersion": "v1",
                        "status": "Failure",
                        "message": f"injected by the proxy: {rule.status}",
                        "reason": REASONS.get(rule.status, "InternalError"),
                        "code": rule.status,
                    },
                    status=rule.status,
                    headers={"Retry-After": "1"} if rule.status == 429 else None,
                )
            return await self._forward(request, body, task, record)
        finally:
            self._handlers.discard(task)
            self._streams.discard(task)

    async def _forward(
        self, request: web.Request, body: bytes, task: asyncio.Task[Any], record: Recorded
    ) -> web.StreamResponse:
        assert self._session is not None
        dropped = HOP_BY_HOP | {"authorization"} if self.token else HOP_BY_HOP
        headers = {k: v for k, v in request.headers.items() if k.lower() not in dropped}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        if request.query.get("watch") in ("true", "1"):
            self._streams.add(task)
        try:
            upstream = await self._session.request(
                request.method,
                self.upstream + request.path_qs,
                headers=headers,
                data=body or None,
                allow_redirects=False,
                # as it came: aiohttp would call an unnamed body application/octet-stream
                skip_auto_headers=() if "Content-Type" in request.headers else ("Content-Type",),
            )
        except aiohttp.ClientError:
            record.status = 502
            return web.Response(status=502, text="upstream unreachable")
        async with upstream:
            record.status = upstream.status
            response = web.StreamResponse(
                status=upstream.status,
                headers={k: v for k, v in upstream.headers.items() if k.lower() not in HOP_BY_HOP},
            )
            await response.prepare(request)
            # the operator closed a watch it no longer wants, or the upstream went away
            with contextlib.suppress(aiohttp.ClientError, ConnectionResetError):
                async for chunk in upstream.content.iter_any():
                    record.bytes += len(chunk)
                    await response.write(chunk)
                await response.write_eof()
            return response

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """One connection of the balancer, to the next upstream in turn, both ways."""
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        index = sum(self.connections) % len(self.balanced)
        self.connections[index] += 1
        streams = [writer]
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.balanced[index])
            streams.append(up_writer)
            await asyncio.gather(_copy(reader, up_writer), _copy(up_reader, writer))
        except OSError:
            pass  # refused upstream, or a side went away: the client sees its connection close
        except asyncio.CancelledError:
            # down() or stop(): asyncio's streams would log a cancelled connection task
            # as an error, so it ends here as a closed connection.
            pass
        finally:
            self._handlers.discard(task)
            for stream in streams:
                stream.close()


async def _copy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Bytes from one side to the other until it ends, then half-close the other."""
    with contextlib.suppress(OSError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
