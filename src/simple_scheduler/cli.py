"""The `simple-scheduler` command line."""

from __future__ import annotations

import logging

import typer

app = typer.Typer(no_args_is_help=True, add_completion=False)


@app.callback()
def _root() -> None:
    """simple-scheduler: a job hypervisor for Linux."""


@app.command()
def hypervisor(
    socket: str = typer.Option(..., "--socket", help="Unix socket to listen on"),
    process_directory: str = typer.Option(
        ..., "--process-directory", help="Root of the task directories"
    ),
) -> None:
    """Run the hypervisor: the process that starts and tracks tasks."""
    from simple_scheduler import hypervisor as hv

    logging.basicConfig(level=logging.INFO, format="%(asctime)s hypervisor %(message)s")
    hv.run(socket, process_directory)


def main() -> None:
    app()
