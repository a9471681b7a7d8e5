"""Single-flight part loader: one fetch per part, however many callers ask.

An on-demand part (a plugin, a model file, a remote module) is fetched the
first time somebody needs it. When many callers need it at the same moment,
each of them would start its own fetch. The loaders here keep one in-flight
load per key and share it:

* `SingleFlightLoader` is the asyncio version: one task per key, awaited by
  every caller through `asyncio.shield`, evicted if it fails.
* `ThreadSingleFlightLoader` is the threaded version: the first caller runs
  the load, the others wait on its `concurrent.futures.Future`.

A successful load stays memoized; a failed one is removed, so the next call
retries instead of receiving the same error forever.

`PartServer` is a loopback HTTP origin that counts requests, so the tests and
the demo can show how many fetches really happened.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Awaitable, Callable, Hashable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

FETCH_TIMEOUT = 5.0  # seconds for one part, connect to last byte


class PartLoadError(Exception):
    """A part could not be fetched (the origin answered with an error)."""


# --8<-- [start:server]
class PartServer(ThreadingHTTPServer):
    """A loopback origin for `/parts/<name>` that counts what it serves.

    Args:
        max_active: Answer 503 when more requests than this are in progress
            at once (a server-side concurrency cap); `None` for no cap.
    """

    daemon_threads = True
    request_queue_size = 512  # accept backlog: connections are not refused

    def __init__(self, max_active: int | None = None) -> None:
        super().__init__(("127.0.0.1", 0), _PartHandler)
        self.max_active = max_active
        self.requests: Counter[str] = Counter()  # path -> requests received
        self.fail_next: Counter[str] = Counter()  # path -> 503s still to send
        self.active = self.peak = self.rejected = 0
        self.gate = threading.Event()  # every answer waits for it
        self.gate.set()
        self.changed = threading.Condition()

    @property
    def url(self) -> str:
        """The base URL, for example ``http://127.0.0.1:40123``."""
        return f"http://127.0.0.1:{self.server_address[1]}"

    def wait_until(self, ready: Callable[[PartServer], bool], timeout: float) -> None:
        """Block until ``ready(self)`` holds; raise `TimeoutError` after timeout."""
        with self.changed:
            if not self.changed.wait_for(lambda: ready(self), timeout):
                raise TimeoutError("the server never reached the expected state")


# --8<-- [end:server]


class _PartHandler(BaseHTTPRequestHandler):
    server: PartServer

    def do_GET(self) -> None:
        srv = self.server
        with srv.changed:
            srv.requests[self.path] += 1
            srv.active += 1
            srv.peak = max(srv.peak, srv.active)
            over_cap = srv.max_active is not None and srv.active > srv.max_active
            fail = over_cap or srv.fail_next[self.path] > 0
            if over_cap:
                srv.rejected += 1
            elif fail:
                srv.fail_next[self.path] -= 1
            srv.changed.notify_all()
        try:
            srv.gate.wait(timeout=FETCH_TIMEOUT)  # the tests hold answers here
            if fail:
                self.send_error(HTTPStatus.SERVICE_UNAVAILABLE)
                return
            body = f"part {self.path.rsplit('/', 1)[-1]}".encode()
            self.send_response(HTTPStatus.OK)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        finally:
            with srv.changed:
                srv.active -= 1
                srv.changed.notify_all()

    def log_message(self, format: str, *args: object) -> None:
        """Keep the test output quiet."""


# --8<-- [start:fetch]
async def fetch_part(base_url: str, name: str, timeout: float = FETCH_TIMEOUT) -> str:
    """Fetch ``/parts/<name>`` over HTTP/1.1 with asyncio streams.

    Raises:
        PartLoadError: The origin answered with a status other than 200.
        TimeoutError: No complete answer within ``timeout`` seconds.
    """
    host, port = base_url.removeprefix("http://").split(":")
    async with asyncio.timeout(timeout):
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            request = f"GET /parts/{name} HTTP/1.1\r\nHost: {host}\r\n"
            writer.write((request + "Connection: close\r\n\r\n").encode())
            await writer.drain()
            status_line = await reader.readline()
            rest = await reader.read()  # headers and body, up to EOF
            body = rest.partition(b"\r\n\r\n")[2]
        finally:
            writer.close()
            await writer.wait_closed()
    status = int(status_line.split()[1]) if status_line else 0
    if status != HTTPStatus.OK:
        raise PartLoadError(f"{name}: HTTP {status}")
    return body.decode()


def fetch_part_blocking(
    base_url: str, name: str, timeout: float = FETCH_TIMEOUT
) -> str:
    """The blocking version of `fetch_part`, for threads (urllib)."""
    try:
        with urllib.request.urlopen(f"{base_url}/parts/{name}", timeout=timeout) as r:
            return bytes(r.read()).decode()
    except urllib.error.HTTPError as exc:
        raise PartLoadError(f"{name}: HTTP {exc.code}") from exc


# --8<-- [end:fetch]


# --8<-- [start:naive]
class NaiveLoader(Generic[K, V]):
    """The broken version: check the cache, then fetch. No in-flight sharing."""

    def __init__(self, load: Callable[[K], Awaitable[V]]) -> None:
        self._load = load
        self._loaded: dict[K, V] = {}

    async def get(self, key: K) -> V:
        if key not in self._loaded:  # every caller that arrives now sees "absent"
            self._loaded[key] = await self._load(key)  # ... and each one fetches
        return self._loaded[key]


class PoisonedLoader(Generic[K, V]):
    """Shares the in-flight load but also keeps a failed one: errors stick."""

    def __init__(self, load: Callable[[K], Awaitable[V]]) -> None:
        self._load = load
        self._tasks: dict[K, asyncio.Task[V]] = {}

    async def get(self, key: K) -> V:
        if key not in self._tasks:
            self._tasks[key] = asyncio.ensure_future(self._load(key))
        return await asyncio.shield(self._tasks[key])  # a failed task re-raises


# --8<-- [end:naive]


# --8<-- [start:loader]
class SingleFlightLoader(Generic[K, V]):
    """Load each key once; concurrent callers share the in-flight load.

    A finished load stays memoized. A failed or cancelled load is evicted, so
    its callers get the error once and the next call starts a new attempt.
    A caller that is cancelled stops waiting without cancelling the load.
    Use one instance from one event loop.

    Args:
        load: Fetches one part. Runs at most once at a time per key.
    """

    def __init__(self, load: Callable[[K], Awaitable[V]]) -> None:
        self._load = load
        self._tasks: dict[K, asyncio.Task[V]] = {}

    async def get(self, key: K) -> V:
        """Return the part for ``key``, starting a load only if none exists."""
        task = self._tasks.get(key)
        if task is None:  # no await between this check and the insert
            task = asyncio.ensure_future(self._load(key))
            self._tasks[key] = task
            task.add_done_callback(lambda t: self._evict_failed(key, t))
        return await asyncio.shield(task)

    def _evict_failed(self, key: K, task: asyncio.Task[V]) -> None:
        failed = task.cancelled() or task.exception() is not None
        if failed and self._tasks.get(key) is task:  # never evict a newer attempt
            del self._tasks[key]


# --8<-- [end:loader]


# --8<-- [start:threaded]
class ThreadSingleFlightLoader(Generic[K, V]):
    """The threaded version: the first caller loads, the others wait for it.

    Args:
        load: Fetches one part (blocking).
        timeout: How long a waiting caller waits for another caller's load.
    """

    def __init__(self, load: Callable[[K], V], timeout: float = FETCH_TIMEOUT) -> None:
        self._load = load
        self._timeout = timeout
        self._lock = threading.Lock()
        self._futures: dict[K, concurrent.futures.Future[V]] = {}

    def get(self, key: K) -> V:
        """Return the part for ``key``; only one thread fetches it at a time."""
        with self._lock:
            future = self._futures.get(key)
            leader = future is None
            if future is None:
                future = self._futures[key] = concurrent.futures.Future()
        if not leader:
            return future.result(timeout=self._timeout)
        try:
            value = self._load(key)
        except BaseException as exc:
            with self._lock:
                del self._futures[key]  # evict: the next call retries
            future.set_exception(exc)
            raise
        future.set_result(value)
        return value


# --8<-- [end:threaded]


# --8<-- [start:demo]
async def demo(callers: int = 20) -> list[str]:
    """Let ``callers`` tasks ask for one part at once; count the fetches."""
    lines = []
    with PartServer() as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            for label, make in (
                ("naive", NaiveLoader[str, str]),
                ("single-flight", SingleFlightLoader[str, str]),
            ):
                loader = make(lambda name: fetch_part(server.url, name))
                key = f"chart-{label}"
                results = await asyncio.gather(
                    *(loader.get(key) for _ in range(callers))
                )
                fetches = server.requests[f"/parts/{key}"]
                lines.append(
                    f"{label:<13} callers={callers} fetches={fetches} "
                    f"distinct results={len(set(results))}"
                )
            server.fail_next["/parts/model"] = 1  # the first fetch fails
            for label, make2 in (
                ("poisoned", PoisonedLoader[str, str]),
                ("evict-on-fail", SingleFlightLoader[str, str]),
            ):
                loader2 = make2(lambda name: fetch_part(server.url, name))
                outcomes = []
                for _ in range(3):
                    try:
                        outcomes.append(await loader2.get("model"))
                    except PartLoadError as exc:
                        outcomes.append(f"error ({exc})")
                    server.fail_next["/parts/model"] = 0
                lines.append(f"{label:<13} " + " | ".join(outcomes))
                server.fail_next["/parts/model"] = 1
        finally:
            server.shutdown()
    return lines


# --8<-- [end:demo]


if __name__ == "__main__":
    print(*asyncio.run(demo()), sep="\n")
