"""The command-line client: verbs that drive a server over its REST API (HTTP only).

Nothing here imports the server's modules (only `states`, for the status names), so the
client works against a server on another machine. `register(app)` adds the verbs to the
`simple-scheduler` typer app; httpx is imported only when a verb runs.
"""

from __future__ import annotations

from collections.abc import Callable

import typer

from simple_scheduler.client.errors import EXIT_CODES_HELP

PANEL = "Client (talks to a server: log in first)"


def _verbs() -> dict[str, Callable[..., None]]:
    from simple_scheduler.client import action_verbs, inspect_verbs, session_verbs, submit_verbs

    return {
        "login": session_verbs.login_command,
        "logout": session_verbs.logout_command,
        "submit": submit_verbs.submit_command,
        "jobs": inspect_verbs.jobs_command,
        "status": inspect_verbs.status_command,
        "logs": inspect_verbs.logs_command,
        "wait": submit_verbs.wait_command,
        "kill": action_verbs.kill_command,
        "pause": action_verbs.pause_command,
        "resume": action_verbs.resume_command,
        "restart": action_verbs.restart_command,
        "rm": action_verbs.rm_command,
        "validate": submit_verbs.validate_command,
    }


def register(app: typer.Typer) -> None:
    """Add the client verbs to the app in their own help panel, and the exit codes to
    every help page."""
    app.info.epilog = EXIT_CODES_HELP
    for name, function in _verbs().items():
        app.command(name, rich_help_panel=PANEL, epilog=EXIT_CODES_HELP)(function)
