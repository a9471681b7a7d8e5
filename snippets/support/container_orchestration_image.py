"""Build the graceful-shutdown page's Dockerfile and run it as a container.

The build uses the legacy builder (`DOCKER_BUILDKIT=0`) with `--network none`
and `--build-arg BASE=<the local base image>` (snippets/support/docker_engine.py):
no image is pulled and nothing is downloaded. The base already carries tini
0.19.0 and pip, and no package index is reachable from inside the build, so
the Dockerfile's one `RUN apt-get` step is left out; every other line is built
as written. The container runs with `--network host` and listens on
127.0.0.1 only; `docker stop` sends the SIGTERM.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from snippets.support.container_orchestration_service import (
    DOCKERFILE,
    ROOT,
    Gate,
    Service,
)
from snippets.support.docker_engine import (
    base_image,
    container_name,
    docker,
    docker_bin,
)

__all__ = ["built_image", "container_service", "offline_dockerfile"]

IGNORE = shutil.ignore_patterns("__pycache__", "node_modules", "output", "*.pyc")


def offline_dockerfile() -> str:
    """The page's Dockerfile without its `RUN apt-get` step (continuations too)."""
    lines = DOCKERFILE.read_text().splitlines(keepends=True)
    kept: list[str] = []
    skipping = False
    for line in lines:
        if line.startswith("RUN apt-get"):
            skipping = True
        if not skipping:
            kept.append(line)
        elif not line.rstrip().endswith("\\"):
            skipping = False
    return "".join(kept)


@contextmanager
def built_image() -> Iterator[str]:
    """Build the image from a context of `snippets/` only; remove it afterwards."""
    base = base_image()
    tag = f"local/cp-graceful-shutdown:{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory() as context:
        shutil.copytree(ROOT / "snippets", Path(context) / "snippets", ignore=IGNORE)
        dockerfile = Path(context) / "Dockerfile"
        dockerfile.write_text(offline_dockerfile())
        env = {**os.environ, "DOCKER_BUILDKIT": "0"}
        run = subprocess.run(
            [
                docker_bin(),
                "build",
                "--network",
                "none",
                "--pull=false",
                "--build-arg",
                f"BASE={base}",
                "-t",
                tag,
                "-f",
                str(dockerfile),
                context,
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        if run.returncode != 0:
            raise RuntimeError(f"docker build failed:\n{run.stdout}\n{run.stderr}")
    try:
        yield tag
    finally:
        docker("rmi", "-f", tag, check=False)


def container_service(image: str, gate: Gate, *args: str) -> tuple[Service, str]:
    """The image's ENTRYPOINT with `serve ... args` as CMD, on 127.0.0.1."""
    name = container_name("graceful")
    argv = [
        docker_bin(), "run", "--name", name, "--pull", "never", "--network", "host",
        image, "serve", "--host", "127.0.0.1", "--port", "0", *args,
        "--dependency", f"{gate.address[0]}:{gate.address[1]}",
    ]  # fmt: skip
    return Service(argv), name
