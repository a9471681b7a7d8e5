"""A claimed job, as the worker sees it."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import psycopg
    from psycopg.rows import TupleRow

    PgConnection = psycopg.Connection[TupleRow]


__all__ = ["Job"]

log = logging.getLogger(__name__)


# --8<-- [start:job]
@dataclass(frozen=True)
class Job:
    """A claimed job and the lease token that proves who holds it.

    Attributes:
        id: The job's primary key.
        payload: What the job asks for.
        attempts: How many times the job has been claimed, this claim included.
        token: The lease token. Completing or renewing the job must present it.
    """

    id: int
    payload: str
    attempts: int
    token: str


# --8<-- [end:job]
