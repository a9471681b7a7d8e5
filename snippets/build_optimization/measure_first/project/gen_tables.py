"""Write tables.c: COUNT small functions, a compile that takes a while.

    python gen_tables.py OUTPUT COUNT

The compile time grows with COUNT, so the slowest step of the build is
chosen by the size of the source, not by a clock.
"""

from __future__ import annotations

import sys
from pathlib import Path


def main(output: str, count: int) -> None:
    lines = [
        f"int table_{i}(int x) {{ return (x * {i + 3}) ^ (x >> {i % 7}); }}"
        for i in range(count)
    ]
    lines.append("int table_sum(int x) {")
    lines.append("  int total = 0;")
    lines += [f"  total += table_{i}(x);" for i in range(count)]
    lines += ["  return total;", "}"]
    Path(output).write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
