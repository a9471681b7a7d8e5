"""The asyncio server: drain within a deadline, then answer 503 to the rest."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from http import HTTPStatus

from .signals import AsyncWork, Log, say

__all__ = [
    "respond",
    "serve_asyncio",
]


# --8<-- [start:asyncio]
async def serve_asyncio(
    work: AsyncWork, host: str, port: int, grace: float, log: Log = say
) -> int:
    """Serve HTTP on asyncio until SIGTERM or SIGINT, then drain within `grace`.

    Requests still running at the deadline are cancelled and answered ``503``
    (so a client or proxy can retry elsewhere), which takes up to one more second.
    """
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    received: list[signal.Signals] = []

    def on_signal(sig: signal.Signals) -> None:
        received.append(sig)
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal, sig)  # runs in the loop, not a handler

    tasks: set[asyncio.Task[None]] = set()

    def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = loop.create_task(respond(reader, writer, work))  # counted at once
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    server = await asyncio.start_server(accept, host, port)
    log(f"listening on port {server.sockets[0].getsockname()[1]}, pid {os.getpid()}")
    await stop.wait()
    server.close()  # 1. stop intake
    log(f"{received[0].name}: stopped accepting, draining {len(tasks)} in flight")
    pending: set[asyncio.Task[None]] = set()
    if tasks:
        _, pending = await asyncio.wait(set(tasks), timeout=grace)  # 2. drain
    if not pending:
        log("drained, exiting")
        return 0
    log(f"deadline: answering 503 to {len(pending)} in flight")
    for task in pending:
        task.cancel()  # `respond` turns the cancellation into a 503
    await asyncio.wait(pending, timeout=1.0)
    return 1


# --8<-- [end:asyncio]


# --8<-- [start:respond]
async def respond(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, work: AsyncWork
) -> None:
    """Read one HTTP request, run `work` for its path and write the response."""
    status, body = 500, "internal error\n"
    try:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=10)
            path = head.split(b" ", 2)[1].decode("latin-1")
        except (OSError, EOFError, asyncio.LimitOverrunError, IndexError):
            status, body = 400, "bad request\n"  # includes the 10 s read timeout
            return
        status, body = 200, await work(path)
    except asyncio.CancelledError:
        status, body = 503, "shutting down, retry elsewhere\n"
        raise
    except OSError as error:  # includes the dependency's timeout
        status, body = 502, f"dependency failed: {error}\n"
    finally:
        data = body.encode()
        header = (
            f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\n"
            f"Content-Type: text/plain; charset=utf-8\r\n"
            f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n"
        )
        with contextlib.suppress(OSError):  # the client may be gone already
            writer.write(header.encode() + data)
            await writer.drain()
        writer.close()


# --8<-- [end:respond]
