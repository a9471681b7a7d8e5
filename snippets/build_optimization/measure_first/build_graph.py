"""Total work and the critical path of one Ninja build.

The graph comes from ``ninja -t graph`` (Graphviz text: one node per file,
one node per command with several inputs or outputs); the times come from
``.ninja_log``. The critical path is the chain of steps, each waiting for
the one before it, whose durations add up to the most: no number of cores
makes the build shorter than that chain.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from snippets.build_optimization.measure_first.ninja_log import Step

__all__ = ["Profile", "bottleneck", "critical_path", "ninja_graph", "profile"]

NODE = re.compile(
    r'^"(?P<id>[^"]+)" \[label="(?P<label>[^"]*)"(?P<edge>, shape=ellipse)?'
)
ARROW = re.compile(r'^"(?P<src>[^"]+)" -> "(?P<dst>[^"]+)"')


# --8<-- [start:graph]
def ninja_graph(build_dir: Path, targets: Sequence[str] = ()) -> dict[str, set[str]]:
    """file -> the files its command reads, from ``ninja -t graph``.

    Explicit, implicit and order-only inputs all count: each of them must
    exist before the command starts. Headers found through depfiles are
    not in the graph; they are sources, which take no time to build.
    """
    dot = subprocess.run(
        ["ninja", "-C", str(build_dir), "-t", "graph", *targets],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    files: dict[str, str] = {}  # node id -> path
    commands: set[str] = set()  # ids of command nodes
    arrows: list[tuple[str, str]] = []
    for line in dot.splitlines():
        if node := NODE.match(line):
            if node["edge"]:
                commands.add(node["id"])
            else:
                files[node["id"]] = node["label"]
        elif arrow := ARROW.match(line):
            arrows.append((arrow["src"], arrow["dst"]))
    reads: dict[str, set[str]] = {c: set() for c in commands}  # command -> inputs
    for source, target in arrows:
        if target in commands:
            reads[target].add(source)
    inputs: dict[str, set[str]] = {path: set() for path in files.values()}
    for source, target in arrows:
        if target in files:  # an input file, or a command, writes target
            found = reads[source] if source in commands else {source}
            inputs[files[target]] |= {files[i] for i in found}
    return inputs


# --8<-- [end:graph]


# --8<-- [start:critical]
def critical_path(steps: Sequence[Step], inputs: Mapping[str, set[str]]) -> list[Step]:
    """The chain of steps with the largest sum of durations, first step first.

    A file no step wrote (a source, a phony target) takes no time but
    passes its inputs' chain on. Ties go to the name that sorts first.
    """
    step_of = {output: step for step in steps for output in step.outputs}
    best: dict[str, tuple[int, list[Step]]] = {}

    def longest(path: str, seen: frozenset[str]) -> tuple[int, list[Step]]:
        if path in best:
            return best[path]
        if path in seen:
            raise ValueError(f"dependency cycle through {path}")
        chain: tuple[int, list[Step]] = (0, [])
        for source in sorted(inputs.get(path, ())):
            candidate = longest(source, seen | {path})
            if candidate[0] > chain[0]:
                chain = candidate
        if (step := step_of.get(path)) is not None and step not in chain[1]:
            chain = (chain[0] + step.duration_ms, [*chain[1], step])
        best[path] = chain
        return chain

    ends = sorted(set(inputs) | set(step_of))
    return max((longest(path, frozenset()) for path in ends), key=lambda c: c[0])[1]


# --8<-- [end:critical]


# --8<-- [start:bound]
@dataclass(frozen=True)
class Profile:
    """Where the time of one build went."""

    steps: int
    total_ms: int  # the sum of every step's duration: the work
    critical_ms: int  # the sum along the critical path
    critical: tuple[Step, ...]

    def lower_bound_ms(self, jobs: int) -> float:
        """No schedule on ``jobs`` cores finishes sooner than this."""
        return max(self.total_ms / jobs, self.critical_ms)


def profile(steps: Sequence[Step], inputs: Mapping[str, set[str]]) -> Profile:
    """The total work, the critical path and its length, for ``bottleneck``."""
    chain = critical_path(steps, inputs)
    total = sum(step.duration_ms for step in steps)
    critical = sum(step.duration_ms for step in chain)
    return Profile(len(steps), total, critical, tuple(chain))


def bottleneck(result: Profile, jobs: int) -> str:
    """What limits a build on ``jobs`` cores, and so what to change."""
    if result.critical_ms >= result.total_ms / jobs:
        return "critical path: shorten the chain (split it, cache it)"
    return "total work: add cores, or cache to do less work"


# --8<-- [end:bound]
