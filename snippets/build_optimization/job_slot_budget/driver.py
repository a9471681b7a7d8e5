"""A small build driver that make can run as a recipe, inside make's budget.

    python -m snippets.build_optimization.job_slot_budget.driver run --count N -- CMD

runs N copies of CMD (each with its index appended), every one while it
holds a job slot: make's jobserver when it is reachable, or one job at a time
when make announces one that is not.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from snippets.build_optimization.job_slot_budget.jobserver import (
    parse_makeflags,
    slots_from_environment,
)
from snippets.build_optimization.job_slot_budget.slots import LocalSlots
from snippets.build_optimization.job_slot_budget.steps import run_jobs

__all__: list[str] = []  # a program; its API is `run_jobs` in `steps`


# --8<-- [start:main]
def main(argv: Sequence[str] | None = None) -> int:
    """`run` N copies of a command under the budget."""
    parser = argparse.ArgumentParser(prog="job_slot_budget.driver")
    sub = parser.add_subparsers(dest="mode", required=True)
    run = sub.add_parser("run", help="run COMMAND --count times, with index")
    run.add_argument("--count", type=int, required=True)
    run.add_argument("--own-pool", type=int, help="ignore make: N local slots")
    run.add_argument("--slot-timeout", type=float, default=600.0)
    run.add_argument("command", nargs="+")
    args = parser.parse_args(argv)
    commands = [[*args.command, str(index)] for index in range(args.count)]
    if parse_makeflags(os.environ.get("MAKEFLAGS", "")).dry_run:
        print(*(" ".join(command) for command in commands), sep="\n")
        return 0  # make -n still runs '+' lines: honour it
    slots = LocalSlots(args.own_pool) if args.own_pool else slots_from_environment()
    print(f"driver: {slots}", flush=True)
    codes = run_jobs(slots, commands, args.slot_timeout)
    return max(codes, default=0)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="driver: %(message)s")
    sys.exit(main())
# --8<-- [end:main]
