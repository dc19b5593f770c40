"""The one module that talks to Prometheus (or Thanos Query, Mimir, Cortex).

It honours DESIGN.md's Prometheus options: a base URL that may carry a path
prefix, a bearer token file (read at each call, so a rotated token is picked
up), extra headers such as `X-Scope-OrgID`, and a CA bundle. Every failure is
raised as `PrometheusError` with a message that says what went wrong and what
to check, so callers can set a `Stale` condition instead of writing zeros.
"""

from __future__ import annotations

import datetime
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import requests
from prometheus_api_client import PrometheusConnect
from prometheus_api_client.exceptions import PrometheusApiClientException
from urllib3.util.retry import Retry

from finops_operator.domain.config import PrometheusConfig
from finops_operator.errors import PrometheusError

_T = TypeVar("_T")


def _timestamp(at: datetime.datetime | float) -> str:
    seconds = at.timestamp() if isinstance(at, datetime.datetime) else at
    return f"{seconds:.3f}"


@dataclass(frozen=True)
class QueryRecord:
    """One query sent: what, how long it took as seen by the client, and Prometheus'
    own statistics (`stats=all`: timings in seconds, samples loaded) when asked for."""

    kind: str  # "instant" or "range"
    expr: str
    seconds: float
    stats: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class QueryAnswer:
    """The `data` of a successful answer: result type and result."""

    result_type: str
    result: list[dict[str, Any]]
    stats: dict[str, Any]


class PrometheusClient:
    def __init__(self, config: PrometheusConfig, timeout: float = 60.0) -> None:
        self.config = config
        self.timeout = timeout
        self.queries = 0
        # Every query sent through `evaluate`/`evaluate_range`, in order.
        self.log: list[QueryRecord] = []
        # Ask Prometheus for its own statistics of each query (`stats=all`).
        self.request_stats = False
        session = requests.Session()
        self._session = session
        if config.ca_file:
            session.verify = config.ca_file
        self._connection = PrometheusConnect(
            url=config.url,
            headers=dict(config.headers),
            retry=Retry(total=2, backoff_factor=0.2, status_forcelist=(502, 503, 504)),
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
        except requests.exceptions.RequestException as err:
            raise PrometheusError(
                f"cannot reach Prometheus at {self.config.url} ({type(err).__name__}); "
                "check prometheus.url and that Prometheus is up"
            ) from None
        except PrometheusApiClientException as err:
            raise PrometheusError(
                f"Prometheus at {self.config.url} refused the {what}: {err}"
            ) from None
        except (ValueError, KeyError) as err:
            raise PrometheusError(
                f"Prometheus at {self.config.url} gave an unreadable answer to the {what}: {err}"
            ) from None
        return result

    def query(self, promql: str, at: datetime.datetime) -> list[dict[str, Any]]:
        """An instant query: the vector's samples as Prometheus' JSON gives them."""
        return self._call(
            "instant query", self._connection.custom_query, promql, params={"time": _timestamp(at)}
        )

    def query_range(
        self,
        promql: str,
        start: datetime.datetime,
        end: datetime.datetime,
        step: datetime.timedelta,
    ) -> list[dict[str, Any]]:
        """A range query: each series with its [timestamp, value] pairs."""
        return self._call(
            "range query",
            self._connection.custom_query_range,
            promql,
            start_time=start,
            end_time=end,
            step=f"{int(step.total_seconds())}s",
        )

    # ------------------------------------------------------------ raw API with statistics

    def _api(self, what: str, path: str, params: dict[str, str]) -> QueryAnswer:
        response = self._session.request(
            method="POST",
            url=f"{self.config.url}/api/v1/{path}",
            data=params,
            headers=self._connection.headers,
            timeout=self.timeout,
            # Explicit: requests lets $REQUESTS_CA_BUNDLE override the session's CA otherwise.
            verify=self._session.verify,
        )
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.status_code != 200 or not isinstance(body, dict):
            detail = body.get("error") if isinstance(body, dict) else None
            raise PrometheusApiClientException(
                f"HTTP {response.status_code} {response.reason}"
                + (f": {detail}" if detail else f" ({response.text[:300]!r})")
            )
        if body.get("status") != "success":
            raise PrometheusApiClientException(str(body.get("error") or body)[:500])
        data = body["data"]
        result = data["result"]
        if not isinstance(result, list):  # a scalar or a string
            result = [{"metric": {}, "value": result}]
        return QueryAnswer(str(data["resultType"]), result, dict(data.get("stats") or {}))

    def _logged(self, kind: str, expr: str, path: str, params: dict[str, str]) -> QueryAnswer:
        if self.request_stats:
            params = {**params, "stats": "all"}
        began = time.perf_counter()
        answer: QueryAnswer = self._call(f"{kind} query", self._api, f"{kind} query", path, params)
        self.log.append(QueryRecord(kind, expr, time.perf_counter() - began, answer.stats))
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
