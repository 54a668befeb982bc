"""Experts: stateless actors that answer boards' and teams' requests over NATS, on any worker.

`actor` is the expert actor a worker serves; `ask` is how a board or team asks one.
"""
