"""The cases the CLI start-up page shows: what each command line imports.

    python -m snippets.lazy_loading.cli_startup_time.demo CASE

Cases: ``help`` (``--help`` of four CLIs), ``chosen`` (running a subcommand),
``typer`` (the same with Typer), ``importtime`` (the tree of ``python -X
importtime``), ``lazy_loader``.
Counts are of modules, in a fresh interpreter each; times are never printed
as numbers, only as a share of the whole.
"""

from __future__ import annotations

import sys

from snippets.lazy_loading.cli_startup_time.probe import (
    HEAVY,
    ImportRow,
    heavy_imported,
    import_tree,
    imported_by,
    run_cli,
)
from snippets.support.cases import run_cases

__all__: list[str] = []

_PKG = "snippets.lazy_loading.cli_startup_time"
CLIS = {
    "argparse, imports up front": f"{_PKG}.argparse_eager:main",
    "argparse, lazy subcommands": f"{_PKG}.argparse_lazy:main",
    "click, documented LazyGroup": f"{_PKG}.click_cli:cli_documented",
    "click, LazyHelpGroup": f"{_PKG}.click_cli:cli",
}


def _count(modules: set[str]) -> str:
    return "fewer than 100" if len(modules) < 100 else "hundreds of"


def _line(label: str, modules: set[str]) -> str:
    heavy = ", ".join(heavy_imported(modules)) or "none"
    return f"  {label + ':':<30} {_count(modules)} modules; heavy: {heavy}"


def show_help() -> list[str]:
    lines = ["orders --help"]
    for label, module in CLIS.items():
        lines.append(_line(label, imported_by(module, ["--help"])))
    return lines


def show_chosen() -> list[str]:
    lines = ["argparse, lazy subcommands"]
    for argv in (
        ["report", "--month", "2026-11"],
        ["upload", "x.csv"],
        ["report", "-h"],
    ):
        lines.append(
            _line(
                "orders " + " ".join(argv),
                imported_by(CLIS["argparse, lazy subcommands"], argv),
            )
        )
    return lines


TYPER = {
    "typer, imported up front": f"{_PKG}.typer_eager:app",
    "typer, LazyTyperGroup": f"{_PKG}.typer_lazy:app",
}
# The help text of each command, as its docstring gives it.
TYPER_HELP = ("Build the monthly orders report", "Upload an export to S3")


def _heavy_count(modules: set[str]) -> str:
    count = len({name for name in modules if name.split(".")[0] in HEAVY})
    return "0 modules" if count == 0 else "over 50 modules"


def _typer_line(label: str, modules: set[str]) -> str:
    heavy = ", ".join(heavy_imported(modules)) or "none"
    return f"  {label + ':':<26} heavy: {heavy} ({_heavy_count(modules)})"


def show_typer() -> list[str]:
    lines = ["orders --help"]
    for label, target in TYPER.items():
        output, modules = run_cli(target, ["--help"])
        shown = sum(text in output for text in TYPER_HELP)
        lines.append(_typer_line(label, modules))
        lines.append(f"  {'':<26} help texts listed: {shown} of {len(TYPER_HELP)}")
    for argv in (["report", "--month", "2026-11"], ["upload", "x.csv"]):
        _, modules = run_cli(TYPER["typer, LazyTyperGroup"], argv)
        lines.append("orders " + " ".join(argv))
        lines.append(_typer_line("typer, LazyTyperGroup", modules))
    return lines


def _beneath(rows: list[ImportRow], index: int) -> str:
    """How many modules the row at `index` imported (its subtree), bucketed.

    ``-X importtime`` prints a module after the modules it imported, each
    indented one level deeper: the subtree is the run of deeper rows just
    above it.
    """
    count = 0
    for row in reversed(rows[:index]):
        if row.depth <= rows[index].depth:
            break
        count += 1
    if count == 0:
        return "none"
    return "dozens" if count < 100 else "hundreds"


def show_importtime() -> list[str]:
    root = f"{_PKG}.argparse_eager"
    rows = import_tree(f"import {root}")
    top = next(row for row in rows if row.name == root)
    lines = [
        f'python -X importtime -c "import {root}"',
        f"{_count({row.name for row in rows})} modules imported. The rows of this",
        "guide's modules and of heavy packages, with how many modules each",
        "one imported beneath it (its share of the cumulative column):",
        "  beneath  | module",
    ]
    for index, row in enumerate(rows):
        ours = row.name.startswith(f"{_PKG}.")
        if not ours and not (row.name in HEAVY and row.depth <= top.depth + 2):
            continue
        indent = "  " * (row.depth - top.depth + 1)
        name = row.name.replace(_PKG, "…")
        lines.append(f"  {_beneath(rows, index):<8} | {indent}{name}")
    return lines


def show_lazy_loader() -> list[str]:
    package = f"{_PKG}.toolkit"
    lines = ["a package that uses lazy_loader.attach"]
    for label, env, code in (
        ("import toolkit", "0", f"import {package}"),
        ("toolkit.build_report", "0", f"import {package} as t; t.build_report"),
        ("import toolkit, EAGER_IMPORT=1", "1", f"import {package}"),
    ):
        modules = imported_by(code=code, env={"EAGER_IMPORT": env})
        lines.append(_line(label, modules))
    return lines


if __name__ == "__main__":
    sys.exit(
        run_cases(
            {
                "help": show_help,
                "chosen": show_chosen,
                "typer": show_typer,
                "importtime": show_importtime,
                "lazy_loader": show_lazy_loader,
            }
        )
    )
