"""`finops-operator run` as a real process: see finops_operator.devcluster.operator_runner."""

from __future__ import annotations

from finops_operator.devcluster import free_port
from finops_operator.devcluster.operator_runner import OperatorError, OperatorProcess

__all__ = ["OperatorError", "OperatorProcess", "free_port"]
