"""Tests for snippets/message_queues, one module per pattern."""
