"""The command-line client: verbs that drive a server over its REST API (HTTP only).

Nothing here imports the server's modules (only `states`, for the status names), so the
client works against a server on another machine. `register(app)` adds the verbs to the
`simple-scheduler` typer app.
"""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    from simple_scheduler.client.commands import register as add_commands

    add_commands(app)
