"""Tests for snippets/code_splitting, one module per pattern."""
