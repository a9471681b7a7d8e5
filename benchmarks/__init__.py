"""Benchmarks, not tests: ``make bench`` and ``make bench-offline``."""
