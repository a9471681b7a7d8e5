"""The hazard: a fixed file name and a fixed port (copied as test_one.py and
test_two.py; ``--dist loadfile`` runs one copy on each worker)."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

SHARED = Path(os.environ["SUITE_SHARED"])
PORT = int(os.environ["SUITE_PORT"])
ME = Path(__file__).stem


# --8<-- [start:tests]
REPORT = SHARED / "report.json"  # one path for every process


def test_report_round_trip(rendezvous: Callable[[str], None]) -> None:
    REPORT.write_text(ME)
    rendezvous("written")
    assert REPORT.read_text() == ME


def test_server_port(
    take_turns: Callable[[str], AbstractContextManager[None]],
) -> None:
    with take_turns("bind"):  # one worker binds while the other listens
        server = socket.create_server(("127.0.0.1", PORT))  # one port for all
    server.close()


def test_database(database_per_worker: dict[str, Any]) -> None:
    assert database_per_worker["name"] == "test_db"


# --8<-- [end:tests]
