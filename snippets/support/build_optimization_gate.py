"""The slowest possible step: held until the build has nothing else to run.

Run as a program, this module waits on a gate (a named pipe), then runs a
command:

    python -m snippets.support.build_optimization_gate hold GATE -- CMD ARGS...

`run_gated` runs a build tool (make, Ninja) and opens the gate only when the
tool is asleep and every process it still runs is a held step. At that moment
the tool has started everything it could start without the held step's
output, and the rest waits. A race between the held step and another step
therefore always shows, and a build that declares the dependency never
fails, with no sleep that "makes the step slow enough".

`require_tool` finds a build tool or raises `ServiceUnavailable` with the
Debian package to install.
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from snippets.support.services import ServiceUnavailable

__all__ = ["MARKER", "Gated", "hold_prefix", "require_tool", "run_gated"]

MARKER = "snippets.support.build_optimization_gate"
ROOT = Path(__file__).resolve().parents[2]
PACKAGES = {
    "gcc": "gcc",
    "make": "make",
    "cmake": "cmake",
    "ninja": "ninja-build",
    "ccache": "ccache",
}


def require_tool(name: str) -> str:
    """The tool's path, or ServiceUnavailable with the package to install."""
    path = shutil.which(name)
    if path is None:
        package = PACKAGES.get(name, name)
        raise ServiceUnavailable(
            f"{name} is not installed; install it with `apt-get install -y {package}`"
        )
    return path


def hold_prefix(gate: Path) -> list[str]:
    """The words to put before a command so that it waits on ``gate``."""
    return [sys.executable, "-m", MARKER, "hold", str(gate), "--"]


def tool_env() -> dict[str, str]:
    """This environment with the snippets importable and no outer make."""
    outer = ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKE_TERMOUT", "MAKE_TERMERR")
    env = {k: v for k, v in os.environ.items() if k not in outer}
    env["PYTHONPATH"] = str(ROOT)
    env["LC_ALL"] = "C"  # the messages in English, as the page quotes them
    return env


@dataclass
class Gated:
    """A finished gated run: exit status, output, how often the gate opened."""

    returncode: int
    stdout: str
    stderr: str
    releases: int


def _processes() -> dict[int, tuple[int, str, str]]:
    """pid -> (parent pid, state, command line) for every process we can see."""
    found: dict[int, tuple[int, str, str]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
            cmdline = Path(entry.path, "cmdline").read_bytes()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        found[int(entry.name)] = (
            int(fields[1]),
            fields[0],
            cmdline.replace(b"\0", b" ").decode(errors="replace"),
        )
    return found


def _idle_on_gate(tool: int) -> bool:
    """True when ``tool`` sleeps and runs nothing but held steps."""
    table = _processes()
    if tool not in table or table[tool][1] != "S":
        return False
    children = [cmd for parent, _, cmd in table.values() if parent == tool]
    return bool(children) and all(MARKER in cmd for cmd in children)


def _release(gate: Path) -> bool:
    """Open and close the gate's write end: every waiting step goes on."""
    try:
        fd = os.open(gate, os.O_WRONLY | os.O_NONBLOCK)
    except OSError as error:
        if error.errno == errno.ENXIO:  # nobody waits on it (yet)
            return False
        raise
    os.close(fd)
    return True


def run_gated(
    command: Sequence[str], cwd: Path, gate: Path, timeout: float = 120.0
) -> Gated:
    """Run ``command``, opening ``gate`` whenever only held steps are left."""
    if not gate.exists():
        os.mkfifo(gate)
    process = subprocess.Popen(
        list(command),
        cwd=cwd,
        env=tool_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    out: dict[str, str] = {}
    readers = [
        threading.Thread(target=lambda: out.update(stdout=process.stdout.read()))  # type: ignore[union-attr]
    ]
    readers.append(
        threading.Thread(target=lambda: out.update(stderr=process.stderr.read()))  # type: ignore[union-attr]
    )
    for reader in readers:
        reader.start()
    releases, steady = 0, 0
    deadline = time.monotonic() + timeout
    while process.poll() is None:
        if time.monotonic() > deadline:
            process.kill()
            raise TimeoutError(f"{command[0]} did not finish in {timeout} s")
        # Three samples in a row: a state the tool stays in, not a passing one.
        steady = steady + 1 if _idle_on_gate(process.pid) else 0
        if steady >= 3 and _release(gate):
            releases += 1
            steady = 0
        time.sleep(0.02)  # a sampling interval, not a synchronisation
    for reader in readers:
        reader.join()
    return Gated(process.returncode, out["stdout"], out["stderr"], releases)


def hold(gate: Path, command: Sequence[str]) -> int:
    """Wait until the gate opens (a writer comes and goes), then run command."""
    with open(gate, "rb") as pipe:  # blocks until run_gated opens the write end
        pipe.read()  # end of file when it closes it again
    return subprocess.run(list(command)).returncode


def main(argv: Sequence[str]) -> int:
    if len(argv) < 4 or argv[0] != "hold" or argv[2] != "--":
        print("usage: build_optimization_gate hold GATE -- CMD...", file=sys.stderr)
        return 2
    return hold(Path(argv[1]), argv[3:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
