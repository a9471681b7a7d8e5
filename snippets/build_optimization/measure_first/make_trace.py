"""Why GNU make runs a recipe: ``make --trace`` and ``make --debug=b``.

``--trace`` prints, before each recipe, the makefile and line of the recipe
and the reason: ``update target 'x' due to: y z``, where ``y z`` are the
prerequisites newer than the target (make's ``$?``; for a missing target,
make 4.3 lists them all), or ``target 'x' does not exist`` for a missing
target without prerequisites. A target rebuilt on every run names its
culprit there.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["Reason", "remake_reasons", "trace_reasons"]

TRACE = re.compile(
    r"^(?P<rule>\S+:\d+): (?:update target '(?P<target>[^']+)' due to: (?P<newer>.+)"
    r"|target '(?P<missing>[^']+)' does not exist)$"
)
NEWER = re.compile(
    r"^\s*Prerequisite '(?P<newer>[^']+)' is newer than target '(?P<target>[^']+)'\.$"
)


@dataclass(frozen=True)
class Reason:
    """Why make ran one target's recipe."""

    target: str
    rule: str  # makefile:line of the recipe
    newer: tuple[str, ...]  # empty: the target did not exist


# --8<-- [start:trace]
def trace_reasons(output: str) -> list[Reason]:
    """The reasons ``make --trace`` printed, in the order make ran the recipes."""
    reasons = []
    for line in output.splitlines():
        if (match := TRACE.match(line)) is None:
            continue
        if match["missing"] is not None:
            reasons.append(Reason(match["missing"], match["rule"], ()))
        else:
            newer = tuple(match["newer"].split())
            reasons.append(Reason(match["target"], match["rule"], newer))
    return reasons


# --8<-- [end:trace]


def remake_reasons(debug_output: Iterable[str]) -> list[tuple[str, str]]:
    """(target, newer prerequisite) from the lines of ``make --debug=b``."""
    found = []
    for line in debug_output:
        if match := NEWER.match(line):
            found.append((match["target"], match["newer"]))
    return found
