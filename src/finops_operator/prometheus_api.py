"""The one module that talks to Prometheus (or Thanos Query, Mimir, Cortex).

It honours DESIGN.md's Prometheus options: a base URL that may carry a path
prefix, a bearer token file (read at each call, so a rotated token is picked
up), extra headers such as `X-Scope-OrgID`, and a CA bundle. Every failure is
raised as `PrometheusError` with a message that says what went wrong and what
to check, so callers can set a `Stale` condition instead of writing zeros.
"""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

import requests
from prometheus_api_client import PrometheusConnect
from prometheus_api_client.exceptions import PrometheusApiClientException
from urllib3.util.retry import Retry

from finops_operator.config import PrometheusConfig


class PrometheusError(RuntimeError):
    """Prometheus could not answer; the message names the URL and the cause."""


def _timestamp(at: datetime.datetime) -> str:
    return f"{at.timestamp():.3f}"


class PrometheusClient:
    def __init__(self, config: PrometheusConfig, timeout: float = 60.0) -> None:
        self.config = config
        self.timeout = timeout
        self.queries = 0
        session = requests.Session()
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

    def _call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> list[dict[str, Any]]:
        self._connection.headers = self._headers()
        self.queries += 1
        try:
            result: list[dict[str, Any]] = fn(*args, **kwargs)
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
