"""finops-operator: cost visibility and control for GPU and AI workloads on Kubernetes."""

__version__ = "0.1.0"
