"""What every client verb shares: the error wrapper, the connection, argument types.

Failures are `ClientError`s carrying their exit code (`errors`); `client_command` turns
them into one line on stderr, so no verb prints a traceback for a user's mistake or an
unreachable server.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, ParamSpec, TypeVar

import typer

from simple_scheduler.client import output, session
from simple_scheduler.client.errors import (
    INTERRUPTED,
    NO_SERVER,
    PIPE_CLOSED,
    USAGE,
    ClientError,
)

if TYPE_CHECKING:
    from simple_scheduler.client.rest import Rest

P = ParamSpec("P")
R = TypeVar("R")

JobArg = Annotated[int, typer.Argument(help="Job id.", min=0, show_default=False)]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON (for scripts).")]
VariableOption = Annotated[
    list[str] | None,
    typer.Option(
        "--variable",
        "-v",
        help="Set a workflow variable, NAME=VALUE (repeatable).",
        metavar="NAME=VALUE",
        show_default=False,
    ),
]
WorkflowArg = Annotated[
    str, typer.Argument(help="Workflow XML (or a zip holding one); - reads stdin.")
]


def client_command(function: Callable[P, R]) -> Callable[P, R]:
    """Report a ClientError as `error: ...` with its exit code; Ctrl-C exits 130, and a
    closed stdout 141 (as if killed by SIGPIPE) rather than click's 1, which means "the job
    failed" here."""

    @functools.wraps(function)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return function(*args, **kwargs)
        except ClientError as exc:
            output.error(exc.message)
            raise typer.Exit(exc.code) from None
        except KeyboardInterrupt:
            output.note("interrupted")
            raise typer.Exit(INTERRUPTED) from None
        except BrokenPipeError:  # `| head`: the reader has what it wanted
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            raise typer.Exit(PIPE_CLOSED) from None

    return run


def open_rest(where: session.Session, *, keep_alive: bool = False) -> Rest:
    """httpx is imported here, not at start-up: the server and admin commands never need it."""
    from simple_scheduler.client.rest import Rest

    return Rest(where, keep_alive=keep_alive)


def connect(*, keep_alive: bool = False) -> Rest:
    """A connection with the current session; none at all is "not logged in" (exit 3).

    `keep_alive` for the verbs that may wait for long (wait, follow): see `Rest`.
    """
    current = session.current()
    if current.token is None:
        raise ClientError(
            NO_SERVER, f"not logged in: run `simple-scheduler login {current.url}` first"
        )
    return open_rest(current, keep_alive=keep_alive)


def read_workflow(path: str) -> tuple[bytes, str]:
    """The workflow's bytes and a file name for the upload; `-` reads standard input."""
    if path == "-":
        return sys.stdin.buffer.read(), "workflow.xml"
    try:
        return Path(path).read_bytes(), Path(path).name
    except OSError as exc:
        raise ClientError(USAGE, f"cannot read {path}: {exc.strerror or exc}") from None


def parse_variables(pairs: list[str] | None) -> dict[str, str]:
    variables: dict[str, str] = {}
    for pair in pairs or ():
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise ClientError(USAGE, f"bad variable {pair!r}: write NAME=VALUE")
        variables[name.strip()] = value
    return variables
