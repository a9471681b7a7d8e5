"""Print the modules a statement imports: ``python -m snippets.support.import_probe
STATEMENT``.

It runs STATEMENT in this fresh interpreter and prints, one per line and in
import order, the names that appeared in ``sys.modules`` meanwhile. It
imports nothing itself beyond what ``python -m`` already did, so the list is
the statement's own cost.
"""

import sys

__all__ = ["main"]


def main(argv: list[str]) -> int:
    """Run the statement in ``argv[0]``; print the modules it imported."""
    if len(argv) != 1:
        print(
            "usage: python -m snippets.support.import_probe STATEMENT", file=sys.stderr
        )
        return 2
    before = set(sys.modules)
    exec(argv[0], {})
    print(*[name for name in sys.modules if name not in before], sep="\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
