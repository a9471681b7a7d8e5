"""Code splitting: one module per pattern."""
