"""``orders`` with Typer, lazily: a `TyperGroup` subclass, passed as ``cls=``,
imports a command's module only when that command runs, and still lists every
command with its help text."""

from __future__ import annotations

import importlib
from typing import Any, ClassVar

import typer
import typer.main
from typer.core import TyperCommand, TyperGroup

__all__ = ["LazyTyperGroup", "OrdersGroup", "app"]

_PACKAGE = "snippets.lazy_loading.cli_startup_time.typer_commands"


# --8<-- [start:lazy-group]
class LazyTyperGroup(TyperGroup):
    """A Typer group that imports a command's module when the command runs.

    ``typer.Typer(cls=...)`` takes a class, not arguments for it: subclass
    this one and set `lazy_subcommands`.
    """

    # {command name: ("module:function", one-line help)}
    lazy_subcommands: ClassVar[dict[str, tuple[str, str]]] = {}

    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        for name, (_, help_text) in self.lazy_subcommands.items():
            # A placeholder: the name and help text that --help, completion
            # and "Did you mean" read. It has no parameters and never runs.
            self.commands.setdefault(name, TyperCommand(name, help=help_text))

    def resolve_command(
        self, ctx: Any, args: list[str]
    ) -> tuple[str | None, Any, list[str]]:
        # Called to run a command, for its own --help, or to complete its
        # options: the chosen command's module is imported now.
        name, command, rest = super().resolve_command(ctx, args)
        if name in self.lazy_subcommands:
            command = self._load(name)
        return name, command, rest

    def _load(self, name: str) -> Any:
        module_name, _, function = self.lazy_subcommands[name][0].partition(":")
        callback = getattr(importlib.import_module(module_name), function)
        single = typer.Typer(add_completion=False)
        single.command(name)(callback)
        return typer.main.get_command(single)


# --8<-- [end:lazy-group]


# --8<-- [start:app]
class OrdersGroup(LazyTyperGroup):
    """The ``orders`` commands: module, function and help text of each."""

    lazy_subcommands: ClassVar[dict[str, tuple[str, str]]] = {
        "report": (f"{_PACKAGE}.report:report", "Build the monthly orders report"),
        "upload": (f"{_PACKAGE}.upload:upload", "Upload an export to S3"),
    }


app = typer.Typer(cls=OrdersGroup, add_completion=False)


@app.callback()
def main() -> None:
    """Orders tools."""


# --8<-- [end:app]

if __name__ == "__main__":
    app(prog_name="orders")
