"""Adapters that move data in and out: the Kubernetes API, Prometheus, the webhook server,
metrics, certificates, the config file.
"""
