"""Tests for snippets/build_optimization/content_snapshots/.

The race is made deterministic with events: the "compiler" has read its input
and waits; the test rewrites the input, sets its modification time with
`os.utime`, and only then lets the compiler write its output. Every file is a
real file in a temporary directory; nothing is mocked.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path

import pytest

from snippets.build_optimization.content_snapshots import SnapshotBuilder
from snippets.build_optimization.content_snapshots.demo import (
    T0,
    MtimeBuilder,
    compile_sources,
    compile_step,
    edit_during_build,
    race_scenario,
    restore_scenario,
    scenarios,
)

ROUNDS = 10


class CountingStep:
    """The demo compiler, counting its runs and failing on request."""

    def __init__(self, fail: bool = False) -> None:
        self.runs = 0
        self.fail = fail

    def __call__(self, sources: Sequence[Path], output: Path) -> None:
        self.runs += 1
        output.write_text("partial")  # a step that dies leaves half an output
        if self.fail:
            raise RuntimeError("compiler crashed")
        compile_step(sources, output)


def test_mtime_rule_accepts_output_of_an_edit_made_mid_build(tmp_path: Path) -> None:
    stale = 0
    for i in range(ROUNDS):
        where = tmp_path / str(i)
        where.mkdir()
        first, after, accepted = race_scenario(MtimeBuilder(), where)
        assert (first, after) == ("built", "fresh")
        stale += accepted
    print(f"\nmtime rule, {ROUNDS} edits mid-build: stale outputs accepted {stale}")
    assert stale == ROUNDS


def test_snapshot_rebuilds_after_an_edit_made_mid_build(tmp_path: Path) -> None:
    stale = 0
    for i in range(ROUNDS):
        where = tmp_path / str(i)
        where.mkdir()
        builder = SnapshotBuilder(where / "manifest.json", max_attempts=1)
        first, after, accepted = race_scenario(builder, where)
        assert (first, after) == ("raced", "built")
        assert (where / "a.o").read_text() == "INT A = 2;\n"
        stale += accepted
    print(f"\nsnapshot, {ROUNDS} edits mid-build: stale outputs accepted {stale}")
    assert stale == 0


def test_snapshot_retries_at_once_when_inputs_change(tmp_path: Path) -> None:
    source, output = tmp_path / "a.c", tmp_path / "a.o"
    source.write_text("int a = 1;\n")
    builder = SnapshotBuilder(tmp_path / "manifest.json")  # max_attempts=3
    result = edit_during_build(builder, source, output, "int a = 2;\n", T0)
    assert (result.status, result.attempts) == ("built", 2)
    assert output.read_text() == compile_sources([source])
    step = CountingStep()
    assert builder.build([source], output, step).status == "fresh"
    assert step.runs == 0


def test_mtime_rule_misses_a_restore_with_an_older_mtime(tmp_path: Path) -> None:
    first, after, stale = restore_scenario(MtimeBuilder(), tmp_path)
    assert (first, after, stale) == ("built", "fresh", 1)


def test_snapshot_sees_a_restore_with_an_older_mtime(tmp_path: Path) -> None:
    builder = SnapshotBuilder(tmp_path / "manifest.json")
    first, after, stale = restore_scenario(builder, tmp_path)
    assert (first, after, stale) == ("built", "built", 0)


def test_equal_mtimes_of_a_coarse_clock(tmp_path: Path) -> None:
    """On a file system with 1 s or 2 s timestamps, edit and output tie."""
    source, output = tmp_path / "c.c", tmp_path / "c.o"
    source.write_text("int c = 1;\n")
    mtime, snap = MtimeBuilder(), SnapshotBuilder(tmp_path / "manifest.json")
    compile_step([source], output)
    snap.build([source], output, compile_step)
    source.write_text("int c = 2;\n")
    for path in (source, output):
        os.utime(path, (T0, T0))  # the same second, as a coarse clock records
    assert mtime.is_fresh([source], output)
    assert not snap.is_fresh([source], output)
    assert snap.build([source], output, compile_step).status == "built"
    assert output.read_text() == "INT C = 2;\n"


def test_unchanged_inputs_skip_the_step_even_when_touched(tmp_path: Path) -> None:
    source, output = tmp_path / "d.c", tmp_path / "d.o"
    source.write_text("int d;\n")
    builder, step = SnapshotBuilder(tmp_path / "manifest.json"), CountingStep()
    assert builder.build([source], output, step).status == "built"
    source.touch()  # a newer mtime, the same content
    assert builder.build([source], output, step).status == "fresh"
    assert step.runs == 1


def test_a_damaged_output_is_not_fresh(tmp_path: Path) -> None:
    source, output = tmp_path / "e.c", tmp_path / "e.o"
    source.write_text("int e;\n")
    builder = SnapshotBuilder(tmp_path / "manifest.json")
    builder.build([source], output, compile_step)
    output.write_text("INT")  # truncated by something outside the build
    assert builder.build([source], output, compile_step).status == "built"
    assert output.read_text() == "INT E;\n"


def test_a_failing_step_records_nothing(tmp_path: Path) -> None:
    source, output = tmp_path / "f.c", tmp_path / "f.o"
    source.write_text("int f;\n")
    manifest = tmp_path / "manifest.json"
    builder = SnapshotBuilder(manifest)
    with pytest.raises(RuntimeError, match="compiler crashed"):
        builder.build([source], output, CountingStep(fail=True))
    assert not manifest.exists()
    step = CountingStep()
    assert builder.build([source], output, step).status == "built"
    assert step.runs == 1
    entry = json.loads(manifest.read_text())[str(output)]
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    assert entry["inputs"] == {str(source): digest}
    assert list(tmp_path.glob("*.tmp")) == []


def test_max_attempts_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        SnapshotBuilder(tmp_path / "manifest.json", max_attempts=0)


def test_the_scenarios_the_page_shows(tmp_path: Path) -> None:
    lines = scenarios(tmp_path)
    assert sum(int(line[-1]) for line in lines if " mtime " in line) == 2
    assert sum(int(line[-1]) for line in lines if " snapshot " in line) == 0
