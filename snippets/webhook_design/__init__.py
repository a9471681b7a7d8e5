"""Webhook design: one module per pattern."""
