"""Child programs of the code-splitting demos and tests, run with ``python -m``.

``python -m snippets.support.code_splitting_children import-hygiene ROOT PACKAGE
MODE`` serves the first requests of one import-hygiene attempt in a fresh
interpreter (so every first import really is the first) and prints one outcome
per thread.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from snippets.code_splitting.import_hygiene import first_requests

__all__ = ["main"]


def main(argv: Sequence[str]) -> int:
    """Run the child program named by the first argument."""
    match list(argv):
        case ["import-hygiene", root, package, mode]:
            print(*first_requests(Path(root), package, mode))
            return 0
        case _:
            print(
                "usage: python -m snippets.support.code_splitting_children "
                "import-hygiene ROOT PACKAGE MODE",
                file=sys.stderr,
            )
            return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
