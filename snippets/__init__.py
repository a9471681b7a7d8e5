"""The code the guide shows: one module per pattern, each run by its test under tests/."""
