"""Every error the operator raises on purpose, in one hierarchy.

Catch `FinOpsError` for "anything finops-operator refused or could not reach";
catch a branch for one kind of trouble. Input errors become exit code 2 on the
command line, a 400 answer at admission, or a `Ready=False` condition; external
errors are retried or shown as stale, never as a traceback.

    FinOpsError
    ├── InputError (also ValueError): input that cannot be used, named in the message
    │   ├── ConfigError            the configuration file or its values
    │   ├── CostPolicyError        a CostPolicy that cannot become rules (`problems`)
    │   └── MalformedReviewError   a body that is not an AdmissionReview we can answer
    └── ExternalError (also RuntimeError): a system the operator talks to failed
        ├── KubeError              the Kubernetes API server (`status`, 0 when unreachable)
        │   └── NotSentError       a write held back: this replica no longer leads
        └── PrometheusError        Prometheus, Thanos or Mimir
            ├── NoUsageDataError   it answered, with none of the operator's series
            └── UnusableAnswerError it answered, with nothing a cost can be computed from

The development tools (finops_devtools) root their own errors here too:
`finops_devtools.errors.DevToolsError` is a FinOpsError.
"""

from __future__ import annotations

from dataclasses import dataclass


class FinOpsError(Exception):
    """The root: every error finops-operator raises on purpose."""


class InputError(FinOpsError, ValueError):
    """Input that cannot be used; the message names what and why."""


class ExternalError(FinOpsError, RuntimeError):
    """A system the operator talks to failed or could not be reached."""


class ConfigError(InputError):
    """The configuration cannot be used; the message says which key and why."""


@dataclass(frozen=True)
class Problem:
    """One reason a CostPolicy is refused: the field, and what is wrong with it."""

    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


class CostPolicyError(InputError):
    """A CostPolicy that cannot become rules; `problems` name each field and what is wrong."""

    def __init__(self, problems: list[Problem] | tuple[Problem, ...], source: str = "") -> None:
        self.problems = tuple(problems)
        self.source = source
        lines = "\n".join(str(problem) for problem in self.problems)
        super().__init__(f"{source}: {lines}" if source else lines)

    @property
    def field(self) -> str:
        """The first offending field, e.g. `spec.selector.team`."""
        return self.problems[0].field if self.problems else ""

    def one_line(self) -> str:
        """All problems on one line, for a status condition message or an Event."""
        return "; ".join(str(problem) for problem in self.problems)


class MalformedReviewError(InputError):
    """The body is not an AdmissionReview we can answer; the message says what is wrong."""

    def __init__(self, message: str, uid: str | None = None) -> None:
        super().__init__(message)
        self.uid = uid


class UnreadableInputError(InputError):
    """An input `lint` will not read: not a regular file, or larger than its cap."""


class KubeError(ExternalError):
    """The API server refused or could not be reached; `status` is its HTTP code, 0 if none."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class NotSentError(KubeError):
    """A write that was never sent: by the time its turn came, this replica no longer
    held the Lease. Status 0 (retryable); unlike other status-0 errors it surely did
    not land."""

    def __init__(self, message: str) -> None:
        super().__init__(0, message)


class PrometheusError(ExternalError):
    """Prometheus could not answer; the message names the URL and the cause."""


class NoUsageDataError(PrometheusError):
    """Prometheus answered, but holds none of the operator's series for the period."""


class UnusableAnswerError(PrometheusError):
    """Prometheus answered, but not with figures a cost can be computed from: `data: null`,
    a malformed result, NaN or Inf samples. The message names the URL, the query and why."""
