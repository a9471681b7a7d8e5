"""Tests for snippets/build_optimization/job_slot_budget/.

Peak concurrency is made exact, not a matter of timing: every job holds its
slot until the peak reaches the most the configuration can allow (16 for two
pools of 4, 4 for a budget of 4), then lingers a moment so that one job too
many would show up. The jobserver client is tested against real pipes and a
real named pipe, and the whole budget under the real GNU make installed here
(`make -j4` running the driver as a recipe).
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from snippets.build_optimization.job_slot_budget import (
    Jobserver,
    JobserverUnavailable,
    LocalSlots,
    parse_makeflags,
    run_step,
    slots_from_environment,
    within_budget,
)
from snippets.build_optimization.job_slot_budget.demo import (
    OWN_POOL,
    POOL,
    SHARED,
    build_all,
    pools,
    run_steps,
    show_lost,
)
from snippets.build_optimization.job_slot_budget.steps import run_step_leaky
from snippets.support import build_optimization_make as make
from snippets.support.build_optimization_gauge import FileGauge, PeakGauge
from snippets.support.services import ServiceUnavailable
from tests.conftest import unavailable

# --------------------------------------------------------------------------- #
# In one process: nested pools, and one BoundedSemaphore passed down
# --------------------------------------------------------------------------- #


def test_nested_pools_run_pool_squared_jobs() -> None:
    gauge = PeakGauge()
    build_all(POOL, POOL, POOL, gauge.job(want=POOL * POOL))
    print(f"nested pools of {POOL}: peak {gauge.peak} jobs at once")
    assert gauge.peak == POOL * POOL
    assert gauge.peak > POOL  # the budget is exceeded four times over


def test_one_shared_semaphore_caps_the_peak() -> None:
    gauge = PeakGauge()
    slots = LocalSlots(POOL)
    action = within_budget(slots, gauge.job(want=POOL, linger=0.1), timeout=10)
    build_all(POOL, POOL, POOL, action)
    print(f"nested pools, {slots}: peak {gauge.peak} jobs at once")
    assert gauge.peak == POOL


def test_bounded_semaphore_refuses_a_release_too_many() -> None:
    slots = LocalSlots(1)
    token = slots.acquire(timeout=1)
    slots.release(token)
    with pytest.raises(ValueError, match="twice"):
        slots.release(token)


# --------------------------------------------------------------------------- #
# MAKEFLAGS
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize(
    ("makeflags", "jobs", "auth", "dry_run"),
    [
        (" -j4 --jobserver-auth=3,4", 4, "3,4", False),  # make 4.3, as seen here
        ("ks -j4 --jobserver-auth=3,4", 4, "3,4", False),
        (" -j4 --jobserver-auth=fifo:/tmp/GMfifo81", 4, "fifo:/tmp/GMfifo81", False),
        ("-j --jobserver-fds=5,6 --jobserver-auth=5,6", 0, "5,6", False),
        (
            " -j8 --jobserver-auth=3,4 --jobserver-auth=fifo:/tmp/x",
            8,
            "fifo:/tmp/x",
            False,
        ),
        (" --jobserver-auth=fifo:/tmp/x -j2 --jobserver-auth=7,8", 2, "7,8", False),
        ("n -j4 --jobserver-auth=3,4", 4, "3,4", True),
        (" -j", 0, None, False),
        ("", None, None, False),
    ],
)
def test_parse_makeflags_takes_the_last_auth(
    makeflags: str, jobs: int | None, auth: str | None, dry_run: bool
) -> None:
    flags = parse_makeflags(makeflags)
    assert (flags.jobs, flags.auth, flags.dry_run) == (jobs, auth, dry_run)


# --------------------------------------------------------------------------- #
# The jobserver client, on real pipes
# --------------------------------------------------------------------------- #


def fill(write_fd: int, tokens: bytes) -> None:
    """Pre-load a jobserver with tokens, as the top-level make does."""
    assert os.write(write_fd, tokens) == len(tokens)


def drain(read_fd: int) -> bytes:
    """Every token now in the jobserver, without blocking."""
    os.set_blocking(read_fd, False)
    try:
        return os.read(read_fd, 1024)
    except BlockingIOError:
        return b""
    finally:
        os.set_blocking(read_fd, True)


@pytest.fixture
def pipe_jobserver() -> Iterator[tuple[int, int]]:
    """An anonymous pipe, passed the way make 4.3 passes it: `R,W`."""
    read_fd, write_fd = os.pipe()
    yield read_fd, write_fd
    os.close(read_fd)
    os.close(write_fd)


@pytest.fixture
def fifo_jobserver(tmp_path: Path) -> Iterator[tuple[Path, int]]:
    """A named pipe, the way make 4.4 and later create it: `fifo:PATH`."""
    path = tmp_path / "GMfifo"
    os.mkfifo(path)
    holder = os.open(path, os.O_RDWR)  # make keeps it open for the whole build
    yield path, holder
    os.close(holder)


def check_budget(jobserver: Jobserver, read_fd: int, tokens: bytes) -> None:
    """Implicit slot plus one per token, then nothing; the same bytes go back."""
    held = [jobserver.acquire(timeout=1) for _ in range(len(tokens) + 1)]
    assert held[0].value is None  # the implicit slot comes first, for free
    assert sorted(token.value or b"" for token in held[1:]) == sorted(
        bytes([byte]) for byte in tokens
    )
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        jobserver.acquire(timeout=0.2)
    assert time.monotonic() - started >= 0.2
    for token in held:
        jobserver.release(token)
    assert sorted(drain(read_fd)) == sorted(tokens)  # implicit slot not written


def test_pipe_style_client(pipe_jobserver: tuple[int, int]) -> None:
    read_fd, write_fd = pipe_jobserver
    fill(write_fd, b"abc")  # make writes '+'; any byte must come back as read
    jobserver = Jobserver(f"{read_fd},{write_fd}")
    try:
        assert os.get_blocking(read_fd)  # our O_NONBLOCK is on a private copy
        check_budget(jobserver, read_fd, b"abc")
    finally:
        jobserver.close()
    assert os.fstat(read_fd) and os.fstat(write_fd)  # make's descriptors stay


def test_fifo_style_client(fifo_jobserver: tuple[Path, int]) -> None:
    path, holder = fifo_jobserver
    fill(holder, b"+++")
    jobserver = Jobserver(f"fifo:{path}")
    try:
        check_budget(jobserver, holder, b"+++")
    finally:
        jobserver.close()


def test_released_implicit_slot_wakes_a_waiting_thread(
    pipe_jobserver: tuple[int, int],
) -> None:
    read_fd, write_fd = pipe_jobserver
    jobserver = Jobserver(f"{read_fd},{write_fd}")  # no tokens: only the implicit
    implicit = jobserver.acquire(timeout=1)
    waiting, got = threading.Event(), threading.Event()

    def second() -> None:
        waiting.set()
        jobserver.release(jobserver.acquire(timeout=5))
        got.set()

    thread = threading.Thread(target=second)
    thread.start()
    assert waiting.wait(timeout=5)
    assert not got.wait(timeout=0.2)  # nothing free yet
    jobserver.release(implicit)
    assert got.wait(timeout=2)  # woken by the release, not by its timeout
    thread.join(timeout=5)
    jobserver.close()


def test_double_release_is_refused(pipe_jobserver: tuple[int, int]) -> None:
    read_fd, write_fd = pipe_jobserver
    fill(write_fd, b"+")
    jobserver = Jobserver(f"{read_fd},{write_fd}")
    jobserver.acquire(timeout=1)  # implicit
    token = jobserver.acquire(timeout=1)
    jobserver.release(token)
    with pytest.raises(ValueError, match="twice"):
        jobserver.release(token)  # would hand make a slot it never had
    assert drain(read_fd) == b"+"
    jobserver.close()


def closed_fd_pair() -> str:
    """Two descriptor numbers that are not open in this process."""
    free = [fd for fd in range(900, 1000) if not fd_open(fd)][:2]
    return f"{free[0]},{free[1]}"


def fd_open(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, "3 local slots"),  # not under make: our own budget
        ({"MAKEFLAGS": ""}, "1 local slot"),  # plain `make`: one job at a time
        ({"MAKEFLAGS": " -j"}, "3 local slots"),  # `make -j`: no limit from make
        ({"MAKEFLAGS": " -j4 --jobserver-auth=-1,-1"}, "1 local slot"),
        ({"MAKEFLAGS": " -j4 --jobserver-auth=sem:x"}, "1 local slot"),
        ({"MAKEFLAGS": " -j4 --jobserver-auth=fifo:/nonexistent"}, "1 local slot"),
        ({"MAKEFLAGS": "CLOSED"}, "1 local slot"),  # recipe not marked '+'
    ],
    ids=["no-make", "serial", "unlimited", "disabled", "unknown", "no-fifo", "no-plus"],
)
def test_without_a_usable_jobserver_run_one_job(
    environ: dict[str, str], expected: str, caplog: pytest.LogCaptureFixture
) -> None:
    if environ.get("MAKEFLAGS") == "CLOSED":
        environ = {"MAKEFLAGS": f" -j4 --jobserver-auth={closed_fd_pair()}"}
    with caplog.at_level(logging.WARNING):
        slots = slots_from_environment(environ, default=3)
    assert str(slots) == expected
    if "--jobserver-auth" in environ.get("MAKEFLAGS", ""):
        assert "cannot use make's jobserver" in caplog.text
    else:
        assert not caplog.text


def test_closed_descriptors_say_what_to_fix() -> None:
    with pytest.raises(JobserverUnavailable, match="'\\+'"):
        Jobserver(closed_fd_pair())


def test_a_descriptor_that_is_not_a_pipe_is_not_trusted(tmp_path: Path) -> None:
    # Without '+', make closes 3 and 4; anything opened later may get them.
    with open(tmp_path / "some-file", "w") as reused:
        auth = f"{reused.fileno()},{reused.fileno()}"
        with pytest.raises(JobserverUnavailable):
            Jobserver(auth)


# --------------------------------------------------------------------------- #
# A leaked token: no finally, and the build stops
# --------------------------------------------------------------------------- #


def test_leaked_tokens_stop_the_build() -> None:
    for _, slots, close in pools():
        try:
            assert run_steps(slots, run_step_leaky, 6, {1, 3}) == (2, 2, 4)
        finally:
            close()
    for _, slots, close in pools():
        try:
            assert run_steps(slots, run_step, 6, {1, 3}) == (4, 2, None)
            both = [slots.acquire(timeout=1), slots.acquire(timeout=1)]  # all back
            for token in both:
                slots.release(token)
        finally:
            close()


# --------------------------------------------------------------------------- #
# Under the real GNU make
# --------------------------------------------------------------------------- #


def run_make(
    where: Path, *goals: str, count: int = 4, job: str = "", flags: str = "-s"
) -> subprocess.CompletedProcess[str]:
    """`make -j4` on the page's Makefile; skip (fail in CI) without GNU make."""
    try:
        print(make.make_version())
        result = make.run_make(where, *goals, count=count, job=job, flags=flags)
    except ServiceUnavailable as error:
        unavailable("GNU make", str(error))
        raise
    print(result.stdout + result.stderr)
    return result


def peak(where: Path) -> int:
    return make.peak(where)


def test_make_and_a_driver_with_its_own_pool_exceed_the_budget(tmp_path: Path) -> None:
    # Like a tool that ignores the jobserver (Ninja before 1.13): its own -j4.
    result = run_make(tmp_path, *OWN_POOL, job="--want 7")
    assert result.returncode == 0, result.stderr
    assert peak(tmp_path) == 7  # 3 make recipes + 4 driver jobs
    assert peak(tmp_path) > 4


def test_make_and_a_jobserver_driver_share_four_slots(tmp_path: Path) -> None:
    result = run_make(tmp_path, *SHARED, job="--want 4 --linger 0.3")
    assert result.returncode == 0, result.stderr
    assert "driver: make jobserver" in result.stdout
    assert FileGauge(tmp_path / "gauge.json").read()["jobs"] == 7
    assert peak(tmp_path) == 4


def test_without_plus_the_driver_warns_and_runs_one_job(tmp_path: Path) -> None:
    result = run_make(tmp_path, "driver-no-plus", count=3, job="--want 2 --hold 0.3")
    assert result.returncode == 0, result.stderr
    assert "mark the recipe line with '+'" in result.stderr
    assert "driver: 1 local slot" in result.stdout
    assert peak(tmp_path) == 1


def test_dry_run_runs_nothing(tmp_path: Path) -> None:
    result = run_make(tmp_path, "driver", count=2, flags="-n")
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("build_optimization_gauge") == 3  # '+' line, 2 jobs
    assert not (tmp_path / "gauge.json").exists()  # but no job ran


def test_make_reports_a_lost_token_only_at_the_end() -> None:
    try:
        dollar, lost, status = show_lost()
    except ServiceUnavailable as error:
        unavailable("GNU make", str(error))
        raise
    print(dollar, lost, status, sep="\n")
    assert re.fullmatch(
        r"make: INTERNAL: Exiting with 3 jobserver tokens available; should be 4!",
        lost,
    )
    assert status == "exit status 0"  # the build "succeeded"
