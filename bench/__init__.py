"""Benchmarks: each scenario measured against a baseline in the same run (see README.md)."""
