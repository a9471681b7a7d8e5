"""The subcommands of the Typer ``orders`` CLI, one plain function per module.

Each module imports a heavy library at the top, as real command modules do:
`report` imports SQLAlchemy, `upload` imports boto3. A function's docstring
is its help text.
"""

__all__: list[str] = []
