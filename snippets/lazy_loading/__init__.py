"""Lazy loading: one module per pattern."""

__all__: list[str] = []
