"""Money: the cost model (Decimal), report queries, CostReport bodies.

The cost model, one idea per module: `usage` (records in), `period`, `pricing`,
`money` (Decimal context, exact splits, display), `showback` (`compute_costs`:
rows per team, untagged and cluster) and `focus` (FOCUS rows). Then
`cost_queries` (the PromQL that measures usage) and `cost_reports` (CostReport
objects).
"""
