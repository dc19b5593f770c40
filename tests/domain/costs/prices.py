"""GPU models, a month and prices the cost model's tests share."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from finops_operator.domain.config import PricingConfig
from finops_operator.domain.costs.period import Period

H100 = "NVIDIA-H100-80GB-HBM3"
A100 = "NVIDIA-A100-SXM4-80GB"
NOVEMBER = Period.month(2026, 11)
D = Decimal


def pricing(**extra: Any) -> PricingConfig:
    return PricingConfig.model_validate(
        {
            "gpuHourly": {"default": "2", H100: "4"},
            "tokensPer1k": {"default": "0.002", "gpt-4o": "0.01"},
            "sharedMonthly": "300",
            **extra,
        }
    )
