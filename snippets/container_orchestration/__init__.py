"""Container orchestration: one module per pattern."""
