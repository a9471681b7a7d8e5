"""Where test time goes: pytest's ``--durations`` report and JUnit XML.

``pytest --durations=N`` prints the N slowest phases (setup, call and
teardown separately) after the run, hiding those under ``--durations-min``
(0.005 s by default). ``--junitxml=FILE`` keeps one ``time`` per test,
setup and teardown included (``junit_duration_report = total``, the
default), for a CI job to compare across runs.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Phase", "TestTime", "durations_report", "slowest_in_junit"]

DURATION = re.compile(
    r"^(?P<seconds>\d+\.\d+)s (?P<when>setup|call|teardown)\s+(?P<test>\S+)$"
)


@dataclass(frozen=True)
class Phase:
    """One line of pytest's slowest-durations report."""

    test: str
    when: str  # setup, call or teardown
    seconds: float


@dataclass(frozen=True)
class TestTime:
    """One ``<testcase>`` of a JUnit XML report."""

    __test__ = False  # not a test class, whatever pytest's name rules say

    test: str  # classname::name
    seconds: float


# --8<-- [start:durations]
def durations_report(output: str) -> list[Phase]:
    """The phases pytest listed under "slowest durations", slowest first."""
    return [
        Phase(match["test"], match["when"], float(match["seconds"]))
        for line in output.splitlines()
        if (match := DURATION.match(line))
    ]


# --8<-- [end:durations]


# --8<-- [start:junit]
def slowest_in_junit(report: Path, count: int) -> list[TestTime]:
    """The ``count`` slowest tests of a JUnit XML file, slowest first."""
    tests = [
        TestTime(
            f"{case.get('classname')}::{case.get('name')}", float(case.get("time", 0))
        )
        for case in ET.parse(report).getroot().iter("testcase")
    ]
    return sorted(tests, key=lambda t: (-t.seconds, t.test))[:count]


# --8<-- [end:junit]
