"""Benchmarks: each prints a table and appends it, with its command, to BENCHMARKS.md."""
