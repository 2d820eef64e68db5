"""The client verbs of `simple-scheduler`: log in, submit, watch, read output, act on jobs.

Each verb is a thin function: parse the arguments, call `rest`, print with `output`.
Failures are `ClientError`s carrying their exit code (`errors`); `client_command` turns
them into one line on stderr, so no verb prints a traceback for a user's mistake or an
unreachable server.
"""

from __future__ import annotations

import functools
import getpass
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, ParamSpec, TypeVar

import typer

from simple_scheduler.client import output, progress, session, shapes
from simple_scheduler.client.errors import (
    EXIT_CODES_HELP,
    INTERRUPTED,
    JOB_FAILED,
    NO_SERVER,
    PIPE_CLOSED,
    USAGE,
    ClientError,
)
from simple_scheduler.client.follow import JobLogFollower, TaskLogFollower
from simple_scheduler.client.watch import JobInfo, PollingSource, exit_code, watch
from simple_scheduler.states import JOB_TERMINAL, JobStatus, TaskStatus

if TYPE_CHECKING:
    from simple_scheduler.client.rest import Rest

P = ParamSpec("P")
R = TypeVar("R")

PANEL = "Client (talks to a server: log in first)"

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


# Sessions.


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
                same = stored is not None and stored.url == base
                user = stored.user if same and stored and stored.user else getpass.getuser()
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
    """Log out: the server revokes the session, and the saved session is removed."""
    current = session.current()
    revoke_error: ClientError | None = None
    if current.token:
        try:
            with open_rest(current) as rest:
                rest.logout()
        except ClientError as exc:
            if exc.status != 401:  # an expired session needs no revoking
                revoke_error = exc
    removed = session.remove()
    if revoke_error is not None:
        what = "the saved session was removed, but " if removed else ""
        raise ClientError(
            NO_SERVER, f"{what}the server could not revoke it: {revoke_error.message}"
        )
    output.note("logged out" if current.token or removed else "not logged in")


# Jobs.


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
    with progress.display(job_id, bar) as shown:
        info = watch(PollingSource(rest, job_id), shown.update, follower)
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
            if limit and len(infos) >= limit:
                break
    if as_json:
        output.print_json([shapes.job_summary(info) for info in infos])
        return
    now = shapes.now_ms()
    output.table(
        ("ID", "NAME", "OWNER", "STATUS", "TASKS", "FAILED", "SUBMITTED", "DURATION"),
        [_job_line(info, now) for info in infos],
        status_column=3,
    )


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
                rest.task_state(job, task)  # a clear 404 for an unknown task
                rest.copy_log(job, task, stream, 0, sys.stdout.buffer)
                sys.stdout.buffer.flush()
                return
            tail = TaskLogFollower(rest, job, task, stream, sys.stdout.buffer)
            watch(PollingSource(rest, job), _ignore, tail)
            return
        every = JobLogFollower(rest, job, (stream,), colour=output.fancy(sys.stdout))
        if follow:
            watch(PollingSource(rest, job), _ignore, every)
        else:
            every.pump(rest.job_info(job), True)


def _ignore(info: JobInfo) -> None:
    pass


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


COMMANDS: dict[str, Callable[..., None]] = {
    "login": login_command,
    "logout": logout_command,
    "submit": submit_command,
    "jobs": jobs_command,
    "status": status_command,
    "logs": logs_command,
    "wait": wait_command,
    "kill": kill_command,
    "pause": pause_command,
    "resume": resume_command,
    "restart": restart_command,
    "rm": rm_command,
    "validate": validate_command,
}


def register(app: typer.Typer) -> None:
    """Add the client verbs to the `simple-scheduler` app, in their own help panel, and the
    exit codes to every help page."""
    app.info.epilog = EXIT_CODES_HELP
    for name, function in COMMANDS.items():
        app.command(name, rich_help_panel=PANEL, epilog=EXIT_CODES_HELP)(function)
