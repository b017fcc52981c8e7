"""Benchmark scripts: `python -m benchmarks.<name> --json OUT.json` print a table and write JSON."""
