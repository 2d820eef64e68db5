"""The `simple-scheduler` command line: the server, the hypervisor, and administration."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(no_args_is_help=True, add_completion=False)


@app.callback()
def _root() -> None:
    """simple-scheduler: a job hypervisor for Linux with a ProActive-compatible REST API."""


@app.command("run-server")
def run_server(
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            "-c",
            help="TOML configuration file (default: $SIMPLE_SCHEDULER_CONFIG, else built-in"
            " defaults under ./simple-scheduler-data).",
            dir_okay=False,
        ),
    ] = None,
) -> None:
    """Run the REST server: migrations, keys, the hypervisor, then serve until SIGTERM.

    Running tasks survive a stop or a crash of the server; the next start picks them up.
    """
    from simple_scheduler.server import run_server as run

    raise typer.Exit(run(config))


@app.command()
def hypervisor(
    socket: str = typer.Option(..., "--socket", help="Unix socket to listen on"),
    process_directory: str = typer.Option(
        ..., "--process-directory", help="Root of the task directories"
    ),
    fsync: bool = typer.Option(
        True, "--fsync/--no-fsync", help="fsync each task's status file (durability)"
    ),
) -> None:
    """Run the hypervisor: the process that starts and tracks tasks.

    run-server starts one itself when none listens on its socket.
    """
    from simple_scheduler import hypervisor as hv

    argv = ["--socket", socket, "--process-directory", process_directory]
    code = hv.main([*argv, "--fsync" if fsync else "--no-fsync"])
    if code:
        raise typer.Exit(code)


def _register_admin_commands() -> None:
    try:
        from simple_scheduler import admin_cli
    except ImportError as exc:  # pragma: no cover - only while the tree is incomplete
        message = f"administration commands unavailable: {exc}"

        @app.command("create-user")
        def missing() -> None:
            """(unavailable in this build)"""
            typer.echo(f"error: {message}", err=True)
            raise typer.Exit(1)

        return
    admin_cli.register(app)


_register_admin_commands()


def _register_client_commands() -> None:
    from simple_scheduler.client import register

    register(app)


_register_client_commands()


def main() -> None:
    app()
