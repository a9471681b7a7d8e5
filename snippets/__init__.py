"""The code the guide shows: one module per pattern, run by its test in tests/."""
