"""Golden files: CostPolicies in `policies/`, the PrometheusRules they become in `rules/`."""
