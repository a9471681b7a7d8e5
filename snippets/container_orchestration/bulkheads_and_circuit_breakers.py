"""Bulkheads and circuit breakers: keep one bad dependency from sinking the rest.

A service that calls several dependencies shares its capacity between them:
worker threads, connections, an event loop's concurrency limit. Two tools keep
a slow or failing dependency inside its own compartment:

* `Bulkhead` (threads) and `AsyncBulkhead` (asyncio) cap the calls in flight
  to one dependency. A call that finds every slot taken waits a short acquire
  timeout, then fails with `BulkheadFull`, so a hanging dependency can hold
  only its own slots, never the whole pool.
* `CircuitBreaker` stops calling a dependency after consecutive failures and
  fails fast instead. After a cool-down it lets exactly one trial call through;
  that call decides whether the breaker closes again.

`http_get` and `async_http_get` are small standard-library HTTP clients with
timeouts. `DependencyServer` is a loopback HTTP server that answers, fails or
hangs on demand, for the demos and the tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import http.client
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal, TypeVar, cast
from urllib.parse import urlsplit

T = TypeVar("T")


# --8<-- [start:errors]
class DependencyError(Exception):
    """The dependency failed this call: no answer, a timeout, a 5xx or a 429.

    Attributes:
        status: The HTTP status, or None when no response arrived.
        retry_after: Seconds from the response's `Retry-After` header, if any.
    """

    def __init__(
        self, message: str, status: int | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


class RequestError(Exception):
    """The dependency refused this request (4xx other than 429): a caller bug."""


def _raise_for_status(where: str, status: int, retry_after: str | None) -> None:
    """Map an HTTP status to the exception a circuit breaker understands."""
    if status == 429 or status >= 500:
        seconds = float(retry_after) if retry_after and retry_after.isdigit() else None
        raise DependencyError(f"{where}: HTTP {status}", status, seconds)
    if status >= 400:
        raise RequestError(f"{where}: HTTP {status}")


# --8<-- [end:errors]


# --8<-- [start:http]
def http_get(url: str, timeout: float) -> bytes:
    """GET `url` and return the body.

    `timeout` bounds the connect and each socket read, not the whole call.

    Raises:
        DependencyError: No connection, a timeout, a 5xx or a 429.
        RequestError: Any other 4xx.
    """
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=timeout)
    try:
        conn.request("GET", parts.path or "/")
        response = conn.getresponse()
        body = response.read()
    except (OSError, http.client.HTTPException) as error:  # refused, reset, timeout
        raise DependencyError(f"{parts.netloc}: {type(error).__name__}") from error
    finally:
        conn.close()
    _raise_for_status(parts.netloc, response.status, response.getheader("Retry-After"))
    return body


# --8<-- [end:http]


# --8<-- [start:shared]
class DeadlineExceeded(TimeoutError):
    """The caller's deadline passed before the call finished."""


class Gateway:
    """Runs every outbound call on one shared pool of worker threads.

    This is the shape that breaks: a hanging dependency holds one worker per
    call until the socket timeout, and once it holds them all, calls to
    healthy dependencies sit in the queue until their deadline passes.
    """

    def __init__(self, workers: int, call_timeout: float) -> None:
        self.workers = workers
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="gateway")
        self._call_timeout = call_timeout

    def submit(self, dependency: str, url: str) -> Future[bytes]:
        """Start a call to `url` on the pool; return its future."""
        return self._pool.submit(http_get, url, self._call_timeout)

    def call(self, dependency: str, url: str, deadline: float) -> bytes:
        """Call `url`, waiting at most `deadline` seconds for the answer."""
        future = self.submit(dependency, url)
        try:
            return future.result(timeout=deadline)
        except TimeoutError:  # from result(): http_get wraps its own timeouts
            future.cancel()  # a queued call never runs; a running one times out
            raise DeadlineExceeded(f"{dependency}: over {deadline} s") from None

    def close(self) -> None:
        """Cancel queued calls and wait for running ones to finish."""
        self._pool.shutdown(wait=True, cancel_futures=True)


# --8<-- [end:shared]


class BulkheadFull(Exception):
    """Every slot of the dependency's bulkhead stayed taken: fail fast."""


# --8<-- [start:bulkhead]
class Bulkhead:
    """At most `max_concurrent` calls in flight to one dependency.

    Args:
        name: The dependency, for errors and metrics.
        max_concurrent: Slots: the most calls this dependency may hold.
        acquire_timeout: How long a call waits for a free slot before it
            fails with `BulkheadFull`. Keep it far below callers' deadlines.
    """

    def __init__(self, name: str, max_concurrent: int, acquire_timeout: float) -> None:
        self.name = name
        self.max_concurrent = max_concurrent
        self.rejected = 0
        self._slots = threading.BoundedSemaphore(max_concurrent)
        self._acquire_timeout = acquire_timeout
        self._count_lock = threading.Lock()

    def acquire(self) -> None:
        """Take a slot, or raise `BulkheadFull` after the acquire timeout."""
        if not self._slots.acquire(timeout=self._acquire_timeout):
            with self._count_lock:
                self.rejected += 1
            raise BulkheadFull(f"{self.name}: {self.max_concurrent} calls in flight")

    def release(self) -> None:
        """Give a slot back: exactly once per successful `acquire`."""
        self._slots.release()  # BoundedSemaphore raises on a double release

    @contextlib.contextmanager
    def slot(self) -> Iterator[None]:
        """Hold a slot for the duration of a `with` block."""
        self.acquire()
        try:
            yield
        finally:
            self.release()


# --8<-- [end:bulkhead]


# --8<-- [start:gateway]
class BulkheadGateway(Gateway):
    """The same shared pool, with one bulkhead per dependency.

    The caller's thread takes the slot before the call enters the pool, and
    the slot comes back when the call ends or is cancelled. A rejected call
    never occupies a worker. If the bulkheads add up to the pool size, an
    admitted call never waits for a worker either.
    """

    def __init__(
        self, workers: int, call_timeout: float, bulkheads: Mapping[str, Bulkhead]
    ) -> None:
        super().__init__(workers, call_timeout)
        self.bulkheads = dict(bulkheads)

    def submit(self, dependency: str, url: str) -> Future[bytes]:
        """Take a slot of `dependency`'s bulkhead, then start the call."""
        bulkhead = self.bulkheads[dependency]  # every dependency needs one
        bulkhead.acquire()  # raises BulkheadFull after acquire_timeout
        try:
            future = super().submit(dependency, url)
        except BaseException:
            bulkhead.release()
            raise
        future.add_done_callback(lambda _: bulkhead.release())
        return future


# --8<-- [end:gateway]


class State(enum.Enum):
    """The three states of a circuit breaker."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half-open"


class CircuitOpenError(Exception):
    """The breaker is open, or its one trial call is in flight: fail fast."""


# A deadline miss counts too: behind a bulkhead a call never waits for a
# worker, so missing the deadline means the dependency was slow.
DEPENDENCY_FAILURES: tuple[type[BaseException], ...] = (DependencyError, TimeoutError)


# --8<-- [start:breaker]
class CircuitBreaker:
    """Closed, Open after consecutive failures, Half-Open after a cool-down.

    In Half-Open one trial call goes through and every other caller fails
    fast; the trial's outcome closes the breaker or opens it again. A failure
    with `retry_after` (a 429 or 503 with `Retry-After`) opens it at once, for
    at least that long. The lock guards the state, never a call.

    Args:
        name: The dependency, for errors and events.
        failure_threshold: Consecutive failures that open the breaker.
        reset_timeout: Seconds to stay open before the trial call.
        failure_types: What counts as the dependency failing. Other
            exceptions (a bulkhead rejection, a cancelled caller) count
            neither as a failure nor as a success.
        clock: Monotonic seconds; inject a manual clock in tests.
        on_change: Called as `on_change(name, old, new)` after each change,
            outside the lock.
    """

    def __init__(
        self,
        name: str,
        *,
        failure_threshold: int = 5,
        reset_timeout: float = 30.0,
        failure_types: tuple[type[BaseException], ...] = DEPENDENCY_FAILURES,
        clock: Callable[[], float] = time.monotonic,
        on_change: Callable[[str, State, State], None] | None = None,
    ) -> None:
        self.name = name
        self._threshold = failure_threshold
        self._reset_timeout = reset_timeout
        self._failure_types = failure_types
        self._clock = clock
        self._on_change = on_change
        self._lock = threading.Lock()
        self._state = State.CLOSED
        self._failures = 0  # consecutive, while closed
        self._open_until = 0.0
        self._trial_running = False
        self._events: list[tuple[State, State]] = []

    # --8<-- [end:breaker]

    # --8<-- [start:call]
    def call(self, fn: Callable[[], T]) -> T:
        """Run `fn` through the breaker, or raise `CircuitOpenError` at once."""
        trial = self._admit()
        try:
            result = fn()
        except self._failure_types as error:
            self._record(trial, ok=False, error=error)
            raise
        except BaseException:
            self._abandon(trial)  # not the dependency's fault: count nothing
            raise
        self._record(trial, ok=True)
        return result

    def _admit(self) -> bool:
        """Let the call through (True when it is the trial call) or raise."""
        with self._lock:
            now = self._clock()
            if self._state is State.OPEN and now >= self._open_until:
                self._move(State.HALF_OPEN)
            admitted = trial = False
            if self._state is State.CLOSED:
                admitted = True
            elif self._state is State.HALF_OPEN and not self._trial_running:
                self._trial_running = True  # this caller makes the trial call
                admitted = trial = True
            wait_s = max(0.0, self._open_until - now)
        self._notify()
        if not admitted:
            raise CircuitOpenError(f"{self.name}: open, trial in {wait_s:.1f} s")
        return trial

    # --8<-- [end:call]

    # --8<-- [start:acall]
    async def acall(self, fn: Callable[[], Awaitable[T]]) -> T:
        """The asyncio `call`: the lock is taken only between awaits."""
        trial = self._admit()
        try:
            result = await fn()
        except self._failure_types as error:
            self._record(trial, ok=False, error=error)
            raise
        except BaseException:  # CancelledError too: the caller left, no verdict
            self._abandon(trial)
            raise
        self._record(trial, ok=True)
        return result

    # --8<-- [end:acall]

    # --8<-- [start:record]
    def _record(
        self, trial: bool, ok: bool, error: BaseException | None = None
    ) -> None:
        """Count the outcome of an admitted call and change state if due."""
        retry_after: float | None = getattr(error, "retry_after", None)
        with self._lock:
            if trial:
                self._trial_running = False
            if ok and trial:
                self._move(State.CLOSED)
            if ok and self._state is State.CLOSED:
                self._failures = 0
            if not ok and (trial or self._state is State.CLOSED):
                self._failures += 1  # (a late failure while open changes nothing)
                hinted = retry_after is not None  # a 429 or 503 with Retry-After
                if trial or hinted or self._failures >= self._threshold:
                    self._open(max(self._reset_timeout, retry_after or 0.0))
        self._notify()

    def _open(self, cool_down: float) -> None:
        """Trip the breaker for `cool_down` seconds (lock held)."""
        self._open_until = self._clock() + cool_down
        self._failures = 0
        self._move(State.OPEN)

    # --8<-- [end:record]

    # --8<-- [start:events]
    def _abandon(self, trial: bool) -> None:
        """A call ended without a verdict; a trial slot goes to the next caller."""
        if trial:
            with self._lock:
                self._trial_running = False

    def _move(self, new: State) -> None:
        """Change state (lock held); the event is delivered after the lock."""
        if new is not self._state:
            self._events.append((self._state, new))
            self._state = new

    def _notify(self) -> None:
        """Deliver pending state changes without holding the lock."""
        with self._lock:
            events, self._events = self._events, []
        for old, new in events:
            if self._on_change is not None:
                self._on_change(self.name, old, new)

    # --8<-- [end:events]

    @property
    def state(self) -> State:
        """The current state; `HALF_OPEN` once the cool-down has passed."""
        with self._lock:
            if self._state is State.OPEN and self._clock() >= self._open_until:
                return State.HALF_OPEN  # the next call will be the trial
            return self._state


# --8<-- [start:retry]
def retry(
    fn: Callable[[], T],
    *,
    attempts: int,
    delay: float = 0.0,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Call `fn` up to `attempts` times, doubling `delay` after each failure.

    Only `DependencyError` is retried. `CircuitOpenError` ends the loop at
    once: the breaker has decided the fault is not transient.
    """
    if attempts < 1:
        raise ValueError("attempts must be at least 1")
    for attempt in range(1, attempts):
        try:
            return fn()
        except DependencyError:
            sleep(delay * 2 ** (attempt - 1))
    return fn()  # the last attempt's error reaches the caller


# --8<-- [end:retry]


# --8<-- [start:async-bulkhead]
class AsyncBulkhead:
    """The asyncio bulkhead: a bounded semaphore with an acquire timeout.

    Use one instance from one event loop.

    Args:
        name: The dependency, for errors and metrics.
        max_concurrent: Slots: the most calls this dependency may hold.
        acquire_timeout: How long a call waits for a free slot before it
            fails with `BulkheadFull`.
    """

    def __init__(self, name: str, max_concurrent: int, acquire_timeout: float) -> None:
        self.name = name
        self.max_concurrent = max_concurrent
        self.rejected = 0
        self._slots = asyncio.BoundedSemaphore(max_concurrent)
        self._acquire_timeout = acquire_timeout

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold a slot for an `async with` block, or raise `BulkheadFull`."""
        try:
            async with asyncio.timeout(self._acquire_timeout):
                await self._slots.acquire()
        except TimeoutError:
            self.rejected += 1
            raise BulkheadFull(
                f"{self.name}: {self.max_concurrent} in flight"
            ) from None
        try:
            yield
        finally:
            self._slots.release()  # also when the caller is cancelled


# --8<-- [end:async-bulkhead]


# --8<-- [start:async-gateway]
class AsyncGateway:
    """Outbound calls from one event loop under one shared concurrency limit.

    `limit` plays the part of an HTTP client's connection pool. Without
    bulkheads, a hanging dependency holds every permit, and calls to healthy
    dependencies wait for one until their deadline passes.
    """

    def __init__(
        self,
        limit: int,
        call_timeout: float,
        bulkheads: Mapping[str, AsyncBulkhead] | None = None,
    ) -> None:
        self.limit = limit
        self.bulkheads = dict(bulkheads or {})
        self._shared = asyncio.Semaphore(limit)
        self._call_timeout = call_timeout

    async def call(self, dependency: str, url: str, deadline: float) -> bytes:
        """Call `url` within `deadline` seconds, bulkhead first, then the pool."""
        bulkhead = self.bulkheads.get(dependency)
        slot = bulkhead.slot() if bulkhead else contextlib.nullcontext()
        try:
            async with asyncio.timeout(deadline):
                async with slot, self._shared:
                    return await async_http_get(url, self._call_timeout)
        except TimeoutError:  # async_http_get wraps its own timeouts
            raise DeadlineExceeded(f"{dependency}: over {deadline} s") from None


# --8<-- [end:async-gateway]


async def async_http_get(url: str, timeout: float) -> bytes:
    """The asyncio twin of `http_get`: one request per connection.

    Here `timeout` bounds the whole call.

    Raises:
        DependencyError: No connection, a timeout, a 5xx or a 429.
        RequestError: Any other 4xx.
    """
    parts = urlsplit(url)
    request = (
        f"GET {parts.path or '/'} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
        "Connection: close\r\n\r\n"
    )
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
            try:
                writer.write(request.encode("ascii"))
                await writer.drain()
                head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
                body = await reader.read()  # the server closes after the body
            finally:
                writer.close()
    except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as error:
        raise DependencyError(f"{parts.netloc}: {type(error).__name__}") from error
    status_line, *header_lines = head.split("\r\n")
    headers = dict(line.split(":", 1) for line in header_lines if ":" in line)
    retry_after = {k.lower(): v.strip() for k, v in headers.items()}.get("retry-after")
    _raise_for_status(parts.netloc, int(status_line.split()[1]), retry_after)
    return body


# --------------------------------------------------------------------------- #
# A dependency on loopback, for the demos and the tests
# --------------------------------------------------------------------------- #

Mode = Literal["up", "down", "hang"]
HANG_LIMIT = 30.0  # a held request answers by itself after this many seconds


class _Server(ThreadingHTTPServer):
    request_queue_size = 64  # socketserver's default backlog is 5
    dependency: DependencyServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that gave up closed its socket: nothing to report


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        dependency = cast(_Server, self.server).dependency
        mode = dependency.arrive()
        if self.path != "/":
            self._reply(404, b"no such resource")
            return
        if mode == "hang":
            dependency.held_until_release(HANG_LIMIT)
        if mode == "down":
            after = dependency.retry_after
            headers = {"Retry-After": str(after)} if after is not None else {}
            self._reply(503, b"unavailable", headers)
        else:
            self._reply(200, dependency.name.encode())

    def _reply(
        self, status: int, body: bytes, headers: Mapping[str, str] | None = None
    ) -> None:
        try:
            self.send_response(status)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except ConnectionError:
            pass  # the client timed out and left

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep demo and test output clean


class DependencyServer:
    """An HTTP dependency on loopback that answers, fails or hangs on demand.

    Modes: `up` answers 200 at once; `down` answers 503 (with `Retry-After`
    when `retry_after` is set); `hang` holds each request until `release()`
    and then answers 200. `hits` counts every request that reaches it.
    """

    def __init__(self, name: str, mode: Mode = "up", retry_after: int | None = None):
        self.name = name
        self.mode: Mode = mode
        self.retry_after = retry_after
        self.hits = 0
        self._arrived = threading.Condition()
        self._released = threading.Event()
        self._httpd = _Server(("127.0.0.1", 0), _Handler)
        self._httpd.dependency = self
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"dependency-{name}",
            daemon=True,
        )

    @property
    def url(self) -> str:
        """The base URL, `http://127.0.0.1:<port>/`."""
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}/"

    def arrive(self) -> Mode:
        """Count a request and return the mode it is served in."""
        with self._arrived:
            self.hits += 1
            self._arrived.notify_all()
            return self.mode

    def wait_for_hits(self, count: int, timeout: float) -> int:
        """Wait until `count` requests have arrived (bounded); return `hits`."""
        with self._arrived:
            self._arrived.wait_for(lambda: self.hits >= count, timeout)
            return self.hits

    def held_until_release(self, timeout: float) -> None:
        """Block a request handler until `release()`, at most `timeout` s."""
        self._released.wait(timeout)

    def release(self) -> None:
        """Answer every held request, and every later one in `hang` mode."""
        self._released.set()

    def __enter__(self) -> DependencyServer:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)


class ManualClock:
    """A clock that moves only when told to: deterministic cool-downs."""

    def __init__(self, start: float = 0.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        """Move the clock forward."""
        self.now += seconds


def wait_until(predicate: Callable[[], bool], timeout: float) -> bool:
    """Poll `predicate` every 5 ms until it holds or `timeout` passes."""
    end = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() >= end:
            return False
        time.sleep(0.005)
    return True


# --------------------------------------------------------------------------- #
# The demos: each returns counts; the tests assert on them, the page shows them
# --------------------------------------------------------------------------- #


@dataclass(frozen=True)
class Isolation:
    """What the healthy dependency got while the other one hung."""

    label: str
    answered: int  # catalog calls answered within the deadline
    held: int  # workers (or permits) that payments held
    rejected: int  # payments calls its bulkhead turned away
    catalog_hits: int  # catalog requests that reached catalog at all
    unit: str = "workers"

    def line(self) -> str:
        """One line of the page's output."""
        text = (
            f"{self.label:<15} catalog {self.answered}/{CATALOG_CALLS} answered "
            f"in time; payments holds {self.held} of {POOL} {self.unit}"
        )
        return text + (f", {self.rejected} rejected" if self.rejected else "")


PAYMENTS_CALLS, CATALOG_CALLS, POOL, SLOTS, DEADLINE = 8, 4, 8, 4, 0.5


def isolation_lines(capacity: str, without: Isolation, with_: Isolation) -> list[str]:
    """The isolation demo as the page shows it."""
    return [
        f"{capacity}; {PAYMENTS_CALLS} calls to payments (hangs), "
        f"then {CATALOG_CALLS} to catalog (deadline {DEADLINE} s)",
        without.line(),
        with_.line(),
    ]


# --8<-- [start:demo-isolation]
def isolation_demo(bulkheads: bool) -> Isolation:
    """8 calls to a hanging `payments`, then 4 to a healthy `catalog`."""
    with (
        DependencyServer("payments", mode="hang") as payments,
        DependencyServer("catalog") as catalog,
    ):
        slow = Bulkhead("payments", SLOTS, acquire_timeout=0.05)
        healthy = Bulkhead("catalog", SLOTS, acquire_timeout=0.05)
        gateway = (
            BulkheadGateway(POOL, 5.0, {"payments": slow, "catalog": healthy})
            if bulkheads
            else Gateway(POOL, call_timeout=5.0)
        )
        try:
            for _ in range(PAYMENTS_CALLS):
                with contextlib.suppress(BulkheadFull):
                    gateway.submit("payments", payments.url)
            # Every payments call is now either rejected or held by payments.
            wait_until(lambda: payments.hits + slow.rejected >= PAYMENTS_CALLS, 5)
            calls = [
                gateway.submit("catalog", catalog.url) for _ in range(CATALOG_CALLS)
            ]
            done, late = wait(calls, timeout=DEADLINE)
            for call in late:
                call.cancel()  # the caller gave up: never run it
            answered = sum(1 for call in done if call.exception() is None)
            held = payments.hits
        finally:
            payments.release()
            gateway.close()
    label = "with bulkheads:" if bulkheads else "shared pool:"
    return Isolation(label, answered, held, slow.rejected, catalog.hits)


# --8<-- [end:demo-isolation]


async def _async_isolation(bulkheads: bool) -> Isolation:
    with (
        DependencyServer("payments", mode="hang") as payments,
        DependencyServer("catalog") as catalog,
    ):
        slow = AsyncBulkhead("payments", SLOTS, acquire_timeout=0.05)
        healthy = AsyncBulkhead("catalog", SLOTS, acquire_timeout=0.05)
        gateway = AsyncGateway(
            POOL, 5.0, {"payments": slow, "catalog": healthy} if bulkheads else None
        )
        pending = [
            asyncio.create_task(gateway.call("payments", payments.url, deadline=10))
            for _ in range(PAYMENTS_CALLS)
        ]
        for _ in range(1000):  # at most ~5 s: each call rejected or held
            if payments.hits + slow.rejected >= PAYMENTS_CALLS:
                break
            await asyncio.sleep(0.005)
        held = payments.hits
        calls = [
            gateway.call("catalog", catalog.url, DEADLINE) for _ in range(CATALOG_CALLS)
        ]
        results = await asyncio.gather(*calls, return_exceptions=True)
        payments.release()
        await asyncio.wait_for(asyncio.gather(*pending, return_exceptions=True), 10)
    answered = sum(1 for result in results if isinstance(result, bytes))
    label = "with bulkheads:" if bulkheads else "shared limit:"
    return Isolation(label, answered, held, slow.rejected, catalog.hits, "permits")


def async_isolation_demo(bulkheads: bool) -> Isolation:
    """The asyncio version: one shared limit of 8, or bulkheads of 4 each."""
    return asyncio.run(_async_isolation(bulkheads))


CALLERS, ATTEMPTS, DOWN_FOR, SECONDS = 10, 3, 8, 12


# --8<-- [start:demo-storm]
def retry_storm(use_breaker: bool) -> list[int]:
    """Requests reaching `payments` each second while it is down, then back.

    Every second each of 10 callers makes one request with up to 3 attempts.
    `payments` answers 503 for the first 8 seconds. The clock is manual, so
    the cool-down is exact and the run takes no real time.
    """
    clock = ManualClock()
    breaker = CircuitBreaker(
        "payments", failure_threshold=3, reset_timeout=5.0, clock=clock
    )
    per_second = []
    with DependencyServer("payments", mode="down") as payments:

        def attempt() -> bytes:
            return http_get(payments.url, timeout=2.0)

        def request() -> bytes:
            return breaker.call(attempt) if use_breaker else attempt()

        for second in range(SECONDS):
            payments.mode = "down" if second < DOWN_FOR else "up"
            before = payments.hits
            for _ in range(CALLERS):
                with contextlib.suppress(DependencyError, CircuitOpenError):
                    retry(request, attempts=ATTEMPTS)
            per_second.append(payments.hits - before)
            clock.advance(1.0)
    return per_second


# --8<-- [end:demo-storm]


def storm_lines(without: list[int], with_breaker: list[int]) -> list[str]:
    """The storm as the page shows it: one column per second."""

    def row(label: str, counts: list[int]) -> str:
        cells = " ".join(f"{count:>2}" for count in counts)
        return f"  {label:<13}{cells}   ({sum(counts[:DOWN_FOR])} while down)"

    return [
        f"payments answers 503 for t=0..{DOWN_FOR - 1} s and is back at t={DOWN_FOR} s",
        f"{CALLERS} callers, one request a second each, up to {ATTEMPTS} attempts",
        "requests reaching payments, per second:",
        row("no breaker", without),
        row("with breaker", with_breaker),
    ]


@dataclass(frozen=True)
class Herd:
    """What a recovering dependency saw when many callers arrived at once."""

    reached: int  # requests that reached the dependency
    failed_fast: int  # callers the breaker turned away
    succeeded: int
    state: State  # the breaker's state afterwards


HERD = 20


def recovery_herd(use_breaker: bool) -> Herd:
    """20 callers arrive together while `payments` is recovering (slow).

    With the breaker, its cool-down has just passed: it is half-open. The
    recovering server holds every request until each caller has either
    reached it or failed fast, then answers them all.
    """
    clock = ManualClock()
    breaker = CircuitBreaker(
        "payments", failure_threshold=3, reset_timeout=5.0, clock=clock
    )
    outcomes: list[str] = []
    lock = threading.Lock()
    with DependencyServer("payments", mode="down") as payments:

        def attempt() -> bytes:
            return http_get(payments.url, timeout=10.0)

        def request() -> bytes:
            return breaker.call(attempt) if use_breaker else attempt()

        if use_breaker:
            for _ in range(3):  # three failures open the breaker
                with contextlib.suppress(DependencyError):
                    request()
            clock.advance(5.0)  # the cool-down passes: half-open
        payments.mode, before = "hang", payments.hits
        start = threading.Barrier(HERD)

        def caller() -> None:
            start.wait(timeout=5)
            try:
                request()
                outcome = "ok"
            except CircuitOpenError:
                outcome = "fast"
            except DependencyError:
                outcome = "failed"
            with lock:
                outcomes.append(outcome)

        threads = [threading.Thread(target=caller) for _ in range(HERD)]
        for thread in threads:
            thread.start()
        wait_until(lambda: len(outcomes) + payments.hits - before >= HERD, timeout=10)
        reached = payments.hits - before
        payments.release()
        for thread in threads:
            thread.join(timeout=10)
    return Herd(reached, outcomes.count("fast"), outcomes.count("ok"), breaker.state)


def herd_lines(without: Herd, with_breaker: Herd) -> list[str]:
    """The recovery herd as the page shows it."""
    return [
        f"{HERD} callers at once while payments recovers:",
        f"  no breaker    {without.reached:>2} requests reached payments",
        f"  with breaker  {with_breaker.reached:>2} request reached payments "
        f"(the trial call), {with_breaker.failed_fast} failed fast",
        f"breaker after the trial call: {with_breaker.state.value}",
    ]


if __name__ == "__main__":
    pool = f"a pool of {POOL} workers"
    print(*isolation_lines(pool, isolation_demo(False), isolation_demo(True)), sep="\n")
    limit = f"one limit of {POOL} permits"
    runs = async_isolation_demo(False), async_isolation_demo(True)
    print(*isolation_lines(limit, *runs), sep="\n")
    print(*storm_lines(retry_storm(False), retry_storm(True)), sep="\n")
    print(*herd_lines(recovery_herd(False), recovery_herd(True)), sep="\n")
