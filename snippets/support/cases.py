"""Run one demo case from the command line and print what it shows.

Every output file a page shows, ``snippets/<topic>/output/<pattern>.<case>.txt``,
is exactly the standard output of::

    python -m snippets.<topic>.<pattern> <case>         # a pattern module
    python -m snippets.<topic>.<pattern>.demo <case>    # a pattern package

and ``tests/test_outputs.py`` runs that command and compares. A demo module
ends with::

    if __name__ == "__main__":
        sys.exit(run_cases({"break": show_break, "pattern": show_pattern}))

Each case is a function of no arguments that returns the lines to print (or
prints them itself and returns None). Exit status: 0 after a case ran, 2 for an
unknown case, 77 when a service it needs is unreachable (the test then skips
locally and fails under ``CI=true``).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Mapping, Sequence

from snippets.support.services import ServiceUnavailable

__all__ = ["SERVICE_UNAVAILABLE", "Case", "run_cases"]

SERVICE_UNAVAILABLE = 77

Case = Callable[[], Iterable[str] | None]


def run_cases(cases: Mapping[str, Case], argv: Sequence[str] | None = None) -> int:
    """Run the case named by the first argument; print its lines."""
    args = list(sys.argv[1:] if argv is None else argv)
    names = ", ".join(sorted(cases))
    if len(args) != 1 or args[0] not in cases:
        print(
            f"usage: python -m <module> CASE   (CASE is one of: {names})",
            file=sys.stderr,
        )
        return 2
    try:
        lines = cases[args[0]]()
        for line in lines or ():
            print(line, flush=True)
    except ServiceUnavailable as error:
        print(error, file=sys.stderr)
        return SERVICE_UNAVAILABLE
    return 0
