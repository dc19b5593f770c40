"""Prices applied to usage: the cost of each training run."""

from __future__ import annotations

from finops_operator.domain.costs.pricing import training_run_costs
from finops_operator.domain.costs.usage import JobUsage
from tests.domain.costs.prices import A100, H100, D, pricing


def test_cost_per_training_run_sums_every_attempt_of_the_job() -> None:
    jobs = [
        JobUsage("llm", "pretrain-7", "llm-core", H100, D(3)),
        JobUsage("llm", "pretrain-7", "llm-core", H100, D(1)),  # the retry
        JobUsage("llm", "eval-2", "llm-core", A100, D("0.5")),
        JobUsage("vision", "finetune-1", "vision", A100, D(10)),
    ]
    rows = training_run_costs(jobs, pricing())
    assert [(row.job, row.gpu_hours, row.cost) for row in rows] == [
        ("finetune-1", D(10), D(20)),
        ("pretrain-7", D(4), D(16)),
        ("eval-2", D("0.5"), D(1)),
    ]
