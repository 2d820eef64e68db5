"""The `simple-scheduler` command line: the server, the hypervisor, and administration."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from simple_scheduler.cli import admin

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
    create_admin: Annotated[
        str | None,
        typer.Option(
            "--create-admin",
            metavar="NAME",
            help="Create this admin user when it does not exist yet (password from"
            " $SIMPLE_SCHEDULER_ADMIN_PASSWORD, else asked); later runs just start.",
        ),
    ] = None,
) -> None:
    """Run the REST server: migrations, keys, the hypervisor, then serve until SIGTERM.

    Running tasks survive a stop or a crash of the server; the next start picks them up.
    One server per data directory. A clean stop with no task running also stops the
    hypervisor; one left with running tasks exits once they end and no server is back.
    """
    from simple_scheduler.server import run_server as run

    raise typer.Exit(run(config, create_admin))


@app.command(
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    add_help_option=False,
)
def hypervisor(ctx: typer.Context) -> None:
    """Run the hypervisor: the process that starts and tracks tasks (see --help).

    run-server starts one itself when none listens on its socket. The options are parsed
    by the hypervisor itself (`execution.launcher.HypervisorArgs`), their one definition.
    """
    from simple_scheduler.hypervisor.main import main as hypervisor_main

    code = hypervisor_main(list(ctx.args))
    if code:
        raise typer.Exit(code)


admin.register(app)


def _register_client_commands() -> None:
    from simple_scheduler.client import register

    register(app)


_register_client_commands()


def main() -> None:
    app()
