"""The application's settings: read from the environment and a ``.env`` file."""

from __future__ import annotations

import logging
from typing import Any

from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["Settings"]

log = logging.getLogger("orders.settings")


# --8<-- [start:settings]
class Settings(BaseSettings):
    """Read once per process: environment variables ``ORDERS_*``, then ``.env``."""

    model_config = SettingsConfigDict(env_prefix="ORDERS_", env_file=".env")

    app_name: str = "orders"
    database_url: str = "postgresql://127.0.0.1/orders"
    pool_size: int = 10

    def model_post_init(self, context: Any, /) -> None:
        # The side effect that shows up twice: a log line, a metric, a
        # connection check, a secret fetched from a vault...
        log.info("settings loaded")


# --8<-- [end:settings]
