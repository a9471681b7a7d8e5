"""The waits of ``retryImport`` (retry.js), to size a retry budget in advance.

``retryImport`` waits ``min(cap, base * 2 ** (attempt - 1))`` times a jitter
factor between 0.5 and 1 after each failed attempt but the last. The same
formula here answers "how long may a click wait before the error shows?" when
you choose ``attempts`` and ``base_ms``; the tests check it against the waits
the JavaScript reported in Chromium.
"""

from __future__ import annotations

import math

__all__ = ["backoff_delays", "longest_wait_ms"]


# --8<-- [start:budget]
def backoff_delays(
    attempts: int = 4, base_ms: int = 200, cap_ms: int = 5000, jitter: float = 1.0
) -> list[int]:
    """The waits between ``attempts`` attempts; ``jitter`` is random() in JS."""
    if attempts < 1 or not 0.0 <= jitter <= 1.0:
        raise ValueError("attempts must be >= 1 and jitter within [0, 1]")
    return [
        # Math.round in JavaScript: halves round up, not to even.
        math.floor(min(cap_ms, base_ms * 2 ** (attempt - 1)) * (0.5 + jitter / 2) + 0.5)
        for attempt in range(1, attempts)
    ]


def longest_wait_ms(attempts: int = 4, base_ms: int = 200, cap_ms: int = 5000) -> int:
    """The most a caller waits in backoff before the last error (no jitter)."""
    return sum(backoff_delays(attempts, base_ms, cap_ms, jitter=1.0))


# --8<-- [end:budget]
