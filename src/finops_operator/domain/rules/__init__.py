"""CostPolicy to PrometheusRule: the policy model, recording and alert rules,
reconciliation plans.
"""
