"""A real container engine for the demos and tests, without an image registry.

No registry is reachable from this machine, so nothing is ever pulled: the
base image is a root filesystem assembled from files already on the machine
(Debian's Python 3.11 and the shared libraries `ldd` names, Debian's pip,
dash as `/bin/sh`, bash, tini and a few coreutils), imported with
`docker import` and tagged by a hash of its content, so each machine builds
it once. The daemon is started
with `--bridge=none` when it is not running (the default bridge uses a private
address range no test may send traffic to); containers run with
`--pull never` and `--network none`, or `--network host` on 127.0.0.1.
"""

from __future__ import annotations

import fcntl
import hashlib
import io
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import cache
from pathlib import Path

from snippets.support.services import ServiceUnavailable

__all__ = [
    "INSTALL",
    "base_image",
    "container_name",
    "docker",
    "docker_bin",
    "engine_version",
    "ensure_daemon",
    "machine_lock",
    "removed",
]

INSTALL = (
    "apt-get install -y docker.io, then start the daemon: "
    "dockerd --bridge=none --iptables=false &"
)
REPOSITORY = "local/cp-base"
RECIPE = "4"  # bump when the lists below change
# Programs the image needs, by the path they have inside it.
PROGRAMS = {
    "/usr/bin/python3.11": "/usr/bin/python3.11",
    "/usr/bin/dash": "/usr/bin/dash",
    "/usr/bin/bash": "/usr/bin/bash",
    "/usr/bin/sleep": "/usr/bin/sleep",
    "/usr/bin/cat": "/usr/bin/cat",
    "/usr/bin/tini": "/usr/bin/tini",
}
PIP = Path("/usr/lib/python3/dist-packages/pip")  # Debian's, vendored libraries
LINKS = {  # Debian's merged /usr, and the names scripts call
    "bin": "usr/bin",
    "sbin": "usr/sbin",
    "lib": "usr/lib",
    "lib64": "usr/lib64",
    "usr/bin/sh": "dash",
    "usr/bin/python3": "python3.11",
    "usr/bin/python": "python3.11",
}
STDLIB = Path("/usr/lib/python3.11")
SKIP = {
    "test",
    "idlelib",
    "tkinter",
    "turtledemo",
    "ensurepip",
    "lib2to3",
    "pydoc_data",
}
# python:3.12-slim has no EXTERNALLY-MANAGED marker either: pip may install.
SKIP_FILES = {"EXTERNALLY-MANAGED"}
PIP_SCRIPT = b"""#!/usr/bin/python3
import sys
from pip._internal.cli.main import main
sys.exit(main())
"""


def docker_bin() -> str:
    """The Debian client (its version matches the daemon), else any `docker`."""
    for candidate in ("/usr/bin/docker", shutil.which("docker")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise ServiceUnavailable(f"no docker client; {INSTALL}")


def docker(
    *args: str, check: bool = True, timeout: float = 120, input: bytes | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the docker client; raise with its stderr when it fails and `check`."""
    run = subprocess.run(
        [docker_bin(), *args],
        capture_output=True,
        timeout=timeout,
        input=input,
        check=False,
    )
    result = subprocess.CompletedProcess(
        run.args, run.returncode, run.stdout.decode(), run.stderr.decode()
    )
    if check and run.returncode != 0:
        raise RuntimeError(f"docker {' '.join(args)}: {result.stderr.strip()}")
    return result


def _daemon_up() -> bool:
    try:
        return (
            docker("info", "--format", "{{.ServerVersion}}", check=False).returncode
            == 0
        )
    except (subprocess.TimeoutExpired, ServiceUnavailable):
        return False


@contextmanager
def machine_lock(name: str) -> Iterator[None]:
    """Hold an exclusive lock shared by every process on this machine.

    Two test runs (one per Python) share one daemon: without the lock both see
    no base image, both import one, and the second import moves the tag under
    the first run's builds, whose next build then misses the layer cache.
    """
    path = Path(tempfile.gettempdir()) / f"cp-{name}.lock"
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@cache
def ensure_daemon() -> str:
    """Start dockerd with `--bridge=none` if needed; return the engine version."""
    with machine_lock("dockerd"):
        if not _daemon_up():
            dockerd = shutil.which("dockerd") or "/usr/sbin/dockerd"
            if not os.access(dockerd, os.X_OK) or os.geteuid() != 0:
                raise ServiceUnavailable(f"the Docker daemon is not running; {INSTALL}")
            log = open("/tmp/cp-dockerd.log", "ab")  # noqa: SIM115 (the daemon keeps it)
            subprocess.Popen(
                [dockerd, "--bridge=none", "--iptables=false", "--ip-forward=false"],
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
            deadline = time.monotonic() + 60
            while not _daemon_up():
                if time.monotonic() > deadline:
                    raise ServiceUnavailable(
                        "dockerd did not start in 60 s (/tmp/cp-dockerd.log); "
                        + INSTALL
                    )
                time.sleep(0.5)
    return engine_version()


def engine_version() -> str:
    return docker("version", "--format", "{{.Server.Version}}").stdout.strip()


def _libraries(binary: Path) -> set[Path]:
    run = subprocess.run(["ldd", str(binary)], capture_output=True, text=True)
    found = re.findall(r"(/\S+) \(0x", run.stdout)
    return {Path(path) for path in found}


def _files() -> dict[str, Path]:
    """Path inside the image → file on this machine."""
    files = {inside: Path(host) for inside, host in PROGRAMS.items()}
    for path in sorted(STDLIB.rglob("*")):
        relative = path.relative_to(STDLIB)
        if (
            relative.parts[0] in SKIP
            or path.is_dir()
            or "dist-packages" in relative.parts
            or path.name in SKIP_FILES
        ):
            continue
        files[f"{STDLIB}/{relative}"] = path
    if PIP.is_dir():
        for path in sorted(PIP.rglob("*")):
            if path.is_file():
                files[str(path)] = path
    binaries = [Path(host) for host in PROGRAMS.values()]
    binaries += sorted((STDLIB / "lib-dynload").glob("*.so"))
    for binary in binaries:
        for library in _libraries(binary):
            files[os.path.realpath(library)] = Path(os.path.realpath(library))
            # the name the loader asks for (the dynamic loader's, for one)
            named = os.path.join(os.path.realpath(library.parent), library.name)
            files.setdefault(named, Path(os.path.realpath(library)))
    return files


def _rootfs_tar(files: dict[str, Path]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name in ("tmp", "usr/bin", "usr/lib", "usr/lib64", "usr/sbin", "etc"):
            info = tarfile.TarInfo(name)
            info.type, info.mode = tarfile.DIRTYPE, 0o1777 if name == "tmp" else 0o755
            tar.addfile(info)
        for link, target in LINKS.items():
            info = tarfile.TarInfo(link)
            info.type, info.linkname = tarfile.SYMTYPE, target
            tar.addfile(info)
        for inside, host in sorted(files.items()):
            info = tar.gettarinfo(str(host), arcname=inside.lstrip("/"))
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            if info.issym() or info.isdir():
                continue
            with open(host, "rb") as handle:
                tar.addfile(info, handle)
        if PIP.is_dir():
            info = tarfile.TarInfo("usr/bin/pip")
            info.size, info.mode = len(PIP_SCRIPT), 0o755
            tar.addfile(info, io.BytesIO(PIP_SCRIPT))
        passwd = b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534::/:/bin/sh\n"
        info = tarfile.TarInfo("etc/passwd")
        info.size, info.mode = len(passwd), 0o644
        tar.addfile(info, io.BytesIO(passwd))
    return buffer.getvalue()


@cache
def base_image() -> str:
    """The local base image's tag (`local/cp-base:<hash>`), built once per machine."""
    ensure_daemon()
    files = _files()
    digest = hashlib.sha256(RECIPE.encode())
    for inside, host in sorted(files.items()):
        stat = host.stat()
        digest.update(f"{inside}\0{stat.st_size}\0{int(stat.st_mtime)}\n".encode())
    tag = f"{REPOSITORY}:{digest.hexdigest()[:12]}"
    with machine_lock("docker-base"):
        if docker("image", "inspect", tag, check=False).returncode == 0:
            return tag
        docker(
            "import",
            "--change",
            'CMD ["/bin/sh"]',
            "-",
            tag,
            input=_rootfs_tar(files),
            timeout=300,
        )
    return tag


def container_name(prefix: str) -> str:
    return f"cp-{prefix}-{uuid.uuid4().hex[:8]}"


@contextmanager
def removed(names: Sequence[str] = (), images: Sequence[str] = ()) -> Iterator[None]:
    """Remove the named containers and images afterwards, whatever happened."""
    try:
        yield
    finally:
        for name in names:
            docker("rm", "-f", "-v", name, check=False)
        for image in images:
            docker("rmi", "-f", image, check=False)
