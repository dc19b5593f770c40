"""The operator's own Prometheus metrics: admission traffic and label violations.

One registry per process, so tests and the operator never share global state.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from finops_operator import conventions


class OperatorMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.admission_requests = Counter(
            conventions.METRIC_ADMISSION_REQUESTS.removesuffix("_total"),
            "AdmissionReviews answered, by webhook, workload kind and outcome.",
            ("webhook", "kind", "outcome"),
            registry=self.registry,
        )
        self.admission_duration = Histogram(
            conventions.METRIC_ADMISSION_DURATION,
            "Time to answer an AdmissionReview, from request body to response.",
            ("webhook",),
            buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 1.0),
            registry=self.registry,
        )
        self.violations = Gauge(
            conventions.METRIC_VIOLATIONS,
            "GPU workloads currently missing or misusing cost labels, by namespace and kind.",
            ("namespace", "kind"),
            registry=self.registry,
        )
