"""`kill`, `pause`, `resume`, `restart` and `rm`: acting on a job or one of its tasks."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from simple_scheduler.client.command import JobArg, client_command, connect
from simple_scheduler.client.errors import JOB_FAILED, ClientError
from simple_scheduler.states import TaskStatus


@client_command
def kill_command(
    job: JobArg,
    task: Annotated[str | None, typer.Argument(help="Kill only this running task.")] = None,
) -> None:
    """Kill a job (its running tasks are stopped, the others never start), or one task."""
    with connect() as rest:
        if task is None:
            if not rest.job_action(job, "kill"):
                raise ClientError(JOB_FAILED, f"job {job} had already ended")
            sys.stdout.write(f"job {job} killed\n")
        else:
            rest.task_action(job, task, "kill")
            sys.stdout.write(f"task {task} of job {job} killed\n")


@client_command
def pause_command(job: JobArg) -> None:
    """Pause a job: running tasks go on, no other task starts until `resume`."""
    with connect() as rest:
        changed = rest.job_action(job, "pause")
    sys.stdout.write(f"job {job} paused\n" if changed else f"job {job} was already paused\n")


@client_command
def resume_command(job: JobArg) -> None:
    """Resume a paused job."""
    with connect() as rest:
        changed = rest.job_action(job, "resume")
    sys.stdout.write(f"job {job} resumed\n" if changed else f"job {job} was not paused\n")


@client_command
def restart_command(job: JobArg, task: Annotated[str, typer.Argument(help="Task name.")]) -> None:
    """Run a task again: an IN_ERROR task (fresh executions), or a running one (killed first)."""
    with connect() as rest:
        status = rest.task_state(job, task)["taskInfo"]["taskStatus"]
        if status == TaskStatus.IN_ERROR:
            restarted = rest.task_action(job, task, "restartInErrorTask")
        elif status == TaskStatus.RUNNING:
            restarted = rest.task_action(job, task, "restart")
        else:
            raise ClientError(
                JOB_FAILED,
                f"task {task} of job {job} is {status}: only a RUNNING or IN_ERROR task restarts",
            )
    if not restarted:
        raise ClientError(JOB_FAILED, f"task {task} of job {job} was not restarted")
    sys.stdout.write(f"task {task} of job {job} restarted\n")


@client_command
def rm_command(jobs: Annotated[list[int], typer.Argument(help="Job ids.", min=0)]) -> None:
    """Remove jobs, their output and their records (a live job is killed first)."""
    with connect() as rest:
        for job in jobs:
            rest.remove(job)
            sys.stdout.write(f"job {job} removed\n")
