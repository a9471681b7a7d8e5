"""Tests for snippets/build_optimization/action_cache/.

Races are made deterministic by stopping a writer between two chunks of its
output: the chunks come from a generator that waits on an event, so a reader
looks at the cache exactly when a writer is half-way. Crashes are real: a
writer process is stopped at a seeded, random chunk and killed with SIGKILL.
"""

from __future__ import annotations

import hashlib
import json
import random
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from snippets.build_optimization import action_cache as ac
from snippets.build_optimization.action_cache import demo
from snippets.support.build_optimization_writer import CHUNKS
from tests.conftest import ROOT

KEY = "k" * 64
FULL = demo.CHUNK * 4


def action(**changes: object) -> ac.Action:
    fields: dict[str, object] = {
        "argv": ["cc", "-O2", "-c", "main.c"],
        "inputs": {"main.c": "1" * 64, "main.h": "2" * 64},
        "env": {"LANG": "C"},
        "tool": "cc 13.2",
    }
    fields.update(changes)
    return ac.Action(**fields)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- #
# The key
# --------------------------------------------------------------------------- #


def test_every_ingredient_changes_the_key() -> None:
    base = action().key()
    variants = [
        action(argv=["cc", "-O0", "-c", "main.c"]),
        action(inputs={"main.c": "1" * 64, "main.h": "3" * 64}),
        action(inputs={"main.c": "1" * 64}),
        action(env={"LANG": "de_DE.UTF-8"}),
        action(tool="cc 14.1"),
    ]
    keys = {variant.key() for variant in variants}
    assert base not in keys
    assert len(keys) == len(variants)


def test_the_key_ignores_order_but_keeps_argument_boundaries() -> None:
    reordered = action(inputs={"main.h": "2" * 64, "main.c": "1" * 64})
    assert reordered.key() == action().key()
    assert action(argv=["a b"]).key() != action(argv=["a", "b"]).key()
    assert len(action().key()) == 64


def test_file_digest_is_the_sha256_of_the_content(tmp_path: Path) -> None:
    path = tmp_path / "main.c"
    path.write_bytes(b"int main(void) { return 0; }\n")
    assert ac.file_digest(path) == hashlib.sha256(path.read_bytes()).hexdigest()


# --------------------------------------------------------------------------- #
# See it break: a reader during a write, and two writers
# --------------------------------------------------------------------------- #


def read_at(
    put: demo.Put, get: demo.Get, after: int, chunks: list[bytes]
) -> tuple[bytes | None, bytes | None]:
    """What a reader gets while the writer waits after ``after`` chunks, and after."""
    reached, resume = threading.Event(), threading.Event()
    writer = threading.Thread(
        target=put, args=(KEY, demo.held(chunks, after, reached, resume))
    )
    writer.start()
    assert reached.wait(timeout=10)
    during = get(KEY)
    resume.set()
    writer.join(timeout=10)
    assert not writer.is_alive()
    return during, get(KEY)


@pytest.mark.parametrize("atomic", [False, True], ids=["in-place", "atomic"])
def test_a_reader_during_a_write(tmp_path: Path, atomic: bool) -> None:
    torn = misses = whole = 0
    for after in (1, 2, 3):  # a quarter, half, three quarters written
        put, get, _ = demo.single_output(tmp_path / f"after-{after}", atomic)
        output = demo.artifact("A")
        during, final = read_at(put, get, after, output)
        assert final == b"".join(output)
        if during is None:
            misses += 1
        elif during == b"".join(output):
            whole += 1
        else:
            assert len(during) == after * demo.CHUNK
            torn += 1
    if atomic:
        assert (torn, misses, whole) == (0, 3, 0)
    else:
        assert (torn, misses, whole) == (3, 0, 0)


def test_an_in_place_cache_serves_a_torn_republish(tmp_path: Path) -> None:
    """Even a complete entry turns torn while someone rewrites it in place."""
    put, get, _ = demo.single_output(tmp_path, atomic=False)
    put(KEY, demo.artifact("A"))
    during, _ = read_at(put, get, 1, demo.artifact("A"))
    assert during is not None
    assert len(during) == demo.CHUNK


def test_an_atomic_republish_keeps_the_old_entry_readable(tmp_path: Path) -> None:
    put, get, _ = demo.single_output(tmp_path, atomic=True)
    put(KEY, demo.artifact("A"))
    during, final = read_at(put, get, 1, demo.artifact("A"))
    assert during == final == b"".join(demo.artifact("A"))


def test_two_in_place_writers_leave_neither_output(tmp_path: Path) -> None:
    result = demo.two_writers(tmp_path, atomic=False)
    assert result == "entry holds neither build's output, no error"
    data = demo.InPlaceCache(tmp_path).get(KEY)
    assert data == b"B" * demo.CHUNK + b"A" * (FULL - demo.CHUNK)


@pytest.mark.parametrize("strict", [False, True], ids=["default", "strict"])
def test_two_atomic_writers_keep_one_whole_output(tmp_path: Path, strict: bool) -> None:
    result = demo.two_writers(tmp_path, atomic=True, strict=strict)
    if strict:  # the first result stays, the second build fails
        assert result == (
            "entry holds B's output, A raised NonHermeticActionError, "
            "nondeterministic=1"
        )
    else:  # the last result stays, both builds go on
        assert result == "entry holds A's output, no error, nondeterministic=1"
    cache = ac.ActionCache(tmp_path)
    blobs = sorted(p.name for p in cache.cas.iterdir())
    expected = sorted(
        hashlib.sha256(b"".join(demo.artifact(tag))).hexdigest() for tag in "AB"
    )
    assert blobs == expected  # both blobs whole in the CAS, no temporary files
    assert [p.name for p in cache.ac.iterdir()] == [KEY]


# --------------------------------------------------------------------------- #
# Non-hermetic actions, damaged entries
# --------------------------------------------------------------------------- #


def test_a_non_reproducible_action_is_replaced_and_counted(tmp_path: Path) -> None:
    builds = iter([b"built at 10:00", b"built at 10:01", b"built at 10:02"])
    first, second = ac.ActionCache(tmp_path), ac.ActionCache(tmp_path)
    key = action().key()
    # Two builds miss at the same time, so both run the action.
    assert first.get_action(key) is None
    assert second.get_action(key) is None
    first.store(key, {"stamp.txt": [next(builds)]})
    second.store(key, {"stamp.txt": [next(builds)]})  # no error: the build goes on
    assert second.get_action(key) == {"stamp.txt": b"built at 10:01"}
    second.store(key, {"stamp.txt": [next(builds)]})
    assert first.get_action(key) == {"stamp.txt": b"built at 10:02"}
    assert second.stats.nondeterministic == {key: 2}
    assert first.stats.nondeterministic == {}
    assert list(cache_files(tmp_path / "ac")) == [key]  # no temporary file left


def test_strict_mode_keeps_the_first_result_and_raises(tmp_path: Path) -> None:
    builds = iter([b"built at 10:00", b"built at 10:01"])
    first = ac.ActionCache(tmp_path, strict=True)
    second = ac.ActionCache(tmp_path, strict=True)
    key = action().key()
    first.store(key, {"stamp.txt": [next(builds)]})
    with pytest.raises(ac.NonHermeticActionError, match=r"stamp\.txt") as raised:
        second.store(key, {"stamp.txt": [next(builds)]})
    assert raised.value.stored != raised.value.new
    assert second.get_action(key) == {"stamp.txt": b"built at 10:00"}
    assert second.stats.nondeterministic == {key: 1}
    assert list(cache_files(tmp_path / "ac")) == [key]


def cache_files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def test_a_hermetic_action_can_be_stored_twice(tmp_path: Path) -> None:
    cache = ac.ActionCache(tmp_path)
    runs = 0

    def build() -> dict[str, bytes]:
        nonlocal runs
        runs += 1
        return {"main.o": b"\x7fELF object", "main.d": b"main.o: main.c"}

    outputs, hit = cache.run(action(), build)
    again, second_hit = cache.run(action(), build)
    cache.store(action().key(), {name: [data] for name, data in outputs.items()})
    assert (hit, second_hit, runs) == (False, True, 1)
    assert again == outputs
    assert (cache.stats.hits, cache.stats.misses) == (1, 1)


def test_a_damaged_blob_is_a_miss_and_a_rebuild_repairs_it(tmp_path: Path) -> None:
    cache = ac.ActionCache(tmp_path)
    key = action().key()
    cache.store(key, {"main.o": [b"object code"]})
    blob = cache.cas / hashlib.sha256(b"object code").hexdigest()
    blob.write_bytes(b"object cod3")  # same size: a size check would miss it
    assert cache.get_action(key) is None
    assert cache.stats.corrupt == 1
    cache.store(key, {"main.o": [b"object code"]})
    assert cache.get_action(key) == {"main.o": b"object code"}


def test_a_missing_blob_is_a_miss(tmp_path: Path) -> None:
    cache = ac.ActionCache(tmp_path)
    key = action().key()
    cache.store(key, {"main.o": [b"object"], "main.d": [b"deps"]})
    (cache.cas / hashlib.sha256(b"deps").hexdigest()).unlink()  # evicted
    assert cache.get_action(key) is None
    assert cache.stats.corrupt == 0


@pytest.mark.parametrize(
    "content",
    [b'{"outputs": {"main.o": "12', b"[]", b'{"outputs": {"main.o": "not-hex"}}'],
    ids=["truncated", "not-an-object", "bad-digest"],
)
def test_an_unreadable_entry_is_a_miss_and_is_replaced(
    tmp_path: Path, content: bytes
) -> None:
    cache = ac.ActionCache(tmp_path)
    key = action().key()
    (cache.ac / key).write_bytes(content)
    assert cache.get_action(key) is None
    cache.store(key, {"main.o": [b"object"]})
    assert cache.get_action(key) == {"main.o": b"object"}
    entry = json.loads((cache.ac / key).read_bytes())
    assert entry == {"outputs": {"main.o": hashlib.sha256(b"object").hexdigest()}}


def test_a_failed_write_leaves_no_temporary_file(tmp_path: Path) -> None:
    cache = ac.ActionCache(tmp_path)

    def chunks() -> Iterator[bytes]:
        yield b"half"
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        cache.put_blob(chunks())
    assert list(cache.cas.iterdir()) == []


# --------------------------------------------------------------------------- #
# Many readers, many publishes: never a partial file
# --------------------------------------------------------------------------- #


def test_readers_never_see_a_partial_file_during_many_publishes(
    tmp_path: Path,
) -> None:
    versions = [bytes([65 + n]) * (demo.CHUNK * 2) for n in range(8)]
    final = tmp_path / "entry"
    stop = threading.Event()
    seen: dict[str, int] = {"missing": 0, "whole": 0, "partial": 0}
    lock = threading.Lock()

    start = threading.Barrier(5)

    def reader() -> None:
        start.wait(timeout=10)
        reads = 0
        while not stop.is_set() or reads < 50:
            reads += 1
            try:
                data = final.read_bytes()
                kind = "whole" if data in versions else "partial"
            except FileNotFoundError:
                kind = "missing"
            with lock:
                seen[kind] += 1

    readers = [threading.Thread(target=reader) for _ in range(4)]
    for thread in readers:
        thread.start()
    start.wait(timeout=10)
    for n in range(100):
        tmp, _ = ac.write_temp(tmp_path, [versions[n % len(versions)]])
        tmp.replace(final)
    stop.set()
    for thread in readers:
        thread.join(timeout=10)
    assert seen["partial"] == 0
    assert seen["whole"] > 0


# --------------------------------------------------------------------------- #
# A writer killed half-way
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("mode", ["in-place", "atomic"])
def test_a_killed_writer(tmp_path: Path, mode: str) -> None:
    stops = sorted(random.Random(1404).sample(range(1, CHUNKS), 6))
    for stop in stops:
        root = tmp_path / str(stop)
        demo.kill_writer_at(mode, root, stop)
        read, temporary = demo.after_crash(mode, root)
        if mode == "in-place":  # a truncated entry, served as a hit
            assert read == f"hit of {stop * demo.CHUNK} bytes"
            assert temporary == 0
        else:  # a miss; the AC entry is written last, so only a blob was begun
            assert read == "miss"
            cache = ac.ActionCache(root)
            assert list(cache.ac.iterdir()) == []
            names = [p.name for p in cache.cas.iterdir()]
            assert len(names) == temporary == 1
            assert names[0].startswith(ac.TMP_PREFIX)


def test_a_writer_that_finishes_leaves_no_temporary_file(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", demo.WRITER, "atomic", str(tmp_path), "99", demo.KEY],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=20,
        check=True,
    )
    assert proc.stdout.strip() == "done"
    cache = ac.ActionCache(tmp_path)
    outputs = cache.get_action(demo.KEY)
    assert outputs is not None
    assert len(outputs["out.bin"]) == CHUNKS * demo.CHUNK
    assert not [p for p in cache.cas.iterdir() if p.name.startswith(ac.TMP_PREFIX)]


def test_the_races_the_page_shows(tmp_path: Path) -> None:
    lines = demo.races(tmp_path)
    assert lines[0].endswith(
        f"hit while writing with {demo.CHUNK} of {FULL} bytes: torn"
    )
    assert lines[1].endswith(f"miss while writing, then {FULL} of {FULL} bytes")
    assert lines[2].endswith("entry holds neither build's output, no error")
