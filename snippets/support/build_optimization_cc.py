"""A compiler wrapper that records when each compile ran.

Put it in front of the real compiler, as ccache is put:

    CC="python -m snippets.support.build_optimization_cc gcc"

For every command with ``-c`` it appends ``START END SOURCE`` (monotonic
seconds) to ``$CC_LOG``. With ``$CC_GAUGE`` and ``$CC_WANT`` set, each
compile also counts itself in a `FileGauge` and, once compiled, holds until
``CC_WANT`` compiles ran at once (at most ``$CC_HOLD`` seconds), so the peak a
test reads is exact rather than a matter of timing. Links run unchanged.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from snippets.support.build_optimization_gauge import FileGauge

__all__ = ["ROOT", "peak_overlap", "read_log", "setuptools_python", "wrapped_cc"]

ROOT = Path(__file__).resolve().parents[2]


def setuptools_python() -> str:
    """This interpreter, once it is known to have setuptools.

    Python 3.12 removed distutils and its venvs come without setuptools; the
    project's locks install it (requirements/snippets.lock).
    """
    import importlib.util

    from snippets.support.services import ServiceUnavailable

    if importlib.util.find_spec("setuptools") is None:
        raise ServiceUnavailable(
            "no setuptools in this Python; install it with `pip install setuptools`"
        )
    return sys.executable


def wrapped_cc(
    log: Path, gauge: Path | None = None, want: int = 1, hold: float = 2.0
) -> dict[str, str]:
    """Environment that puts this wrapper in front of gcc for setuptools."""
    env = {
        "CC": f"{sys.executable} -m snippets.support.build_optimization_cc gcc",
        "CC_LOG": str(log),
        "PYTHONPATH": str(ROOT),
    }
    if gauge is not None:
        env |= {"CC_GAUGE": str(gauge), "CC_WANT": str(want), "CC_HOLD": str(hold)}
    return env


def read_log(path: Path) -> list[tuple[float, float, str]]:
    """(start, end, source) of every compile the wrapper logged."""
    rows = []
    for line in path.read_text().splitlines():
        start, end, source = line.split(" ", 2)
        rows.append((float(start), float(end), source))
    return rows


def peak_overlap(rows: Sequence[tuple[float, float, str]]) -> int:
    """The most compiles whose [start, end] intervals overlapped at once."""
    events = sorted(
        [(start, 1) for start, _, _ in rows] + [(end, -1) for _, end, _ in rows]
    )
    running = peak = 0
    for _, step in events:  # at equal times an end (-1) sorts before a start
        running += step
        peak = max(peak, running)
    return peak


def main(argv: Sequence[str]) -> int:
    if "-c" not in argv:
        return subprocess.run(list(argv)).returncode
    gauge_path = os.environ.get("CC_GAUGE")
    gauge = FileGauge(Path(gauge_path)) if gauge_path else None
    if gauge:
        gauge.enter()
    start = time.monotonic()
    try:
        code = subprocess.run(list(argv)).returncode
        end = time.monotonic()
        if gauge:
            want = int(os.environ.get("CC_WANT", "1"))
            gauge.hold(want, float(os.environ.get("CC_HOLD", "2")), linger=0.2)
    finally:
        if gauge:
            gauge.leave()
    source = next((a for a in argv if a.endswith(".c")), "?")
    log = os.environ.get("CC_LOG")
    if log:
        line = f"{start:.6f} {end:.6f} {source}\n".encode()
        fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)  # one write with O_APPEND: lines never interleave
        finally:
            os.close(fd)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
