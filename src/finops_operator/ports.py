"""Ports: the Protocols controllers depend on; adapters and test fakes implement them."""
