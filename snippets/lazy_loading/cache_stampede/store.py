"""The backing store of the examples: one product row in PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, cast

import psycopg

__all__ = ["Loader", "product_loader", "update_price"]

Loader = Callable[[], tuple[str, int]]
"""Reads the backing store; returns the serialized value and its version."""


# --8<-- [start:store]
def product_loader(conninfo: str, product_id: int) -> Loader:
    """A `Loader` that reads one product row from PostgreSQL.

    Each call opens its own connection to keep the example short; share a
    bounded pool in a real service.
    """

    def load() -> tuple[str, int]:
        with psycopg.connect(conninfo, connect_timeout=5) as conn:
            row = conn.execute(
                "SELECT name, price_cents, version FROM products WHERE id = %s",
                (product_id,),
            ).fetchone()
        if row is None:
            raise LookupError(f"no product {product_id}")
        name, price_cents, version = row
        return json.dumps({"name": name, "price_cents": price_cents}), version

    return load


def update_price(conn: psycopg.Connection[Any], product_id: int, cents: int) -> int:
    """Change a price and return the row's new version (one more than before)."""
    row = conn.execute(
        "UPDATE products SET price_cents = %s, version = version + 1"
        " WHERE id = %s RETURNING version",
        (cents, product_id),
    ).fetchone()
    if row is None:
        raise LookupError(f"no product {product_id}")
    return cast(int, row[0])


# --8<-- [end:store]
