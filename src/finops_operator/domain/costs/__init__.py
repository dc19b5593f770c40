"""Money: the cost model (Decimal), report queries, CostReport bodies."""
