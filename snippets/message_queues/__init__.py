"""Message queues: one module per pattern."""
