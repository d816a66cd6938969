"""Benchmarks: each measures the project's way and a named baseline side by side in one run."""
