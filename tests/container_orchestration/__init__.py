"""Tests for snippets/container_orchestration, one module per pattern."""
