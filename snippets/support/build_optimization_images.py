"""Build the container-image page's projects with Docker and with buildah.

Docker: the legacy builder (`DOCKER_BUILDKIT=0`), `--network none`,
`--pull=false`, the local base image from snippets/support/docker_engine.py
as `--build-arg BASE`. buildah (Debian's 1.28): `buildah bud --layers
--pull=never --network none` on the same root filesystem, imported into
buildah's own storage with `FROM scratch` and `ADD`. No image is pulled and
nothing is downloaded; the dependencies come from the project's wheel folder.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from snippets.support.docker_engine import (
    RECIPE,
    _files,
    _rootfs_tar,
    base_image,
    docker,
    docker_bin,
    machine_lock,
)
from snippets.support.services import ServiceUnavailable

__all__ = [
    "Build",
    "buildah_base",
    "buildah_bud",
    "docker_build",
    "fresh",
    "in_image",
    "remove_images",
    "unique_tag",
]

BUILDAH_INSTALL = "apt-get install -y buildah"


@dataclass(frozen=True)
class Build:
    """One image build: how long it took and which steps the cache answered."""

    seconds: float
    steps: int
    cached: int
    install_ran: bool  # the `pip install` step ran (not taken from the cache)
    output: str
    image: str = ""  # the image's ID, to remove it once its tag has moved on


def _steps(output: str, step: str, cached: str) -> tuple[int, int, bool]:
    """(steps, steps from the cache, whether the pip step ran) from the log."""
    blocks = re.split(step, output)[1:]
    reused = [cached in block.split("\n", 2)[1] if "\n" in block else False
              for block in blocks]  # fmt: skip
    install = [
        not used
        for block, used in zip(blocks, reused, strict=True)
        if "pip install" in block.split("\n", 1)[0]
    ]
    return len(blocks), sum(reused), any(install)


def docker_build(context: Path, dockerfile: Path, tag: str) -> Build:
    """`DOCKER_BUILDKIT=0 docker build` of `dockerfile` on the local base."""
    env = {**os.environ, "DOCKER_BUILDKIT": "0"}
    started = time.monotonic()
    run = subprocess.run(
        [
            docker_bin(),
            "build",
            "--network",
            "none",
            "--pull=false",
            "--build-arg",
            f"BASE={base_image()}",
            "-t",
            tag,
            "-f",
            str(dockerfile),
            str(context),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    seconds = time.monotonic() - started
    if run.returncode != 0:
        raise RuntimeError(f"docker build failed:\n{run.stdout}\n{run.stderr}")
    steps, cached, ran = _steps(run.stdout, r"(?m)^Step \d+/\d+ : ", "Using cache")
    built = re.findall(r"(?m)^Successfully built (\w+)", run.stdout)
    return Build(seconds, steps, cached, ran, run.stdout, built[-1] if built else "")


def _buildah() -> str:
    found = shutil.which("buildah")
    if found is None:
        raise ServiceUnavailable(f"buildah is not installed; {BUILDAH_INSTALL}")
    return found


def _buildah_run(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    run = subprocess.run(
        [_buildah(), *args], capture_output=True, text=True, timeout=timeout
    )
    if run.returncode != 0:
        raise RuntimeError(f"buildah {args[0]} failed:\n{run.stdout}\n{run.stderr}")
    return run


@cache
def buildah_base() -> str:
    """The local base in buildah's storage, from the same root filesystem."""
    tag = base_image().replace("local/", "localhost/")
    with machine_lock("buildah-base"), tempfile.TemporaryDirectory() as context:
        known = subprocess.run(
            [_buildah(), "images", "-q", tag], capture_output=True, text=True
        )
        if known.returncode == 0 and known.stdout.strip():
            return tag
        Path(context, "rootfs.tar").write_bytes(_rootfs_tar(_files()))
        Path(context, "Containerfile").write_text(
            f"FROM scratch\nADD rootfs.tar /\nLABEL recipe={RECIPE}\n"
        )
        _buildah_run(
            "bud", "--pull=never", "--network", "none", "-t", tag,
            "-f", str(Path(context, "Containerfile")), context,
        )  # fmt: skip
    return tag


def buildah_bud(context: Path, containerfile: Path, tag: str) -> Build:
    """`buildah bud --layers --pull=never --network none` on the local base."""
    started = time.monotonic()
    run = _buildah_run(
        "bud", "--layers", "--pull=never", "--network", "none",
        "--build-arg", f"BASE={buildah_base()}", "-t", tag,
        "-f", str(containerfile), str(context),
    )  # fmt: skip
    seconds = time.monotonic() - started
    steps, cached, ran = _steps(run.stdout, r"(?m)^STEP \d+/\d+: ", "Using cache")
    return Build(seconds, steps, cached, ran, run.stdout)


def in_image(tag: str, path: str) -> bool:
    """Whether `path` exists in buildah image `tag` (mounted, not run)."""
    container = _buildah_run("from", "--pull=never", tag).stdout.strip()
    try:
        root = _buildah_run("mount", container).stdout.strip()
        return Path(root, path.lstrip("/")).exists()
    finally:
        subprocess.run([_buildah(), "rm", container], capture_output=True)


def remove_images(*tags: str) -> None:
    """Remove the images a case built (Docker's and buildah's), and the layers
    buildah kept for `--layers` that no image uses any more."""
    for tag in tags:
        docker("rmi", "-f", tag, check=False)
    if shutil.which("buildah"):
        for tag in tags:
            subprocess.run([_buildah(), "rmi", "-f", tag], capture_output=True)
        subprocess.run([_buildah(), "rmi", "--prune"], capture_output=True)


def fresh(root: Path, tag: str) -> None:
    """Make the project's lock file unique, so no earlier run's layer matches."""
    requirements = root / "requirements.txt"
    requirements.write_text(f"# {tag}\n" + requirements.read_text())


def unique_tag(name: str) -> str:
    return f"localhost/cp-{name}:{uuid.uuid4().hex[:8]}"
