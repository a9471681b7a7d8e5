"""``orders`` with click: the documented `LazyGroup`, and one whose help
lists the subcommands without importing them."""

from __future__ import annotations

import importlib
import sys
from typing import Any

import click

__all__ = ["LazyGroup", "LazyHelpGroup", "cli", "cli_documented"]

_PACKAGE = "snippets.lazy_loading.cli_startup_time.commands"


# --8<-- [start:lazy-group]
class LazyGroup(click.Group):
    """click's documented lazy group: subcommands imported on first lookup."""

    def __init__(
        self, *args: Any, lazy_subcommands: dict[str, str] | None = None, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        # {command name: "module.attribute"}
        self.lazy_subcommands = lazy_subcommands or {}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *self.lazy_subcommands])

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.lazy_subcommands:
            return self._lazy_load(cmd_name)
        return super().get_command(ctx, cmd_name)

    def _lazy_load(self, cmd_name: str) -> click.Command:
        module_name, attribute = self.lazy_subcommands[cmd_name].rsplit(".", 1)
        command = getattr(importlib.import_module(module_name), attribute)
        if not isinstance(command, click.Command):
            raise ValueError(f"{cmd_name}: {module_name}.{attribute} is not a command")
        return command


# --8<-- [end:lazy-group]


# --8<-- [start:lazy-help]
class LazyHelpGroup(LazyGroup):
    """A `LazyGroup` whose ``--help`` lists subcommands without importing them."""

    def __init__(self, *args: Any, command_help: dict[str, str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.command_help = command_help  # {command name: one-line help}

    def format_commands(
        self, ctx: click.Context, formatter: click.HelpFormatter
    ) -> None:
        # click's own format_commands calls get_command() for every subcommand
        # to read its short help: that is the import we avoid.
        rows = [
            (name, self.command_help.get(name, "")) for name in self.list_commands(ctx)
        ]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


# --8<-- [end:lazy-help]


@click.group(
    cls=LazyGroup,
    lazy_subcommands={
        "report": f"{_PACKAGE}.report.command",
        "upload": f"{_PACKAGE}.upload.command",
    },
    help="Orders tools (click's documented LazyGroup).",
)
def cli_documented() -> None:
    pass


# --8<-- [start:cli]
@click.group(
    cls=LazyHelpGroup,
    lazy_subcommands={
        "report": f"{_PACKAGE}.report.command",
        "upload": f"{_PACKAGE}.upload.command",
    },
    command_help={
        "report": "Build the monthly orders report",
        "upload": "Upload an export to S3",
    },
    help="Orders tools.",
)
def cli() -> None:
    pass


# --8<-- [end:cli]

if __name__ == "__main__":
    sys.exit(cli(prog_name="orders"))
