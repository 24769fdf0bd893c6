"""Benchmarks: each compares against a reference in the same run and ends with one summary line."""
