"""When to retry: the schedule, jitter, ``Retry-After`` and status classes."""

from __future__ import annotations

import email.utils
import enum
import random
import re
from dataclasses import dataclass
from datetime import UTC
from typing import Final

__all__ = [
    "STANDARD_WEBHOOKS_SCHEDULE",
    "Outcome",
    "RetryPolicy",
    "classify",
    "parse_retry_after",
]


# --8<-- [start:policy]
# Standard Webhooks' example schedule: immediately, then these waits before
# retries 1 to 9 (5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 14 h, 20 h, 24 h).
STANDARD_WEBHOOKS_SCHEDULE: Final = (
    5.0, 300.0, 1_800.0, 7_200.0, 18_000.0, 36_000.0, 50_400.0, 72_000.0, 86_400.0,
)  # fmt: skip


@dataclass(frozen=True)
class RetryPolicy:
    """When to retry a failed delivery, and when to stop.

    Attempt 1 is immediate. After failed attempt ``n`` the next one waits a
    random time between 0 and ``schedule[n - 1]`` seconds ("full jitter").
    After ``len(schedule) + 1`` attempts the delivery has failed for good.

    Attributes:
        schedule: The ceiling of each wait in seconds, one per retry.
        jitter: Draw each wait below its ceiling. ``False`` waits the full
            ceiling: the synchronized schedule that causes retry herds.
        max_retry_after: The longest ``Retry-After`` honoured, in seconds.
        permanent: Statuses that fail a delivery at once. Empty by default:
            like Standard Webhooks, every non-2xx but 410 is retried.
    """

    schedule: tuple[float, ...] = STANDARD_WEBHOOKS_SCHEDULE
    jitter: bool = True
    max_retry_after: float = 86_400.0
    permanent: frozenset[int] = frozenset()

    @classmethod
    def exponential(
        cls,
        base: float,
        cap: float,
        retries: int,
        *,
        jitter: bool = True,
        permanent: frozenset[int] = frozenset(),
    ) -> RetryPolicy:
        """Ceilings ``base``, ``2 * base``, ``4 * base`` ... capped at ``cap``."""
        ceilings = tuple(min(cap, base * 2**n) for n in range(retries))
        return cls(ceilings, jitter, permanent=permanent)

    @property
    def max_attempts(self) -> int:
        """Attempts in all: the immediate one plus one per schedule entry."""
        return len(self.schedule) + 1

    # --8<-- [end:policy]

    # --8<-- [start:delay]
    def delay(
        self, attempt: int, rng: random.Random, retry_after: float | None = None
    ) -> float | None:
        """Seconds to wait after failed attempt ``attempt`` (1-based).

        Returns ``None`` when no attempt is left. A ``Retry-After`` value,
        capped at ``max_retry_after``, is a floor: the jittered wait is added
        on top, so deliveries that got the same value do not return together.
        """
        if attempt < 1:
            raise ValueError(f"attempts count from 1, not {attempt}")
        if attempt >= self.max_attempts:
            return None
        ceiling = self.schedule[attempt - 1]
        wait = rng.uniform(0.0, ceiling) if self.jitter else ceiling
        if retry_after is not None:
            wait += min(max(retry_after, 0.0), self.max_retry_after)
        return wait

    # --8<-- [end:delay]


# --8<-- [start:retry-after]
_DELAY_SECONDS = re.compile(r"[0-9]+")


def parse_retry_after(value: str | None, now: float) -> float | None:
    """The wait in seconds that a ``Retry-After`` header asks for, or ``None``.

    RFC 9110 allows two forms: delay-seconds (``120``) and an HTTP-date
    (``Fri, 31 Dec 1999 23:59:59 GMT``). A date in the past means "now" (0).
    A value in neither form is ignored, as if the header were absent.

    Args:
        value: The header value, or ``None`` when the response had none.
        now: The current wall-clock time in seconds since the epoch.
    """
    if value is None:
        return None
    value = value.strip()
    if _DELAY_SECONDS.fullmatch(value):
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # "-0000": the date is in UTC
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - now)


# --8<-- [end:retry-after]


# --8<-- [start:classify]
class Outcome(enum.Enum):
    """What one attempt means for its delivery."""

    DELIVERED = "delivered"
    RETRY = "retry"
    REJECTED = "rejected"  # a status you declared permanent
    GONE = "gone"  # 410: the receiver wants no more webhooks


def classify(status: int | None, permanent: frozenset[int] = frozenset()) -> Outcome:
    """Classify an HTTP status; ``None`` means no response (timeout, refused).

    2xx is delivered. 410 Gone disables the endpoint. A status in
    ``permanent`` fails the delivery without a retry. Everything else (3xx,
    which is never followed, every other 4xx, 5xx, and no response at all)
    is retried: a 404 or 401 is often a deploy or a rotated key away from 200.
    """
    if status is None:
        return Outcome.RETRY
    if 200 <= status < 300:
        return Outcome.DELIVERED
    if status == 410:
        return Outcome.GONE
    if status in permanent:
        return Outcome.REJECTED
    return Outcome.RETRY


# --8<-- [end:classify]
