"""A simulated GPU cluster: the metrics it would leave in Prometheus, and the truth.

Used by tests, benchmarks and the demo (docs/simulator.md). One idea per module:

- `world`: the plain data of a cluster (`Scenario`, `Node`, `Pod`, `Utilization`,
  `TokenStream`, `Anomaly`), GPU models and resources, and time helpers;
- `generation`: `generate_scenario(ScenarioParams(...))`, a seeded cluster;
- `openmetrics`: `write_openmetrics` and `write_openmetrics_chunks`, the series the
  real exporters would have produced, for `promtool` to backfill;
- `ground_truth`: `ground_truth(scenario, start, end)`, the exact usage and cost of
  each team, computed independently of the operator's cost model.

Import from those modules; this package re-exports nothing.
"""
