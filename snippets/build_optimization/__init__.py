"""Build optimization: one module per pattern."""
