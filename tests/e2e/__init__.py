"""End-to-end tests against a real control plane (scripts/e2e-cluster.sh)."""
