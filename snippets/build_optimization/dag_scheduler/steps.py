"""Two kinds of build step: a compiler subprocess, and CPU-bound Python.

Both are module-level classes with plain fields, so a `ProcessPoolExecutor`
can pickle them to its workers by name.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path

__all__ = ["CompileStep", "DigestStep", "StepFailed"]

COMPILER = "snippets.build_optimization.dag_scheduler.compiler"


# --8<-- [start:compile]
class StepFailed(Exception):
    """A step's command failed; the message is the last line it wrote to stderr."""


@dataclass(frozen=True)
class CompileStep:
    """Build node `n` into the file `out_dir / n` with a "compiler" subprocess.

    The inputs are the files of the node's predecessors. The compiler writes
    the node's name followed by its inputs' contents in parentheses, so the
    final artifact spells out the order the build used.
    """

    out_dir: Path
    graph: Mapping[str, Collection[str]]
    timeout: float = 30.0

    def __call__(self, node: str) -> Path:
        target = self.out_dir / node
        inputs = [str(self.out_dir / d) for d in sorted(self.graph.get(node, ()))]
        command = [sys.executable, "-m", COMPILER, str(target), *inputs]
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=self.timeout
        )
        if done.returncode != 0:
            lines = done.stderr.strip().splitlines()
            raise StepFailed(lines[-1] if lines else f"exit status {done.returncode}")
        return target


# --8<-- [end:compile]


# --8<-- [start:digest]
@dataclass(frozen=True)
class DigestStep:
    """A CPU-bound step in Python: an iterated SHA-256 over the inputs' digests.

    Pure-Python loops hold the GIL, so such steps only run in parallel in a
    `ProcessPoolExecutor`. The step and its arguments are pickled to the
    worker: keep it a module-level class with plain fields.
    """

    out_dir: Path
    graph: Mapping[str, Collection[str]]
    rounds: int = 50_000

    def __call__(self, node: str) -> str:
        digest = hashlib.sha256(node.encode())
        for dep in sorted(self.graph.get(node, ())):
            digest.update((self.out_dir / f"{dep}.sha256").read_bytes())
        value = digest.digest()
        for _ in range(self.rounds):
            value = hashlib.sha256(value).digest()
        target = self.out_dir / f"{node}.sha256"
        target.with_suffix(".tmp").write_text(value.hex())
        os.replace(target.with_suffix(".tmp"), target)
        return value.hex()[:12]


# --8<-- [end:digest]
