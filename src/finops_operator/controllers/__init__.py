"""Controllers: they decide what to write and talk to ports (finops_operator.ports), never
to adapters.
"""
