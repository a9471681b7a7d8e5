"""Tests for snippets/build_optimization, one module per pattern."""
