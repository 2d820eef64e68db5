"""`jobs`, `status` and `logs`: reading what the server knows about jobs and tasks."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from simple_scheduler.client import output, shapes
from simple_scheduler.client.command import JobArg, JsonOption, client_command, connect
from simple_scheduler.client.errors import USAGE, ClientError
from simple_scheduler.client.eventsource import job_source
from simple_scheduler.client.follow import JobLogFollower, TaskLogFollower
from simple_scheduler.client.watch import JobInfo, watch
from simple_scheduler.states import JOB_TERMINAL, JobStatus


@client_command
def jobs_command(
    show_all: Annotated[
        bool, typer.Option("--all", "-a", help="Also the jobs that have ended.")
    ] = False,
    status: Annotated[
        list[str] | None,
        typer.Option(
            "--status",
            "-s",
            help="Only jobs in this status (repeatable or comma-separated; implies --all).",
            show_default=False,
        ),
    ] = None,
    limit: Annotated[
        int, typer.Option("--limit", "-n", help="At most this many, newest first (0: all).", min=0)
    ] = 100,
    as_json: JsonOption = False,
) -> None:
    """List jobs, newest first: the live ones, or all with --all (admins see everybody's)."""
    wanted = _statuses(status)
    infos: list[JobInfo] = []
    with connect() as rest:
        for item in rest.jobs():
            info = item["jobInfo"]
            if wanted is not None:
                if info["status"] not in wanted:
                    continue
            elif not show_all and info["status"] in JOB_TERMINAL:
                continue
            infos.append(info)
            if limit and len(infos) > limit:  # one more than shown: are there others?
                break
    more = bool(limit) and len(infos) > limit
    del infos[limit or len(infos) :]
    if as_json:
        output.print_json([shapes.job_summary(info) for info in infos])
        return
    now = shapes.now_ms()
    output.table(
        ("ID", "NAME", "OWNER", "STATUS", "TASKS", "FAILED", "SUBMITTED", "DURATION"),
        [_job_line(info, now) for info in infos],
        status_column=3,
    )
    if more:
        output.note(f"(the newest {limit} shown: --limit N for more, 0 for all)")


def _statuses(values: list[str] | None) -> set[str] | None:
    if not values:
        return None
    names = {part.strip().upper() for value in values for part in value.split(",") if part}
    unknown = names - set(JobStatus)
    if unknown:
        known = ", ".join(JobStatus)
        raise ClientError(USAGE, f"unknown job status {', '.join(sorted(unknown))}: use {known}")
    return names


def _job_line(info: JobInfo, now: int) -> list[str]:
    start, end = int(info["startTime"]), int(info["finishedTime"])
    elapsed = None if start < 0 else max(0, (end if end >= 0 else now) - start)
    return [
        str(info["jobId"]["id"]),
        str(info["jobId"]["readableName"]),
        str(info["jobOwner"]),
        str(info["status"]),
        f"{info['numberOfFinishedTasks']}/{info['totalNumberOfTasks']}",
        str(info["numberOfFailedTasks"] + info["numberOfFaultyTasks"]),
        output.local_time(info["submittedTime"]),
        output.duration(elapsed),
    ]


@client_command
def status_command(job: JobArg, as_json: JsonOption = False) -> None:
    """A job's status and a table of its tasks: status, attempts, duration, exit, reason."""
    with connect() as rest:
        state = rest.job_state(job)
    report = shapes.job_status(state, shapes.now_ms())
    if as_json:
        output.print_json(report)
        return
    summary = report["job"]
    counts = summary["tasks"]
    sys.stdout.write(
        f"job {summary['id']} ({summary['name']}, {summary['owner']}): {summary['status']},"
        f" {counts['finished']}/{counts['total']} tasks done,"
        f" {counts['failed'] + counts['faulty']} failed\n"
    )
    output.table(
        ("TASK", "STATUS", "ATTEMPTS", "DURATION", "EXIT", "REASON"),
        [
            [
                task["name"],
                task["status"],
                f"{task['attempts']}/{task['max_attempts']}",
                output.duration(
                    None if task["duration_s"] is None else round(task["duration_s"] * 1000)
                ),
                output.exit_text(task["exit_code"], task["signal"]),
                task["reason"] or "",
            ]
            for task in report["tasks"]
        ],
        status_column=1,
    )


@client_command
def logs_command(
    job: JobArg,
    task: Annotated[
        str | None,
        typer.Argument(help="Task name (default: every task, lines prefixed by task name)."),
    ] = None,
    err: Annotated[bool, typer.Option("--err", "-e", help="stderr instead of stdout.")] = False,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing until the task or job ends.")
    ] = False,
) -> None:
    """Print a job's or a task's output (all of it, over every attempt)."""
    stream = "err" if err else "out"
    with connect(keep_alive=follow) as rest:
        if task is not None:
            if not follow:
                rest.copy_log(job, task, stream, 0, sys.stdout.buffer)
                sys.stdout.buffer.flush()
                return
            tail = TaskLogFollower(rest, job, task, stream, sys.stdout.buffer)
            with job_source(rest, job) as source:
                watch(source, _ignore, tail)
            return
        every = JobLogFollower(rest, job, (stream,), colour=output.fancy(sys.stdout))
        if follow:
            with job_source(rest, job) as source:
                watch(source, _ignore, every)
        else:
            every.pump(rest.job_info(job), True)


def _ignore(info: JobInfo) -> None:
    pass
