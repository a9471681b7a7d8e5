"""A loopback TCP proxy that can stop forwarding: a network partition on demand.

``BlackHoleProxy`` listens on 127.0.0.1, forwards every connection to an
upstream address, and after ``black_hole()`` reads and drops every byte in
both directions while it keeps the sockets open. The client's kernel still
gets its TCP acknowledgements, so neither TCP keepalives nor
``tcp_user_timeout`` notice anything: the client sees a peer that never
answers, as behind a stalled NAT, sidecar or connection pooler. New
connections are accepted and never forwarded.
"""

from __future__ import annotations

import socket
import threading
from types import TracebackType

__all__ = ["BlackHoleProxy"]


class BlackHoleProxy:
    """Forward ``127.0.0.1:<port>`` to ``upstream`` until told to drop everything."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._dropping = threading.Event()
        self._closed = threading.Event()
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._acceptor = threading.Thread(target=self._accept, daemon=True)
        self._acceptor.start()

    def black_hole(self) -> None:
        """From now on, forward nothing; hold every connection open."""
        self._dropping.set()

    def close(self) -> None:
        """Stop listening and close every connection."""
        self._closed.set()
        _close(self._listener)  # shutdown() wakes the thread blocked in accept()
        with self._lock:
            for sock in self._sockets:
                _close(sock)
        self._acceptor.join(timeout=5)

    def __enter__(self) -> BlackHoleProxy:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()

    def _keep(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.append(sock)

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            self._keep(client)
            if self._dropping.is_set():
                self._spawn(client, None)
                continue
            try:
                server = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                _close(client)
                continue
            server.settimeout(None)
            self._keep(server)
            self._spawn(client, server)
            self._spawn(server, client)

    def _spawn(self, source: socket.socket, sink: socket.socket | None) -> None:
        threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket | None) -> None:
        """Copy ``source`` to ``sink``; once dropping, read and discard."""
        while True:
            try:
                data = source.recv(65536)
            except OSError:
                break
            if not data:
                break
            if sink is None or self._dropping.is_set():
                continue
            try:
                sink.sendall(data)
            except OSError:
                break
        if sink is not None and not self._dropping.is_set():
            _close(sink)


def _close(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()
