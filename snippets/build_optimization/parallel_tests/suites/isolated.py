"""The fix: a file per worker, a port from the kernel, a setup once per run
(copied as test_one.py and test_two.py, like `shared`)."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from snippets.build_optimization.parallel_tests import worker_path

SHARED = Path(os.environ["SUITE_SHARED"])
ME = Path(__file__).stem


# --8<-- [start:tests]
REPORT = worker_path(SHARED / "report.json")  # report-gw0.json, report-gw1.json


def test_report_round_trip(rendezvous: Callable[[str], None]) -> None:
    REPORT.write_text(ME)
    rendezvous("written")
    assert REPORT.read_text() == ME


def test_server_port(
    take_turns: Callable[[str], AbstractContextManager[None]],
) -> None:
    with take_turns("bind"):  # one worker binds while the other listens
        server = socket.create_server(("127.0.0.1", 0))  # the kernel picks
    server.close()


def test_database(database: dict[str, Any]) -> None:
    assert database["name"] == "test_db"


# --8<-- [end:tests]
