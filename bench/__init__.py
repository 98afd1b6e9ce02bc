"""The benchmark: `python -m bench` measures the alarm path and ingest against real servers.

See docs/benchmarks.md for what each phase measures and the figures of the last runs.
"""
