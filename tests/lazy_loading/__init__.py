"""Tests for snippets/lazy_loading, one module per pattern."""
