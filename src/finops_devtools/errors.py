"""The development tools' errors, rooted in the operator's `FinOpsError`.

    FinOpsError (finops_operator.errors)
    └── DevToolsError
        ├── DemoError
        │   └── MissingPrerequisiteError   prometheus or promtool is not installed
        ├── OperatorError                  the operator process did not start or serve
        ├── PrometheusRunnerError          the local Prometheus did not start or answer
        └── JsonPatchError (also ValueError)  the emulated API server refused a JSON Patch

`WaitTimeoutError` stays an AssertionError (tests read it as a failed expectation)
and is a DevToolsError as well.
"""

from __future__ import annotations

from finops_operator.errors import FinOpsError


class DevToolsError(FinOpsError):
    """The root of the development tools' errors."""


class DemoError(DevToolsError, RuntimeError):
    """The demo cannot go on; the message says which step failed."""


class MissingPrerequisiteError(DemoError):
    """A program the demo needs (prometheus, promtool) is not installed."""


class OperatorError(DevToolsError, RuntimeError):
    """The operator process exited early or never served."""


class PrometheusRunnerError(DevToolsError, RuntimeError):
    """The local Prometheus did not start, backfill or answer."""


class JsonPatchError(DevToolsError, ValueError):
    """A JSON Patch the emulated API server cannot apply (a real one answers 422)."""


class WaitTimeoutError(DevToolsError, AssertionError):
    """A condition did not become true in time."""
