"""The pure domain: label rules, rule rendering, money. No I/O, no clock, no Kubernetes or
HTTP client.
"""
