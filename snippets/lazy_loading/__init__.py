"""Lazy loading: one module per pattern."""
