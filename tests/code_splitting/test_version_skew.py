"""Tests for snippets/code_splitting/version_skew.py.

A real HTTP server on loopback serves the parts. The host holds every 404 until
all clients have asked, so concurrent failures happen together on every run.
"""

from __future__ import annotations

import hashlib
import json
import threading
from pathlib import Path

import pytest

from snippets.code_splitting.version_skew import (
    MissingPart,
    SkewSafeLoader,
    deploy,
    fetch_manifest,
    fetch_part,
)
from snippets.code_splitting.version_skew.naive import NaiveLoader, PinnedLoader
from snippets.support.code_splitting_skew import PartHost, release, run

CLIENTS = 8
SETTINGS = release("x")["settings"]


def part_files(root: Path) -> set[str]:
    return {path.name for path in (root / "parts").iterdir()}


def test_break_a_stale_client_loads_a_deleted_part(tmp_path: Path) -> None:
    outcome = run(tmp_path, PinnedLoader, clients=CLIENTS)
    assert outcome.results == {"MissingPart": CLIENTS}
    assert outcome.manifest_fetches == 0


def test_break_reload_on_every_error_is_a_storm(tmp_path: Path) -> None:
    healthy = run(tmp_path / "a", NaiveLoader, clients=CLIENTS)
    assert healthy.results == {"report v2": CLIENTS}
    assert healthy.manifest_fetches == CLIENTS  # one per failure, not one in all
    broken = run(tmp_path / "b", NaiveLoader, v2_broken=True, clients=CLIENTS)
    assert broken.results == {"MissingPart": CLIENTS}
    assert broken.manifest_fetches == CLIENTS * 20  # every attempt, every client


def test_fix_concurrent_failures_share_one_reload(tmp_path: Path) -> None:
    outcome = run(tmp_path, SkewSafeLoader, clients=CLIENTS)
    assert outcome.results == {"report v2": CLIENTS}
    assert outcome.manifest_fetches == 1


def test_fix_broken_release_fails_loudly_after_one_reload(tmp_path: Path) -> None:
    outcome = run(tmp_path, SkewSafeLoader, v2_broken=True, clients=CLIENTS)
    assert outcome.results == {"MissingPart": CLIENTS}
    assert outcome.manifest_fetches == 1


def test_fix_grace_period_keeps_old_parts(tmp_path: Path) -> None:
    outcome = run(tmp_path, PinnedLoader, keep_previous=1, clients=CLIENTS)
    assert outcome.results == {"report v1": CLIENTS}
    assert outcome.manifest_fetches == 0


def test_one_reload_per_stale_version_per_cooldown(tmp_path: Path) -> None:
    now = [0.0]
    deploy(tmp_path, "v1", release("report v1"), 0)
    with PartHost(tmp_path) as host:
        loader = SkewSafeLoader(host.url, cooldown=60, clock=lambda: now[0])
        deploy(tmp_path, "v2", release("report v2"), 0)
        for part in (tmp_path / "parts").iterdir():
            part.unlink()  # v2 is broken too
        for _ in range(3):
            with pytest.raises(MissingPart):
                loader.load("report")
        assert loader.version == "v2"
        # v1 -> v2 once, then v2 -> v2 once; the third call fails without a fetch
        assert host.hits["manifest.json"] == 3
        deploy(tmp_path, "v3", release("report v3"), 0)
        with pytest.raises(MissingPart):
            loader.load("report")  # inside the cooldown: no fetch
        assert host.hits["manifest.json"] == 3
        now[0] = 61.0
        assert loader.load("report").render() == "report v3"
        assert host.hits["manifest.json"] == 4


def test_deploy_prunes_outside_the_grace_period(tmp_path: Path) -> None:
    deploy(tmp_path, "v1", release("one"), keep_previous=1)
    v1 = part_files(tmp_path)
    deploy(tmp_path, "v2", release("two"), keep_previous=1)
    assert v1 <= part_files(tmp_path)
    deploy(tmp_path, "v3", release("three"), keep_previous=1)
    files = part_files(tmp_path)
    shared = hashlib.sha256(release("x")["settings"]).hexdigest() + ".py"
    assert shared in files  # unchanged content keeps its name across releases
    assert (v1 - {shared}).isdisjoint(files)
    assert len(files) == 3  # report v2, report v3, settings


def test_part_with_wrong_content_is_rejected(tmp_path: Path) -> None:
    deploy(tmp_path, "v1", release("report v1"), 0)
    manifest = json.loads((tmp_path / "manifest.json").read_bytes())
    (tmp_path / manifest["parts"]["report"]).write_bytes(b"X = 1\n")
    with (
        PartHost(tmp_path) as host,
        pytest.raises(ValueError, match="does not match its hash"),
    ):
        fetch_part(host.url, fetch_manifest(host.url), "report")


def test_loader_is_usable_from_many_threads_without_a_deploy(tmp_path: Path) -> None:
    deploy(tmp_path, "v1", release("report v1"), 0)
    with PartHost(tmp_path) as host:
        loader = SkewSafeLoader(host.url)
        got: list[str] = []
        threads = [
            threading.Thread(target=lambda: got.append(loader.load("report").render()))
            for _ in range(CLIENTS)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=10)
        assert got == ["report v1"] * CLIENTS
        assert host.hits["manifest.json"] == 1


def test_a_redeploy_leaves_a_download_in_progress_whole(tmp_path: Path) -> None:
    """A client that is reading an unchanged part while a deploy runs."""
    deploy(tmp_path, "v1", release("report v1"), keep_previous=1)
    shared = tmp_path / "parts" / (hashlib.sha256(SETTINGS).hexdigest() + ".py")
    before = shared.stat()
    with shared.open("rb") as download:  # the host is sending this file
        head = download.read(4)
        deploy(tmp_path, "v2", release("report v2"), keep_previous=1)
        rest = download.read()
    assert head + rest == SETTINGS  # no short read, so no false hash error
    after = shared.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


def test_deploy_publishes_parts_with_a_rename(tmp_path: Path) -> None:
    """A part the deploy writes appears whole: never a half-written file."""
    deploy(tmp_path, "v1", release("report v1"), keep_previous=0)
    names = part_files(tmp_path)
    assert all(name.endswith(".py") for name in names)  # no temporary left over
    for name in names:
        body = (tmp_path / "parts" / name).read_bytes()
        assert hashlib.sha256(body).hexdigest() + ".py" == name


def test_a_reader_never_sees_a_short_part_during_redeploys(tmp_path: Path) -> None:
    """Read an unchanged part in a loop while the same parts are redeployed."""
    deploy(tmp_path, "v0", release("report v0"), keep_previous=1)
    shared = tmp_path / "parts" / (hashlib.sha256(SETTINGS).hexdigest() + ".py")
    stop = threading.Event()
    reads: list[bytes] = []

    def reader() -> None:
        while not stop.is_set():
            reads.append(shared.read_bytes())

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for version in range(1, 201):
            deploy(tmp_path, f"v{version}", release("report"), keep_previous=1)
    finally:
        stop.set()
        thread.join(timeout=10)
    assert reads, "the reader never ran"
    assert {body for body in reads} == {SETTINGS}
