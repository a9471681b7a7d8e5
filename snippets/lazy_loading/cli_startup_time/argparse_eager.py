"""``orders`` with argparse, the usual way: every subcommand imported up front."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

# --8<-- [start:eager]
from snippets.lazy_loading.cli_startup_time.commands import report, upload

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="orders")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, module in (("report", report), ("upload", upload)):
        module.add_arguments(sub.add_parser(name, help=module.HELP))
    args = parser.parse_args(argv)
    return report.run(args) if args.command == "report" else upload.run(args)


# --8<-- [end:eager]

if __name__ == "__main__":
    sys.exit(main())
