"""``orders`` with argparse, lazily: a subcommand's module is imported only
when that subcommand runs, so ``orders --help`` imports none of them."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

__all__ = ["COMMANDS", "main"]

# --8<-- [start:lazy]
_PACKAGE = "snippets.lazy_loading.cli_startup_time.commands"

# name -> (module, one-line help): all that `orders --help` needs.
COMMANDS = {
    "report": (f"{_PACKAGE}.report", "Build the monthly orders report"),
    "upload": (f"{_PACKAGE}.upload", "Upload an export to S3"),
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="orders")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (_, help_text) in COMMANDS.items():
        # add_help=False: `orders report --help` reaches the module's parser.
        sub.add_parser(name, help=help_text, add_help=False)
    args, rest = parser.parse_known_args(argv)
    module = importlib.import_module(COMMANDS[args.command][0])  # now, not before
    result: int = module.main(rest)
    return result


# --8<-- [end:lazy]

if __name__ == "__main__":
    sys.exit(main())
