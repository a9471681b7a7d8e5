"""A stand-in compiler: concatenates its inputs into its target.

    python -m snippets.build_optimization.dag_scheduler.compiler TARGET [INPUT...]

It fails the way a real compiler does when an input is missing, and writes
its target through a temporary file and a rename.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

__all__: list[str] = []


# --8<-- [start:compiler]
def main(argv: Sequence[str]) -> int:
    """Write TARGET's name followed by its inputs' contents in parentheses."""
    target, *inputs = argv
    parts = []
    for path in inputs:
        try:
            with open(path, encoding="utf-8") as source:
                parts.append(source.read())
        except FileNotFoundError:
            print(f"FileNotFoundError: {os.path.basename(path)}", file=sys.stderr)
            return 1
    text = os.path.basename(target) + (f"({' '.join(parts)})" if parts else "")
    with open(target + ".tmp", "w", encoding="utf-8") as out:
        out.write(text)
    os.replace(target + ".tmp", target)  # readers never see half a file
    return 0


# --8<-- [end:compiler]

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
