"""Tests for snippets/webhook_design, one module per pattern."""
