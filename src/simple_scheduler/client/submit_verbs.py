"""`submit`, `wait` and `validate`: sending workflows, and waiting for their outcome."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated

import typer

from simple_scheduler.client import output, progress, shapes
from simple_scheduler.client.command import (
    JobArg,
    JsonOption,
    VariableOption,
    WorkflowArg,
    client_command,
    connect,
    parse_variables,
    read_workflow,
)
from simple_scheduler.client.errors import USAGE
from simple_scheduler.client.eventsource import job_source
from simple_scheduler.client.follow import JobLogFollower
from simple_scheduler.client.watch import JobInfo, exit_code, watch
from simple_scheduler.states import JobStatus

if TYPE_CHECKING:
    from simple_scheduler.client.rest import Rest


#: Job statuses that need someone to act before the job can end: said once on stderr, so
#: a CI log shows why a wait lasts.
STUCK = {
    JobStatus.PAUSED: "`simple-scheduler resume` lets it go on",
    JobStatus.IN_ERROR: "a task is suspended after an error (`restart JOB TASK`, or `kill`)",
}


@client_command
def submit_command(
    workflow: WorkflowArg,
    variables: VariableOption = None,
    wait_: Annotated[
        bool,
        typer.Option("--wait", "-w", help="Wait for the end, with a progress bar on a terminal."),
    ] = False,
    follow: Annotated[
        bool,
        typer.Option("--follow", "-f", help="Stream the tasks' output until the job ends."),
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Submit a workflow and print the job id.

    With --wait or --follow, exit with the job's outcome (0: FINISHED, no task failed).
    """
    data, filename = read_workflow(workflow)
    with connect(keep_alive=wait_ or follow) as rest:
        job = rest.submit(data, filename, parse_variables(variables))
        job_id = int(job["id"])
        if not as_json:
            sys.stdout.write(f"{job_id}\n")
            sys.stdout.flush()
        if not (wait_ or follow):
            if as_json:
                output.print_json({"id": job_id, "name": job["readableName"]})
            return
        info = _wait(rest, job_id, bar=wait_, follow=("out", "err") if follow else ())
    if as_json:
        output.print_json(shapes.job_summary(info))
    raise typer.Exit(exit_code(info))


def _wait(rest: Rest, job_id: int, *, bar: bool, follow: tuple[str, ...] = ()) -> JobInfo:
    """Watch until the job ends; its final info (the summary line is on stderr)."""
    follower = (
        JobLogFollower(rest, job_id, follow, colour=output.fancy(sys.stdout)) if follow else None
    )
    last_status = ""

    def update(info: JobInfo) -> None:
        nonlocal last_status
        shown.update(info)
        status = info["status"]
        if status in STUCK and status != last_status:
            output.note(f"job {job_id} is {status}: {STUCK[status]}; still waiting")
        last_status = status

    with progress.display(job_id, bar) as shown, job_source(rest, job_id) as source:
        info = watch(source, update, follower)
    output.note(progress.summary(info))
    return info


@client_command
def wait_command(job: JobArg, as_json: JsonOption = False) -> None:
    """Wait for a job to end (progress bar on a terminal); exit with its outcome."""
    with connect(keep_alive=True) as rest:
        info = _wait(rest, job, bar=True)
    if as_json:
        output.print_json(shapes.job_summary(info))
    raise typer.Exit(exit_code(info))


@client_command
def validate_command(workflow: WorkflowArg, variables: VariableOption = None) -> None:
    """Check a workflow without submitting it: every problem with its line; exit 2 if any."""
    data, filename = read_workflow(workflow)
    with connect() as rest:
        result = rest.validate(data, filename, parse_variables(variables))
    if result.get("valid"):
        sys.stdout.write(f"{workflow}: valid\n")
        return
    problems = str(result.get("errorMessage") or "invalid workflow").splitlines()
    for problem in problems:
        sys.stdout.write(f"{workflow}: {problem}\n")
    raise typer.Exit(USAGE)
