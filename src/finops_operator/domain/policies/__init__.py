"""Label policies: the label check (label_check), the one verdict on a workload (verdict),
and its translations for admission (admission) and the background audit (audit)."""
