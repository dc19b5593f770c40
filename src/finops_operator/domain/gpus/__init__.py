"""GPU allocation: what a pod holds of a GPU (MIG, time-slicing) and the cluster inventory."""
