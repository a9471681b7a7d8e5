"""`docker stop` and PID 1: which process gets SIGTERM, and what it does with it.

`docker stop` sends SIGTERM to the container's PID 1 and SIGKILL when the
timeout (10 s by default) has passed. The kernel delivers SIGTERM to a PID
namespace's init only if it has a handler, so a handler-less Python as PID 1,
or a shell that stays PID 1 in front of it, waits for SIGKILL. An init (tini
through `docker run --init`, or dumb-init) forwards the signal; dumb-init's
default sends it to the whole process group, which kills prefork workers
before their parent can drain them.

`app` is the process inside the container (standard library only).
"""

from .app import handler, main, plain, prefork, worker

__all__ = ["handler", "main", "plain", "prefork", "worker"]
