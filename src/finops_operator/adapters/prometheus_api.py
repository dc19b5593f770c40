"""The one module that talks to Prometheus (or Thanos Query, Mimir, Cortex).

It honours DESIGN.md's Prometheus options: a base URL that may carry a path
prefix, a bearer token file (read at each call, so a rotated token is picked
up), extra headers such as `X-Scope-OrgID`, and a CA bundle. Every failure is
raised as `PrometheusError` with a message that says what went wrong and what
to check, so callers can set a `Stale` condition instead of writing zeros.

Every answer is checked against what the HTTP API promises (`parse_answer`): an
HTTP error, a body that is not JSON (an HTML page from a proxy), `data: null`, a
`result` that is not a list, a `resultType` other than the query's, a series
without samples or with samples that are not [time, number] pairs, all raise
`PrometheusError` naming the URL and the cause. NaN and Inf samples pass (they
are numbers in Prometheus); `usage_reader` refuses them. The answer's `warnings`
(a partial answer from Thanos or Mimir, or a PromQL warning) are kept in the
query's `QueryRecord`, so the reader can tell a partial answer from a whole one.

Each answer is bounded: the headers must come within `timeout` (each try), and
the whole body within `timeout` after them, however it is cut up (a server that
drips a byte every few seconds no longer resets a per-read timeout), and a body
over `max_answer_bytes` (32 MiB by default; JSON decoding takes about ten times
its size in memory, and the Deployment's limit is 512 MiB) is refused before it
is decoded.
"""

from __future__ import annotations

import datetime
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import requests
import urllib3
from prometheus_api_client import PrometheusConnect
from urllib3.util.retry import Retry

from finops_operator.domain.config import PrometheusConfig
from finops_operator.errors import PrometheusError, UnusableAnswerError

_T = TypeVar("_T")


def _timestamp(at: datetime.datetime | float) -> str:
    seconds = at.timestamp() if isinstance(at, datetime.datetime) else at
    return f"{seconds:.3f}"


@dataclass(frozen=True)
class QueryRecord:
    """One query sent: what, how long it took as seen by the client, and Prometheus'
    own statistics (`stats=all`: timings in seconds, samples loaded) when asked for,
    and the `warnings` of the answer (a partial answer from Thanos or Mimir says so there)."""

    kind: str  # "instant" or "range"
    expr: str
    seconds: float
    stats: dict[str, Any] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class QueryAnswer:
    """The `data` of a successful answer: result type and result, and the answer's warnings."""

    result_type: str
    result: list[dict[str, Any]]
    stats: dict[str, Any]
    warnings: tuple[str, ...] = ()


class AnswerError(Exception):
    """An answer that is not what Prometheus' HTTP API promises; the message says how."""


class RefusedError(Exception):
    """An HTTP error, or `"status": "error"`: Prometheus (or a proxy) refused the query."""


# The largest answer read: the operator's queries are sums by a few labels (kilobytes);
# 32 MiB decoded is ~350 MB of Python objects.
MAX_ANSWER_BYTES = 32 * 1024 * 1024
_CHUNK = 64 * 1024


class DeadlineError(requests.exceptions.Timeout):
    """The whole query took longer than the client's timeout (not one read: all of them)."""


def read_bounded(response: requests.Response, deadline: float, limit: int) -> bytes:
    """The body of a streamed `response`, read before `deadline` (time.monotonic()) and
    no larger than `limit` bytes; DeadlineError or AnswerError otherwise."""
    declared = response.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > limit:
        raise AnswerError(f"the answer is {int(declared):,} bytes, over the limit of {limit:,}")
    raw = response.raw
    chunks: list[bytes] = []
    size = 0
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise DeadlineError(f"the answer was still coming after the deadline ({size:,} bytes)")
        connection = getattr(raw, "connection", None)
        sock = getattr(connection, "sock", None)
        if sock is not None:
            sock.settimeout(remaining)  # one read may not outlast the whole query's deadline
        try:
            chunk = raw.read1(_CHUNK, decode_content=True)
        except (TimeoutError, urllib3.exceptions.TimeoutError):
            raise DeadlineError(
                f"the answer was still coming at the deadline ({size:,} bytes)"
            ) from None
        except (OSError, urllib3.exceptions.HTTPError) as err:
            raise requests.exceptions.ConnectionError(f"the answer broke off: {err}") from None
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > limit:
            raise AnswerError(f"the answer is over the limit of {limit:,} bytes")
        chunks.append(chunk)


# The result types each kind of query may answer with (a scalar reads as one sample).
RESULT_TYPES = {"instant": ("vector", "scalar"), "range": ("matrix",)}


def _snippet(text: str, limit: int = 200) -> str:
    """The start of a body on one line, for a message (an HTML error page, say)."""
    flat = " ".join(text.split())
    return flat[:limit] + ("..." if len(flat) > limit else "")


def _sample(point: Any, where: str) -> None:
    if not isinstance(point, list | tuple) or len(point) != 2:
        raise AnswerError(f"{where} is not a [time, value] pair: {_snippet(repr(point), 80)}")
    moment, value = point
    if isinstance(moment, bool) or not isinstance(moment, int | float | str):
        raise AnswerError(f"{where} has no time: {_snippet(repr(point), 80)}")
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise AnswerError(f"{where} has no value: {_snippet(repr(point), 80)}")
    try:
        float(moment)
        float(value)  # "NaN" and "+Inf" read; deciding what they mean is the caller's part
    except (ValueError, OverflowError):
        raise AnswerError(f"{where} is not a number: {_snippet(repr(point), 80)}") from None


def _series(series: Any, index: int, result_type: str) -> dict[str, Any]:
    where = f"series {index}"
    if not isinstance(series, dict):
        raise AnswerError(f"{where} is not an object: {_snippet(repr(series), 80)}")
    metric = series.get("metric", {})
    if not isinstance(metric, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in metric.items()
    ):
        raise AnswerError(f"{where} has labels that are not strings: {_snippet(repr(metric), 80)}")
    key = "values" if result_type == "matrix" else "value"
    if key not in series:
        if "histogram" in series or "histograms" in series:
            raise AnswerError(f"{where} holds native histograms where numbers were expected")
        raise AnswerError(f"{where} has no {key!r}")
    points = series[key] if result_type == "matrix" else [series[key]]
    if not isinstance(points, list):
        raise AnswerError(f"{where}: {key!r} is not a list")
    for number, point in enumerate(points):
        _sample(point, f"{where}, sample {number}")
    return series


def parse_answer(
    kind: str,
    status: int,
    reason: str,
    text: str,
    body: Any,
    headers: Mapping[str, str] | None = None,
) -> QueryAnswer:
    """The answer to a query of `kind` ("instant" or "range"), checked against the HTTP API's
    promises. An HTTP error or `"status": "error"` raises RefusedError; anything else that
    is not a well-formed answer raises AnswerError saying what came back instead."""
    headers = headers or {}
    if status != 200:
        detail = ""
        if isinstance(body, dict) and body.get("error"):
            detail = f": {body.get('errorType') or 'error'}: {_snippet(str(body['error']), 300)}"
        elif text.strip():
            detail = f" ({_snippet(text)})"
        retry_after = headers.get("Retry-After") if status == 429 else None
        if retry_after:
            detail += f" (retry after {_snippet(retry_after, 40)} s)"
        raise RefusedError(f"HTTP {status} {reason}{detail}")
    if not isinstance(body, dict):
        what = "not JSON" if body is None else f"JSON {type(body).__name__}, not an object"
        raise AnswerError(f"HTTP 200 with a body that is {what} ({_snippet(text)})")
    if body.get("status") != "success":
        if body.get("status") == "error":
            raise RefusedError(_snippet(f"{body.get('errorType')}: {body.get('error')}", 500))
        raise AnswerError(f"the status is {_snippet(json_text(body.get('status')), 40)}")
    data = body.get("data")
    if not isinstance(data, dict):
        raise AnswerError(f"the answer's data is {_snippet(json_text(data), 40)}, not an object")
    result_type = data.get("resultType")
    if result_type not in RESULT_TYPES[kind]:
        raise AnswerError(
            f"the resultType is {_snippet(json_text(result_type), 40)}, "
            f"not {' or '.join(RESULT_TYPES[kind])}"
        )
    result = data.get("result")
    if result_type == "scalar":
        _sample(result, "the scalar")
        result = [{"metric": {}, "value": result}]
    if not isinstance(result, list):
        raise AnswerError(f"the result is {_snippet(json_text(result), 40)}, not a list")
    series = [_series(item, index, result_type) for index, item in enumerate(result)]
    warnings = body.get("warnings") or []
    if not isinstance(warnings, list):
        warnings = [warnings]
    stats = data.get("stats")
    return QueryAnswer(
        result_type,
        series,
        dict(stats) if isinstance(stats, dict) else {},
        tuple(_snippet(str(warning), 500) for warning in warnings),
    )


def json_text(value: Any) -> str:
    try:
        return json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)


class PrometheusClient:
    def __init__(
        self,
        config: PrometheusConfig,
        timeout: float = 60.0,
        keep_log: int | None = None,
        max_answer_bytes: int = MAX_ANSWER_BYTES,
    ) -> None:
        self.config = config
        self.timeout = timeout
        self.max_answer_bytes = max_answer_bytes
        self.queries = 0
        # Every query sent through `evaluate`/`evaluate_range`, in order (the last
        # `keep_log` only, when given: a client that queries for ever stays bounded).
        self.log: list[QueryRecord] = []
        self.keep_log = keep_log
        # Ask Prometheus for its own statistics of each query (`stats=all`).
        self.request_stats = False
        session = requests.Session()
        self._session = session
        if config.ca_file:
            session.verify = config.ca_file
        self._connection = PrometheusConnect(
            url=config.url,
            headers=dict(config.headers),
            # Queries are reads: a 502/503/504 or a refused connection is tried twice more,
            # POST included; a query that timed out is not sent again (it would time out
            # again), and a Retry-After is not slept on here (a 429 asking for 300 s would
            # hold the refresh that long): the caller's backoff waits instead. After the
            # last try the answer itself is judged, and named.
            retry=Retry(
                total=2,
                read=False,
                backoff_factor=0.2,
                status_forcelist=(502, 503, 504),
                allowed_methods=None,
                raise_on_status=False,
                respect_retry_after_header=False,
            ),
            session=session,
            timeout=int(timeout),
            method="POST",
        )

    def _headers(self) -> dict[str, str]:
        headers = dict(self.config.headers)
        if self.config.bearer_token_file:
            try:
                token = Path(self.config.bearer_token_file).read_text().strip()
            except OSError as err:
                raise PrometheusError(
                    f"cannot read prometheus.bearerTokenFile {self.config.bearer_token_file}: "
                    f"{err.strerror}"
                ) from None
            headers["Authorization"] = f"Bearer {token}"
        return headers

    def _call(self, what: str, fn: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
        self._connection.headers = self._headers()
        self.queries += 1
        try:
            result: _T = fn(*args, **kwargs)
        except requests.exceptions.SSLError as err:
            raise PrometheusError(
                f"TLS to {self.config.url} failed ({err}); check prometheus.caFile"
            ) from None
        except requests.exceptions.Timeout as err:
            raise PrometheusError(
                f"Prometheus at {self.config.url} did not answer the {what} within "
                f"{self.timeout:g} s ({type(err).__name__})"
            ) from None
        except requests.exceptions.RequestException as err:
            raise PrometheusError(
                f"cannot reach Prometheus at {self.config.url} ({type(err).__name__}); "
                "check prometheus.url and that Prometheus is up"
            ) from None
        except RefusedError as err:
            raise PrometheusError(
                f"Prometheus at {self.config.url} refused the {what}: {err}"
            ) from None
        except AnswerError as err:
            raise UnusableAnswerError(
                f"Prometheus at {self.config.url} gave an unusable answer to the {what}: {err}"
            ) from None
        except (ValueError, KeyError, TypeError) as err:
            raise PrometheusError(
                f"Prometheus at {self.config.url} gave an unreadable answer to the {what}: {err}"
            ) from None
        return result

    def query(self, promql: str, at: datetime.datetime) -> list[dict[str, Any]]:
        """An instant query: the vector's samples as Prometheus' JSON gives them."""
        return self.evaluate(promql, at)

    def query_range(
        self,
        promql: str,
        start: datetime.datetime,
        end: datetime.datetime,
        step: datetime.timedelta,
    ) -> list[dict[str, Any]]:
        """A range query: each series with its [timestamp, value] pairs."""
        return self.evaluate_range(promql, start, end, step.total_seconds())

    # ------------------------------------------------------------ raw API with statistics

    def _api(self, kind: str, path: str, params: dict[str, str]) -> QueryAnswer:
        response = self._session.request(
            method="POST",
            url=f"{self.config.url}/api/v1/{path}",
            data=params,
            headers=self._connection.headers,
            timeout=self.timeout,
            # Explicit: requests lets $REQUESTS_CA_BUNDLE override the session's CA otherwise.
            verify=self._session.verify,
            stream=True,
        )
        # From the headers on: a 502/503 tried again (Retry) does not eat the body's time.
        deadline = time.monotonic() + self.timeout
        try:
            body_bytes = read_bounded(response, deadline, self.max_answer_bytes)
        finally:
            response.close()
        text = body_bytes.decode(response.encoding or "utf-8", errors="replace")
        try:
            body = json.loads(text)
        except (ValueError, RecursionError):
            body = None
        reason = str(response.reason or "")
        return parse_answer(kind, response.status_code, reason, text, body, response.headers)

    def _logged(self, kind: str, expr: str, path: str, params: dict[str, str]) -> QueryAnswer:
        if self.request_stats:
            params = {**params, "stats": "all"}
        began = time.perf_counter()
        answer: QueryAnswer = self._call(f"{kind} query", self._api, kind, path, params)
        seconds = time.perf_counter() - began
        self.log.append(QueryRecord(kind, expr, seconds, answer.stats, answer.warnings))
        if self.keep_log is not None and len(self.log) > self.keep_log:
            del self.log[: len(self.log) - self.keep_log]
        return answer

    def evaluate(self, promql: str, at: datetime.datetime | float) -> list[dict[str, Any]]:
        """An instant query at `at` (a datetime or Unix seconds, kept to the millisecond)."""
        params = {"query": promql, "time": _timestamp(at)}
        return self._logged("instant", promql, "query", params).result

    def evaluate_range(
        self,
        promql: str,
        start: datetime.datetime | float,
        end: datetime.datetime | float,
        step_seconds: float,
    ) -> list[dict[str, Any]]:
        """A range query with millisecond bounds: each series with its [time, value] pairs."""
        params = {
            "query": promql,
            "start": _timestamp(start),
            "end": _timestamp(end),
            "step": f"{step_seconds:.3f}",
        }
        return self._logged("range", promql, "query_range", params).result
