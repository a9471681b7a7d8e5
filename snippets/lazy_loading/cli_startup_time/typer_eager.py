"""``orders`` with Typer, the usual way: every command module imported up front."""

from __future__ import annotations

import typer

# --8<-- [start:eager]
from snippets.lazy_loading.cli_startup_time.typer_commands import report, upload

__all__ = ["app"]

app = typer.Typer(help="Orders tools.", add_completion=False)
app.command("report")(report.report)
app.command("upload")(upload.upload)
# --8<-- [end:eager]

if __name__ == "__main__":
    app(prog_name="orders")
