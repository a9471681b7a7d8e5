"""The subcommands of the ``orders`` CLI, one module each.

Each module imports a heavy library at the top, as real command modules do:
`report` imports SQLAlchemy, `upload` imports boto3. Each offers the argparse
interface (`add_arguments`, `run`, `main`) and a click command (`command`).
"""

__all__: list[str] = []
