"""`login` and `logout`: the session a client keeps between commands (see `session`)."""

from __future__ import annotations

import getpass
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from simple_scheduler.client import output, session
from simple_scheduler.client.command import client_command, open_rest
from simple_scheduler.client.errors import NO_SERVER, USAGE, ClientError


@client_command
def login_command(
    url: Annotated[
        str | None,
        typer.Argument(
            help="Server URL, e.g. http://host:8000 (default: $SIMPLE_SCHEDULER_URL, the"
            f" last login's, else {session.DEFAULT_URL}).",
            show_default=False,
        ),
    ] = None,
    user: Annotated[
        str | None,
        typer.Option("--user", "-u", help="Login name (default: the last one, else $USER)."),
    ] = None,
    credential: Annotated[
        Path | None,
        typer.Option(
            "--credential",
            help="Log in with a credential file (create-credential-token) instead of a password.",
            dir_okay=False,
        ),
    ] = None,
    password_stdin: Annotated[
        bool,
        typer.Option("--password-stdin", help="Read the password from stdin (for scripts)."),
    ] = False,
) -> None:
    """Log in and keep the session in ~/.config/simple-scheduler/session.json (mode 0600)."""
    stored = session.load_stored()
    if url:
        base = session.normalize_url(url)
    elif env_url := os.environ.get(session.ENV_URL):
        base = session.normalize_url(env_url)
    else:
        base = stored.url if stored else session.DEFAULT_URL
    with open_rest(session.Session(base)) as rest:
        if credential is not None:
            try:
                data = credential.read_bytes()
            except OSError as exc:
                raise ClientError(USAGE, f"cannot read {credential}: {exc.strerror}") from None
            token = rest.login({"credential": (credential.name, data)}, {})
        else:
            if user is None:
                remembered = stored.user if stored is not None and stored.url == base else None
                user = remembered or getpass.getuser()
            password = _password(user, base, password_stdin)
            token = rest.login(None, {"username": user, "password": password})
    with open_rest(session.Session(base, token)) as rest:
        name = rest.current_user()
    path = session.save(session.Session(base, token, name))
    output.note(f"logged in to {base} as {name} (session saved in {path})")
    if os.environ.get(session.ENV_TOKEN):
        output.note(f"note: ${session.ENV_TOKEN} is set and overrides the saved session")


def _password(user: str, url: str, from_stdin: bool) -> str:
    if from_stdin:
        line = sys.stdin.readline()
        return line[:-1] if line.endswith("\n") else line
    try:
        return str(typer.prompt(f"password for {user} at {url}", hide_input=True))
    except typer.Abort:
        raise ClientError(USAGE, "no password given") from None


@client_command
def logout_command() -> None:
    """Log out: the server revokes the session in use, and the saved one is removed if it
    is that session ($SIMPLE_SCHEDULER_TOKEN's or another server's leaves it alone)."""
    current = session.current()
    if current.token is None:
        output.note(f"not logged in to {current.url}")
        return
    stored = session.load_stored()
    revoke_error: ClientError | None = None
    try:
        with open_rest(current) as rest:
            rest.logout()
    except ClientError as exc:
        if exc.status != 401:  # an expired session needs no revoking
            revoke_error = exc
    removed = stored is not None and stored.token == current.token and session.remove()
    if revoke_error is not None:
        what = "the saved session was removed, but " if removed else ""
        raise ClientError(
            NO_SERVER, f"{what}the server could not revoke it: {revoke_error.message}"
        )
    output.note(f"logged out of {current.url}")
