"""Benchmarks: each module is a command (`python bench/NAME.py --help`).

Their figures, and the machine, are in docs/benchmarks.md.
"""
