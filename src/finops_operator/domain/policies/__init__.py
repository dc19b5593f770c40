"""Label policies: which workloads are judged, their labels, admission and audit verdicts."""
