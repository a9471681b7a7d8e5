"""The cases the job-slot-budget page shows.

    python -m snippets.build_optimization.job_slot_budget.demo nested
    python -m snippets.build_optimization.job_slot_budget.demo leak
    python -m snippets.build_optimization.job_slot_budget.demo make
    python -m snippets.build_optimization.job_slot_budget.demo no_plus
    python -m snippets.build_optimization.job_slot_budget.demo lost

`build_all` is the nesting without the pattern: two levels of pools, each
sized to the CPU count. The ``make`` cases run the GNU make installed here.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from snippets.build_optimization.job_slot_budget import (
    Jobserver,
    LocalSlots,
    SlotPool,
    run_step,
    within_budget,
)
from snippets.build_optimization.job_slot_budget.steps import run_step_leaky
from snippets.support.build_optimization_gauge import PeakGauge
from snippets.support.build_optimization_make import (
    make_env,
    make_version,
    peak,
    run_make,
)
from snippets.support.cases import run_cases

__all__: list[str] = []  # the cases a page shows; the API is the package

POOL = 4  # each pool is sized to "the CPU count"; 4 here, whatever the machine


# --8<-- [start:nested]
def build_all(
    targets: int, actions: int, pool_size: int, run_action: Callable[[], None]
) -> None:
    """Run `targets` targets, each with `actions` actions, on two levels of pools.

    The outer pool stands for make running targets, the inner one for the tool
    each target calls (Ninja, a compiler with threads, a test runner). Both are
    sized to the CPU count, as their defaults are.
    """

    def build_target() -> None:
        with ThreadPoolExecutor(max_workers=pool_size) as inner:
            for future in [inner.submit(run_action) for _ in range(actions)]:
                future.result()

    with ThreadPoolExecutor(max_workers=pool_size) as outer:
        for future in [outer.submit(build_target) for _ in range(targets)]:
            future.result()


# --8<-- [end:nested]


def show_nested() -> list[str]:
    """Peak jobs of two levels of pools, without and with one shared budget."""
    naive, budgeted = PeakGauge(), PeakGauge()
    build_all(POOL, POOL, POOL, naive.job(want=POOL * POOL))
    slots = LocalSlots(POOL)
    build_all(POOL, POOL, POOL, within_budget(slots, budgeted.job(want=POOL)))
    return [
        f"{POOL} targets x {POOL} actions, every pool sized {POOL}, budget {POOL}",
        f"two levels of pools            peak {naive.peak:>2} jobs at once",
        f"same pools, one shared pool    peak {budgeted.peak:>2} jobs at once",
    ]


Runner = Callable[[SlotPool, Callable[[], None], Callable[[], None]], None]


def run_steps(
    slots: SlotPool, runner: Runner, steps: int, failing: set[int]
) -> tuple[int, int, int | None]:
    """Run steps one after another: (ran, failed, step stuck waiting or None)."""
    ran = failed = 0
    for index in range(steps):

        def prepare(index: int = index) -> None:
            if index in failing:
                raise OSError(f"step {index}: cannot create the output directory")

        try:
            runner(slots, prepare, lambda: None)
        except TimeoutError:  # an OSError too: test it first
            return ran, failed, index  # no slot will ever come back
        except OSError:
            failed += 1
        else:
            ran += 1
    return ran, failed, None


def pools() -> Iterator[tuple[str, SlotPool, Callable[[], None]]]:
    """Two slots each: a BoundedSemaphore, and make's pipe (implicit + 1)."""
    yield "2 local slots", LocalSlots(2), lambda: None
    read_fd, write_fd = os.pipe()
    os.write(write_fd, b"+")  # the one token a `make -j2` would put in
    jobserver = Jobserver(f"{read_fd},{write_fd}")

    def close() -> None:
        jobserver.close()
        os.close(read_fd)
        os.close(write_fd)

    yield "make jobserver, implicit + 1", jobserver, close


def show_leak() -> list[str]:
    """Six steps, two fail before they run: with and without `finally`."""
    lines = ["6 steps, steps 1 and 3 fail before they run, 2 slots"]
    for label, slots, close in pools():
        ran, failed, stuck = run_steps(slots, run_step_leaky, 6, {1, 3})
        lines.append(
            f"{label:<30} no finally: {ran} ran, {failed} failed, "
            f"step {stuck} found no slot"
        )
        close()
    for label, slots, close in pools():
        ran, failed, stuck = run_steps(slots, run_step, 6, {1, 3})
        both = [slots.acquire(timeout=1), slots.acquire(timeout=1)]  # all back?
        for token in both:
            slots.release(token)
        back = "both slots back" if stuck is None else f"step {stuck} stuck"
        lines.append(f"{label:<30} finally:    {ran} ran, {failed} failed, {back}")
        close()
    return lines


OWN_POOL = ("a", "b", "c", "driver-own-pool")
SHARED = ("a", "b", "c", "driver")


def show_make() -> list[str]:
    """`make -j4` with a driver that brings its own pool, and one that joins."""
    rows = ["make -j4: recipes a, b, c and a driver that runs 4 jobs"]
    with tempfile.TemporaryDirectory() as scratch:
        for label, goals, job in [
            ("driver with its own pool of 4", OWN_POOL, "--want 7"),
            ("driver as a '+' recipe", SHARED, "--want 4 --linger 0.3"),
        ]:
            case = Path(scratch) / goals[-1]
            case.mkdir()
            result = run_make(case, *goals, job=job)
            if result.returncode != 0:
                raise RuntimeError(f"make failed:\n{result.stderr}")
            rows.append(f"{label:<32} peak {peak(case)} jobs at once")
    return rows


def show_no_plus() -> list[str]:
    """The driver on a recipe line without '+': a warning, then one job."""
    with tempfile.TemporaryDirectory() as scratch:
        where = Path(scratch)
        result = run_make(where, "driver-no-plus", count=3, job="--want 2 --hold 0.3")
        if result.returncode != 0:
            raise RuntimeError(f"make failed:\n{result.stderr}")
        return [
            result.stderr.strip(),
            result.stdout.strip(),
            f"peak {peak(where)} job",
        ]


def show_lost() -> list[str]:
    """A recipe that keeps a token: make says so only when it exits."""
    make_version()
    with tempfile.TemporaryDirectory() as scratch:
        leaky = f"{sys.executable} -m snippets.support.build_optimization_make leak"
        (Path(scratch) / "Makefile").write_text(f"all:\n\t+@{leaky}\n")
        result = subprocess.run(
            ["make", "-j4"],
            cwd=scratch,
            env=make_env(),
            capture_output=True,
            text=True,
            timeout=60,
        )
    lost = re.search(r"make: INTERNAL: Exiting with .*", result.stderr)
    said = lost.group(0) if lost else "(make reported nothing)"
    return ["$ make -j4", said, f"exit status {result.returncode}"]


if __name__ == "__main__":
    sys.exit(
        run_cases(
            {
                "nested": show_nested,
                "leak": show_leak,
                "make": show_make,
                "no_plus": show_no_plus,
                "lost": show_lost,
            }
        )
    )
