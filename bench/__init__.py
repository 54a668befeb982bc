"""Benchmarks of agentbus against raw baselines measured in the same run.

`python -m bench.run [--turns N]` (or `agentbus bench`) starts real services,
measures the system under test and the raw client library doing the least
comparable work, and prints both with their ratio.
"""
