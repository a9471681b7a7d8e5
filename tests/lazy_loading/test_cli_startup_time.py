"""Tests for snippets/lazy_loading/cli_startup_time.

Every measurement runs in a fresh interpreter (a subprocess), because a module
imported once stays in ``sys.modules``: what a command line imports is a set
of module names, deterministic, unlike its time.
"""

from __future__ import annotations

import importlib
import inspect
import os
import subprocess
import sys
import threading
from importlib.metadata import version
from pathlib import Path
from types import ModuleType

import click
import pytest
import typer
import typer.main
from typer.core import TyperGroup

from snippets.lazy_loading.cli_startup_time import (
    LazyGroup,
    LazyHelpGroup,
    LazyTyperGroup,
    heavy_imported,
    import_guard,
    imported_by,
    typer_lazy,
)
from snippets.lazy_loading.cli_startup_time.demo import TYPER_HELP
from snippets.lazy_loading.cli_startup_time.probe import import_tree, run_cli
from tools.errors import ErrorRecorder

PKG = "snippets.lazy_loading.cli_startup_time"
ROOT = Path(__file__).resolve().parents[2]
EVERYTHING_HEAVY = ["boto3", "botocore", "sqlalchemy"]


def run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *argv],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        check=False,
    )


def test_eager_argparse_help_imports_every_subcommand() -> None:
    """See it break: --help pays for SQLAlchemy and boto3."""
    modules = imported_by(f"{PKG}.argparse_eager:main", ["--help"])
    assert heavy_imported(modules) == EVERYTHING_HEAVY
    assert len(modules) > 300


def test_documented_lazy_group_help_still_imports_every_subcommand() -> None:
    """click's docs say so: help rendering loads each subcommand's short help."""
    modules = imported_by(f"{PKG}.click_cli:cli_documented", ["--help"])
    assert heavy_imported(modules) == EVERYTHING_HEAVY


# --- the import-time regression tests a CLI should have --------------------


@pytest.mark.parametrize("target", ["argparse_lazy:main", "click_cli:cli"])
def test_help_imports_nothing_heavy(target: str) -> None:
    modules = imported_by(f"{PKG}.{target}", ["--help"])
    assert heavy_imported(modules) == []
    assert len(modules) < 100


@pytest.mark.parametrize(
    ("argv", "heavy"),
    [
        (["report", "--month", "2026-11"], ["sqlalchemy"]),
        (["upload", "x.csv"], ["boto3", "botocore"]),
    ],
)
def test_a_subcommand_imports_only_its_own_module(
    argv: list[str], heavy: list[str]
) -> None:
    for target in ("argparse_lazy:main", "click_cli:cli"):
        assert heavy_imported(imported_by(f"{PKG}.{target}", argv)) == heavy


def test_lazy_help_lists_the_subcommands() -> None:
    argparse_help = run(f"{PKG}.argparse_lazy", "--help")
    click_help = run(f"{PKG}.click_cli", "--help")
    for done in (argparse_help, click_help):
        assert done.returncode == 0, done.stderr
        assert "Build the monthly orders report" in done.stdout
        assert "Upload an export to S3" in done.stdout


def test_subcommand_help_reaches_the_subcommands_parser() -> None:
    done = run(f"{PKG}.argparse_lazy", "report", "--help")
    assert done.returncode == 0
    assert "--month MONTH" in done.stdout


def test_subcommands_run() -> None:
    done = run(f"{PKG}.argparse_lazy", "report", "--month", "2026-11")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("report for 2026-11:")
    done = run(f"{PKG}.click_cli", "upload", "x.csv")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("would upload x.csv with boto3")


def test_unknown_subcommand_fails_without_importing_any() -> None:
    done = run(f"{PKG}.argparse_lazy", "nope")
    assert done.returncode == 2
    assert "invalid choice: 'nope'" in done.stderr
    modules = imported_by(f"{PKG}.argparse_lazy:main", ["nope"])
    assert heavy_imported(modules) == []


def test_lazy_group_rejects_a_target_that_is_not_a_command() -> None:
    group = LazyGroup(lazy_subcommands={"bad": f"{PKG}.probe.HEAVY"})
    with pytest.raises(ValueError, match="is not a command"):
        group.get_command(click.Context(group), "bad")


def test_importtime_tree_cumulative_includes_children() -> None:
    rows = import_tree(f"import {PKG}.argparse_eager")
    by_name = {row.name: row for row in rows}
    cli = by_name[f"{PKG}.argparse_eager"]
    report = by_name[f"{PKG}.commands.report"]
    assert report.depth == cli.depth + 1
    assert (
        cli.cumulative_us >= report.cumulative_us >= by_name["sqlalchemy"].cumulative_us
    )
    for row in rows:
        assert row.cumulative_us >= row.self_us
    # Children are printed before their parent: the tree reads bottom-up.
    names = [row.name for row in rows]
    assert names.index("sqlalchemy") < names.index(report.name) < names.index(cli.name)


# --- SPEC 1: lazy_loader ----------------------------------------------------


@pytest.mark.parametrize(
    ("code", "eager", "heavy"),
    [
        (f"import {PKG}.toolkit", "0", []),
        (f"import {PKG}.toolkit as t; t.build_report", "0", ["sqlalchemy"]),
        (f"import {PKG}.toolkit", "1", ["sqlalchemy"]),
    ],
    ids=["import", "attribute", "EAGER_IMPORT=1"],
)
def test_lazy_loader_attach(code: str, eager: str, heavy: list[str]) -> None:
    modules = imported_by(code=code, env={"EAGER_IMPORT": eager})
    assert heavy_imported(modules) == heavy


def test_lazy_loader_dir_and_value() -> None:
    toolkit = importlib.import_module(f"{PKG}.toolkit")
    assert dir(toolkit) == ["build_report", "reports"]
    assert toolkit.build_report("2026-11").endswith("with month=2026-11")


# --- a module is a singleton: its body runs once, under the import lock -----


def test_module_body_runs_once_when_threads_import_it_together(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "cli_singleton_probe.py").write_text(
        "import sys, threading\n"
        "sys.cli_singleton_runs = getattr(sys, 'cli_singleton_runs', 0) + 1\n"
        "threading.Event().wait(0.2)  # widen the window for the other threads\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    start = threading.Barrier(8)
    got: list[ModuleType] = []

    def importer() -> None:
        start.wait(timeout=5)
        got.append(importlib.import_module("cli_singleton_probe"))

    threads = [threading.Thread(target=importer) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    try:
        assert getattr(sys, "cli_singleton_runs", 0) == 1
        assert len({id(module) for module in got}) == 1 and len(got) == 8
    finally:
        sys.modules.pop("cli_singleton_probe", None)
        if hasattr(sys, "cli_singleton_runs"):
            delattr(sys, "cli_singleton_runs")


def test_registered_help_matches_each_commands_help() -> None:
    from snippets.lazy_loading.cli_startup_time.argparse_lazy import COMMANDS
    from snippets.lazy_loading.cli_startup_time.click_cli import cli

    group = cli
    assert isinstance(group, LazyHelpGroup)
    ctx = click.Context(group)
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        assert command is not None
        assert group.command_help[name] == command.help
        assert COMMANDS[name][1] == command.help


# --- Typer: cls=LazyTyperGroup ---------------------------------------------


def test_eager_typer_help_imports_every_command() -> None:
    """See it break: the usual Typer app imports every command's module."""
    output, modules = run_cli(f"{PKG}.typer_eager:app", ["--help"])
    assert heavy_imported(modules) == EVERYTHING_HEAVY
    assert all(text in output for text in TYPER_HELP)


def test_lazy_typer_help_imports_nothing_heavy_and_keeps_help_texts() -> None:
    output, modules = run_cli(f"{PKG}.typer_lazy:app", ["--help"])
    assert heavy_imported(modules) == []
    assert not any(name.startswith(f"{PKG}.typer_commands.") for name in modules)
    assert "Orders tools." in output
    for name, text in zip(("report", "upload"), TYPER_HELP, strict=True):
        # Name and help text on one row of the Commands panel.
        assert any(name in line and text in line for line in output.splitlines())


@pytest.mark.parametrize(
    ("argv", "heavy", "printed"),
    [
        (["report", "--month", "2026-11"], ["sqlalchemy"], "report for 2026-11:"),
        (["upload", "x.csv"], ["boto3", "botocore"], "would upload x.csv with boto3"),
    ],
)
def test_lazy_typer_runs_a_command_importing_only_its_module(
    argv: list[str], heavy: list[str], printed: str
) -> None:
    output, modules = run_cli(f"{PKG}.typer_lazy:app", argv)
    assert heavy_imported(modules) == heavy
    assert output.startswith(printed)


def test_lazy_typer_command_help_comes_from_the_real_command() -> None:
    output, modules = run_cli(f"{PKG}.typer_lazy:app", ["report", "--help"])
    assert "--month" in output and "YYYY-MM" in output
    assert heavy_imported(modules) == ["sqlalchemy"]


def test_lazy_typer_unknown_command_suggests_without_importing() -> None:
    done = run(f"{PKG}.typer_lazy", "reprt")
    assert done.returncode == 2
    assert "Did you mean 'report'?" in done.stderr
    _, modules = run_cli(f"{PKG}.typer_lazy:app", ["reprt"])
    assert heavy_imported(modules) == []


def test_typer_cls_must_be_a_typer_group(error_record: ErrorRecorder) -> None:
    """Typer vendors Click: a click.Group subclass is not accepted as cls=."""
    app = typer.Typer(cls=LazyGroup)  # type: ignore[arg-type]
    app.command("x")(lambda: None)
    app.command("y")(lambda: None)
    with pytest.raises(AssertionError, match="should be a subclass of") as caught:
        typer.main.get_command(app)
    error_record(
        caught.value,
        id="typer-cls-click-group",
        component="typer",
        version=version("typer"),
        section="typer",
        names={f"{PKG}.click_cli.LazyGroup": "cli.LazyGroup"},
    )
    assert not issubclass(TyperGroup, click.Group)


def test_registered_typer_help_matches_each_functions_docstring() -> None:
    group = typer.main.get_command(typer_lazy.app)
    assert isinstance(group, LazyTyperGroup)
    for name, (target, help_text) in group.lazy_subcommands.items():
        module_name, _, function = target.partition(":")
        callback = getattr(importlib.import_module(module_name), function)
        assert inspect.getdoc(callback) == help_text
        assert group._load(name).help == help_text


# --- the -X importtime regression test a reader copies -----------------------


def test_import_guard_passes_on_the_lazy_typer_cli(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(ROOT)
    import_guard.test_cli_imports_nothing_heavy()
    import_guard.test_cli_help_imports_nothing_heavy()


def test_import_guard_fails_on_the_eager_typer_cli(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(ROOT)
    monkeypatch.setattr(import_guard, "CLI_MODULE", f"{PKG}.typer_eager")
    with pytest.raises(AssertionError) as failed:
        import_guard.test_cli_imports_nothing_heavy()
    assert str(failed.value) == (
        f"import {PKG}.typer_eager imports ['boto3', 'botocore', 'sqlalchemy']"
    )


STANDIN_PARTS = 25


def write_standin_cli(directory: Path, *, lazy: bool) -> None:
    """A generated CLI and a stand-in heavy package of 1 + 25 modules."""
    package = directory / "heavy_standin"
    package.mkdir()
    parts = [f"part_{index:02}" for index in range(STANDIN_PARTS)]
    for part in parts:
        (package / f"{part}.py").write_text("TABLE = list(range(1000))\n")
    (package / "__init__.py").write_text(
        "".join(f"from heavy_standin import {part}\n" for part in parts)
    )
    top = "" if lazy else "import heavy_standin\n"
    inside = "        import heavy_standin\n" if lazy else "        pass\n"
    (directory / "yourcli.py").write_text(
        f"{top}\n\ndef app(argv):\n"
        f"    if argv[:1] == ['run']:\n{inside}"
        "    raise SystemExit(0)\n"
    )


@pytest.mark.parametrize(("lazy", "count"), [(False, 1 + STANDIN_PARTS), (True, 0)])
def test_import_guard_counts_a_generated_heavy_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, lazy: bool, count: int
) -> None:
    write_standin_cli(tmp_path, lazy=lazy)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(import_guard, "CLI_MODULE", "yourcli")
    monkeypatch.setattr(import_guard, "HEAVY", {"heavy_standin"})

    def standin_modules(statement: str) -> int:
        imported = import_guard.imported_modules(statement)
        assert "yourcli" in imported
        return len({n for n in imported if n.split(".")[0] == "heavy_standin"})

    assert standin_modules("import yourcli") == count
    # Running the command imports the whole package, lazy or not.
    assert standin_modules("from yourcli import app; app(['run'])") == 1 + STANDIN_PARTS
    if lazy:
        import_guard.test_cli_imports_nothing_heavy()
        import_guard.test_cli_help_imports_nothing_heavy()
    else:
        with pytest.raises(AssertionError, match=r"imports \['heavy_standin'\]"):
            import_guard.test_cli_imports_nothing_heavy()
