"""The demo service the tests and the image run as a real process.

python -m snippets.container_orchestration.graceful_shutdown serve --help
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

from snippets.container_orchestration.graceful_shutdown.asyncio_server import (
    serve_asyncio,
)
from snippets.container_orchestration.graceful_shutdown.dependency import (
    call_dependency,
    call_dependency_async,
    dependency_timeout,
)
from snippets.container_orchestration.graceful_shutdown.pool import (
    LineSource,
    WorkerPool,
    run_pool,
)
from snippets.container_orchestration.graceful_shutdown.server import (
    DrainingHTTPServer,
    WorkHandler,
    serve_naive,
    serve_threaded,
)
from snippets.container_orchestration.graceful_shutdown.signals import say


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
