"""Graceful shutdown: on SIGTERM, stop intake, drain in-flight work, exit in time.

Kubernetes and ``docker stop`` ask a container to stop with SIGTERM and kill
what is left with SIGKILL when the grace period ends. A process that does
nothing special dies at the SIGTERM with its requests half done. This module
shows the sequence that loses nothing in between, in three shapes:

* `serve_threaded`: a `DrainingHTTPServer` (a `ThreadingHTTPServer`) stops
  accepting, waits for its handler threads up to a deadline, and exits.
* `serve_asyncio`: the same on asyncio; requests still running at the deadline
  are cancelled and answered ``503`` instead of being cut off.
* `run_pool`: a `WorkerPool` stops taking jobs, finishes the ones it holds and
  hands back the ones it cannot finish in time.

The module is also the demo service the tests run as a real process::

    python -m snippets.container_orchestration.graceful_shutdown serve --help
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import queue
import select
import signal
import socket
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType
from typing import Any, Protocol

Log = Callable[[str], None]
Work = Callable[[str], str]
AsyncWork = Callable[[str], Awaitable[str]]

_print_lock = threading.Lock()


def say(line: str) -> None:
    """Write one log line to stdout at once, even from several threads."""
    with _print_lock:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


# --8<-- [start:signals]
def stop_requests(*signals: signal.Signals) -> queue.SimpleQueue[int]:
    """Turn each of `signals` into an item on a queue that the main thread reads.

    The handler only puts the signal number on a `queue.SimpleQueue`, whose
    ``put`` is reentrant: it cannot deadlock even if the signal interrupts the
    main thread inside the same queue. All shutdown work happens outside the
    handler, in ordinary code. Call this from the main thread.
    """
    received: queue.SimpleQueue[int] = queue.SimpleQueue()

    def handler(signum: int, frame: FrameType | None) -> None:
        received.put(signum)

    for sig in signals:
        signal.signal(sig, handler)
    return received


# --8<-- [end:signals]


# --8<-- [start:in-flight]
class InFlight:
    """A count of work in progress that you can wait on, with a deadline."""

    def __init__(self) -> None:
        self._count = 0
        self._changed = threading.Condition()

    def enter(self) -> None:
        """Count one more piece of work."""
        with self._changed:
            self._count += 1

    def leave(self) -> None:
        """Count one piece of work as finished (or abandoned)."""
        with self._changed:
            self._count -= 1
            self._changed.notify_all()

    @property
    def count(self) -> int:
        """How much work is in progress now."""
        with self._changed:
            return self._count

    def wait_idle(self, timeout: float) -> bool:
        """Wait until nothing is in flight; False if `timeout` seconds pass first."""
        with self._changed:
            return self._changed.wait_for(lambda: self._count == 0, max(timeout, 0.0))


# --8<-- [end:in-flight]


# --8<-- [start:server]
class DrainingHTTPServer(ThreadingHTTPServer):
    """A `ThreadingHTTPServer` that counts the requests its threads are serving.

    Args:
        address: ``(host, port)`` to listen on; port 0 picks a free port.
        handler: The request handler class, usually `WorkHandler`.
        work: What a request does; called with the request path.
    """

    daemon_threads = True  # a request abandoned at the deadline must not block exit
    block_on_close = False  # `stop_and_drain` waits, with a deadline, instead

    def __init__(
        self,
        address: tuple[str, int],
        handler: type[BaseHTTPRequestHandler],
        work: Work,
    ) -> None:
        super().__init__(address, handler)
        self.in_flight = InFlight()
        self.work = work

    def process_request(self, request: Any, client_address: Any) -> None:
        self.in_flight.enter()  # counted in the accept loop, before its thread runs
        try:
            super().process_request(request, client_address)
        except BaseException:
            self.in_flight.leave()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.in_flight.leave()


# --8<-- [end:server]


class WorkHandler(BaseHTTPRequestHandler):
    """``GET /<anything>``: run the server's ``work`` for the path, return its text.

    A failing dependency (any `OSError` from ``work``) becomes a ``502``.
    """

    server: DrainingHTTPServer

    def do_GET(self) -> None:
        try:
            status, body = 200, self.server.work(self.path)
        except OSError as error:
            status, body = 502, f"dependency failed: {error}\n"
        self.reply(status, body)

    def reply(self, status: int, body: str) -> None:
        """Send a plain-text response with a Content-Length."""
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        """Keep the per-request access log off stderr; send it to your logger."""


# --8<-- [start:naive]
def serve_naive(server: DrainingHTTPServer, log: Log = say) -> int:
    """The broken version, kept for the tests: no SIGTERM handler at all.

    SIGTERM's default action ends the process at once, with every request that
    is in flight; as PID 1 in a container the same signal is ignored instead.
    """
    log(f"listening on port {server.server_port}, pid {os.getpid()}")
    server.serve_forever()
    return 0


# --8<-- [end:naive]


# --8<-- [start:threaded]
def serve_threaded(server: DrainingHTTPServer, grace: float, log: Log = say) -> int:
    """Serve until SIGTERM or SIGINT, then stop intake and drain within `grace`.

    Call it from the main thread, which only waits for the signal: the accept
    loop and the requests run in other threads.

    Returns:
        The exit status: 0 when every accepted request finished, 1 when the
        deadline came first.
    """
    stop = stop_requests(signal.SIGTERM, signal.SIGINT)  # before anyone can connect
    accept = threading.Thread(target=server.serve_forever, args=(0.05,), name="accept")
    accept.start()
    log(f"listening on port {server.server_port}, pid {os.getpid()}")
    signum = stop.get()  # the main thread sleeps here until a signal arrives
    return stop_and_drain(server, grace, signal.Signals(signum).name, log)


def stop_and_drain(
    server: DrainingHTTPServer, grace: float, reason: str, log: Log = say
) -> int:
    """Stop accepting, wait up to `grace` seconds for requests; return the status."""
    deadline = time.monotonic() + grace
    server.shutdown()  # 1. stop intake: the accept loop returns ...
    server.socket.close()  # ... and new connections are refused
    log(f"{reason}: stopped accepting, draining {server.in_flight.count} in flight")
    drained = server.in_flight.wait_idle(deadline - time.monotonic())  # 2. drain
    if drained:
        log("drained, exiting")
        return 0
    log(f"deadline: abandoning {server.in_flight.count} in flight")
    return 1  # 3. exit; abandoned daemon threads end with the process


# --8<-- [end:threaded]


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


if sys.version_info >= (3, 13):
    _QUEUE_CLOSED: tuple[type[Exception], ...] = (queue.ShutDown,)
else:
    _QUEUE_CLOSED: tuple[type[Exception], ...] = ()


class WorkerPool:
    """Worker threads that run jobs, holding at most ``workers + prefetch`` at once.

    Job ids must be unique among the jobs the pool holds.

    Args:
        work: Runs one job; an exception hands the job back.
        ack: Called with a job once it is done.
        nack: Called with a job that is handed back for someone else to run.
        workers: Number of worker threads.
        prefetch: Jobs held in the buffer beyond the ones running.
    """

    def __init__(
        self,
        work: Callable[[str], None],
        ack: Callable[[str], None],
        nack: Callable[[str], None],
        workers: int,
        prefetch: int,
    ) -> None:
        self._work, self._ack, self._nack = work, ack, nack
        self._slots = threading.BoundedSemaphore(workers + prefetch)
        self._jobs: queue.Queue[str | None] = queue.Queue()  # None: stop (3.11/3.12)
        self._lock = threading.Lock()
        self._held: set[str] = set()  # submitted, neither acked nor handed back
        self._handed_back: set[str] = set()
        self._closed = False  # set by `stop`: `submit` hands jobs back from then on
        self.in_flight = InFlight()
        self._threads = [
            threading.Thread(target=self._worker, name=f"worker-{n}", daemon=True)
            for n in range(workers)
        ]

    def start(self) -> None:
        """Start the worker threads."""
        for thread in self._threads:
            thread.start()

    def reserve(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds for room for one job (backpressure)."""
        return self._slots.acquire(timeout=timeout)

    def unreserve(self) -> None:
        """Give back a reservation that no job used."""
        self._slots.release()

    def submit(self, job: str) -> bool:
        """Queue a job. Call only after a successful `reserve`.

        Returns:
            False when `stop` has begun: the job is handed back at once, so a
            job fetched late is never left neither acked nor handed back.
        """
        with self._lock:
            if not self._closed:
                self._held.add(job)
                self.in_flight.enter()
                self._jobs.put(job)
                return True
        self._nack(job)
        self._slots.release()
        return False

    def hand_back(self, job: str) -> None:
        """Hand back a job that the pool will not run."""
        self._nack(job)

    # --8<-- [start:worker]
    def _worker(self) -> None:
        while True:
            try:
                job = self._jobs.get()
            except _QUEUE_CLOSED:  # 3.13+: the queue is shut down and empty
                return
            if job is None:  # 3.11/3.12: one stop marker per worker
                return
            with self._lock:
                skip = job in self._handed_back  # the deadline passed before it ran
            failed = False
            if not skip:
                try:
                    self._work(job)
                except Exception:
                    failed = True
            with self._lock:
                self._held.discard(job)
                late = job in self._handed_back  # handed back while it ran
            if not late:
                (self._nack if failed else self._ack)(job)
            self._slots.release()
            self.in_flight.leave()

    # --8<-- [end:worker]

    # --8<-- [start:stop]
    def stop(self, grace: float) -> list[str]:
        """Let the workers finish what the pool holds, for up to `grace` seconds.

        Returns:
            The jobs handed back (``nack``) because the deadline came first,
            whether they were running or had not started.
        """
        with self._lock:  # no `submit` can queue a job after the stop markers
            self._closed = True
            if sys.version_info >= (3, 13):
                self._jobs.shutdown()  # get() raises ShutDown once it is empty
            else:
                for _ in self._threads:
                    self._jobs.put(None)  # after every queued job: they run first
        if self.in_flight.wait_idle(grace):
            return []
        with self._lock:
            unfinished = sorted(self._held)
            self._handed_back.update(unfinished)  # a late finish is not acked
        for job in unfinished:
            self._nack(job)
        return unfinished

    # --8<-- [end:stop]


class JobSource(Protocol):
    """Where a pool's jobs come from: a broker consumer, or `LineSource`."""

    def fetch(self, timeout: float) -> str | None:
        """The next job, or None when none arrived within `timeout` seconds."""

    def unread(self) -> list[str]:
        """Jobs received from the broker but never fetched (to hand back)."""


class LineSource:
    """Job ids, one per line, read from a file descriptor.

    The demo's stand-in for a broker consumer: `fetch` waits at most `timeout`
    seconds, so the intake loop notices a stop request quickly.
    """

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._buffer = b""
        self._eof = False

    def fetch(self, timeout: float) -> str | None:
        """Return the next job id, or None if none arrived within `timeout`."""
        while b"\n" not in self._buffer:
            if self._eof:
                return None
            ready, _, _ = select.select([self._fd], [], [], timeout)
            if not ready:
                return None
            chunk = os.read(self._fd, 4096)
            self._eof = not chunk
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line.decode().strip() or None

    def unread(self) -> list[str]:
        """Ids read from the descriptor but never fetched (hand them back too)."""
        lines = self._buffer.decode().split()
        self._buffer = b""
        return lines


# --8<-- [start:run-pool]
def run_pool(pool: WorkerPool, source: JobSource, grace: float, log: Log = say) -> int:
    """Take jobs from `source` until SIGTERM or SIGINT, then drain the pool.

    Returns:
        0 when every job taken was finished, 1 when some were handed back.
    """
    stop = stop_requests(signal.SIGTERM, signal.SIGINT)
    stopping = threading.Event()

    late: list[str] = []  # fetched after the pool stopped: handed back

    def intake() -> None:
        while not stopping.is_set():
            if not pool.reserve(timeout=0.1):  # the pool is full: take nothing
                continue
            job = source.fetch(timeout=0.1)
            if job is None:
                pool.unreserve()
            elif pool.submit(job):  # once fetched it is ours, even if stopping now
                log(f"took {job}")
            else:
                late.append(job)

    pool.start()
    taker = threading.Thread(target=intake, name="intake")
    log(f"taking jobs, pid {os.getpid()}")
    taker.start()
    signum = stop.get()
    deadline = time.monotonic() + grace
    stopping.set()  # 1. stop intake; a fetch in progress may still return a job
    taker.join(timeout=max(deadline - time.monotonic(), 0))
    held = pool.in_flight.count
    log(f"{signal.Signals(signum).name}: stopped taking jobs, draining {held} held")
    handed_back = pool.stop(deadline - time.monotonic())  # 2. drain, or hand back
    taker.join()  # still fetching at the deadline: `submit` now hands its job back
    handed_back += late
    for job in source.unread():  # read from the source but never taken
        pool.hand_back(job)
        handed_back.append(job)
    if not handed_back:
        log("drained, exiting")
        return 0
    log(f"deadline: handed back {len(handed_back)}")
    return 1


# --8<-- [end:run-pool]


# --------------------------------------------------------------------------- #
# The demo service: work is a call to a dependency over TCP (one line out, one
# line back), so a test can hold requests in flight for as long as it likes.
# --------------------------------------------------------------------------- #


# --8<-- [start:dependency-timeout]
def dependency_timeout(grace: float) -> float:
    """How long one dependency call may take, given the drain budget `grace`.

    A request that started just before SIGTERM must end by itself before the
    drain deadline: its calls get the budget less a second for answering (half
    the budget when that is under two seconds).
    """
    return max(grace - 1.0, grace / 2)


# --8<-- [end:dependency-timeout]


def call_dependency(address: tuple[str, int], item: str, timeout: float) -> str:
    """Send `item` to the dependency at `address`; return its one-line answer."""
    with socket.create_connection(address, timeout=timeout) as conn:
        conn.sendall(item.encode() + b"\n")
        with conn.makefile("rb") as answers:
            answer = answers.readline()
    if not answer.endswith(b"\n"):
        raise ConnectionError("the dependency closed the connection early")
    return answer.decode()


async def call_dependency_async(
    address: tuple[str, int], item: str, timeout: float
) -> str:
    """The asyncio version of `call_dependency`."""
    async with asyncio.timeout(timeout):
        reader, writer = await asyncio.open_connection(*address)
        try:
            writer.write(item.encode() + b"\n")
            await writer.drain()
            answer = await reader.readline()
        finally:
            writer.close()
    if not answer.endswith(b"\n"):
        raise ConnectionError("the dependency closed the connection early")
    return answer.decode()


def _address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host, int(port)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m snippets.container_orchestration.graceful_shutdown",
        description="A demo service that shuts down gracefully on SIGTERM.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="an HTTP service")
    serve.add_argument("--variant", choices=["threaded", "asyncio", "naive"])
    serve.add_argument("--host", default="0.0.0.0")
    serve.add_argument("--port", type=int, default=8080)
    pool = commands.add_parser("pool", help="a worker pool fed job ids on stdin")
    pool.add_argument("--workers", type=int, default=4)
    pool.add_argument("--prefetch", type=int, default=4)
    for command in (serve, pool):
        command.add_argument(
            "--grace",
            type=float,
            default=float(os.environ.get("SHUTDOWN_GRACE_SECONDS", "20")),
            help="seconds to drain after SIGTERM (default: $SHUTDOWN_GRACE_SECONDS "
            "or 20); keep it below the orchestrator's grace period",
        )
        command.add_argument(
            "--dependency",
            type=_address,
            metavar="HOST:PORT",
            help="call this TCP dependency for every request or job",
        )
        command.add_argument(
            "--dependency-timeout",
            type=float,
            metavar="SECONDS",
            help="how long one dependency call may take (default: derived from "
            "--grace by dependency_timeout())",
        )
    serve.set_defaults(variant="threaded")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the demo service; return its exit status."""
    args = _parser().parse_args(argv)
    dependency: tuple[str, int] | None = args.dependency
    timeout: float = args.dependency_timeout or dependency_timeout(args.grace)
    if args.command == "pool":

        def job(item: str) -> None:
            if dependency is not None:
                call_dependency(dependency, item, timeout)

        workers = WorkerPool(
            job,
            ack=lambda item: say(f"ack {item}"),
            nack=lambda item: say(f"nack {item}"),
            workers=args.workers,
            prefetch=args.prefetch,
        )
        return run_pool(workers, LineSource(sys.stdin.fileno()), args.grace)
    if args.variant == "asyncio":

        async def answer(path: str) -> str:
            if dependency is None:
                return "ok\n"
            return await call_dependency_async(dependency, path, timeout)

        return asyncio.run(serve_asyncio(answer, args.host, args.port, args.grace))

    def work(path: str) -> str:
        if dependency is None:
            return "ok\n"
        return call_dependency(dependency, path, timeout)

    server = DrainingHTTPServer((args.host, args.port), WorkHandler, work)
    if args.variant == "naive":
        return serve_naive(server)
    return serve_threaded(server, args.grace)


if __name__ == "__main__":
    sys.exit(main())
