"""Code splitting: one module per pattern."""

__all__: list[str] = []
