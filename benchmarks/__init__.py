"""Benchmark scripts (run as files: `python benchmarks/NAME.py`); a package so module names stay unique."""
