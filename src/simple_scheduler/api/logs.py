"""Task and job output, read from the task directories by byte offset.

ProActive keeps the last 1,024 lines and only after the task ends; we serve the files the
monitor writes, complete, while the task runs, concatenated over attempts (1..attempts).
Sizes are taken once per request, so a growing file gives a consistent answer, and the
`X-Next-Offset` response header says where the next request should start to follow a
running task. Bodies are streamed in chunks: a 10 GB log never sits in memory.

`log/all` is stdout then stderr for each attempt (the two files are not interleaved in
time). `livelog` keeps a per-session cursor on each file and returns only what is new.
"""

from __future__ import annotations

import asyncio
import datetime
from collections import OrderedDict
from collections.abc import Iterable
from pathlib import Path

from quart import Blueprint, Response, jsonify

from simple_scheduler.api import outputs
from simple_scheduler.api.access import (
    authenticate,
    requested_job,
    requested_task,
    visible_job,
)
from simple_scheduler.api.context import services
from simple_scheduler.api.errors import ApiError
from simple_scheduler.api.requests import bool_arg, int_arg, is_number
from simple_scheduler.store import jobstore
from simple_scheduler.store.db import Row

blueprint = Blueprint("logs", __name__)

#: Live-log cursors kept (session, job); the oldest are forgotten first.
MAX_CURSORS = 10_000


@blueprint.get("/scheduler/jobs/<job_id>/tasks/<task_name>/result/log/<stream>")
async def task_log(job_id: str, task_name: str, stream: str) -> Response:
    """A task's stdout (`out`), stderr (`err`) or both (`all`), from byte `offset`."""
    kinds = outputs.STREAMS.get(stream)
    if kinds is None:
        raise ApiError(404, f"no log named {stream!r}: use out, err or all")
    job, task = await requested_task(job_id, task_name)
    return outputs.task_log(job, task, kinds, int_arg("offset", 0, minimum=0))


@blueprint.get("/scheduler/jobs/<job_id>/result/log/all")
async def job_log(job_id: str) -> Response:
    """Every task's output in task order, from byte `offset`."""
    job = await requested_job(job_id)
    return await outputs.job_log(job, int_arg("offset", 0, minimum=0))


def _cursor(job: Row, jti: str) -> dict[str, int]:
    cursors: OrderedDict[tuple[str, int], dict[str, int]] = services().livelog_cursors
    key = (jti, int(job["id"]))
    cursor = cursors.get(key)
    if cursor is None:
        cursor = cursors[key] = {}
        while len(cursors) > MAX_CURSORS:
            cursors.popitem(last=False)
    cursors.move_to_end(key)
    return cursor


def _new_segments(paths: Iterable[Path], cursor: dict[str, int]) -> list[outputs.Segment]:
    segments = []
    for path in paths:
        size = outputs.file_size(path)
        seen = cursor.get(str(path), 0)
        if size > seen:
            segments.append(outputs.Segment(path, seen, size))
    return segments


@blueprint.get("/scheduler/jobs/<job_id>/livelog")
async def livelog(job_id: str) -> Response:
    """The job's output not yet returned to this session (`allLogs=true`: all of it)."""
    principal = await authenticate()
    job = await visible_job(job_id, principal)
    cursor = _cursor(job, principal.jti)
    if bool_arg("allLogs", False):
        cursor.clear()
    segments = _new_segments(await outputs.job_paths(job, outputs.STREAMS["all"]), cursor)
    for segment in segments:
        cursor[str(segment.path)] = segment.end
    return outputs.stream(segments, 0)


@blueprint.get("/scheduler/jobs/<job_id>/livelog/available")
async def livelog_available(job_id: str) -> Response:
    """How many bytes of output `livelog` would return now."""
    principal = await authenticate()
    job = await visible_job(job_id, principal)
    cursor = _cursor(job, principal.jti)
    segments = _new_segments(await outputs.job_paths(job, outputs.STREAMS["all"]), cursor)
    return jsonify(sum(s.end - s.start for s in segments))


@blueprint.delete("/scheduler/jobs/<job_id>/livelog")
async def livelog_reset(job_id: str) -> Response:
    """Forget this session's live-log position: the next call starts from the beginning."""
    principal = await authenticate()
    job = await visible_job(job_id, principal)
    services().livelog_cursors.pop((principal.jti, int(job["id"])), None)
    return jsonify(True)


def _parse_task_id(text: str) -> tuple[int, int]:
    job_text, sep, index_text = text.partition("t")
    numbers = (job_text, index_text)
    if not sep or not all(is_number(n) and len(n) <= 18 for n in numbers):
        raise ApiError(404, f"task {text!r} does not exist (task ids look like 42t0)")
    return int(job_text), int(index_text)


@blueprint.get("/scheduler/tasks/<task_id>")
async def seed_task(task_id: str) -> Response:
    """The seed's task view: {"status", "stdout", "stderr"} for task id `<job>t<index>`."""
    principal = await authenticate()
    job_number, index = _parse_task_id(task_id)
    job = await visible_job(str(job_number), principal)
    task = await jobstore.get_task_by_index(services().store, job_number, index)
    if task is None:
        raise ApiError(404, f"task {task_id!r} does not exist")
    job_number = int(job["id"])
    out = outputs.task_output_files(job_number, task, ("stdout",))
    err = outputs.task_output_files(job_number, task, ("stderr",))
    base = f"/jobs/{job_number}/tasks/{task['name']}/result/log"
    # Read in a worker thread, each stream capped (the whole of a 10 GB log never sits
    # in memory, nor does reading it hold the loop).
    stdout, stderr = await asyncio.to_thread(
        lambda: (outputs.read_tail(out, f"{base}/out"), outputs.read_tail(err, f"{base}/err"))
    )
    return jsonify({"status": task["status"], "stdout": stdout, "stderr": stderr})


def _stamp(epoch_ms: int) -> str:
    moment = datetime.datetime.fromtimestamp(epoch_ms / 1000, datetime.UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S.") + f"{epoch_ms % 1000:03d}"


def server_log_lines(job: Row, tasks: Iterable[Row]) -> list[str]:
    """The job's life as the server saw it, from its recorded times, oldest first."""
    entries: list[tuple[int, int, str]] = []
    job_id = job["id"]
    entries.append(
        (
            int(job["submitted_time"]),
            0,
            f"job {job_id} ({job['name']}) submitted by {job['owner']},"
            f" {job['total_tasks']} tasks, priority {str(job['priority']).upper()}",
        )
    )
    for task in tasks:
        name = f"task {job_id}t{task['task_index']} ({task['name']})"
        if task["scheduled_time"] is not None:
            entries.append(
                (int(task["scheduled_time"]), 1, f"{name} dispatched, attempt {task['attempts']}")
            )
        if task["start_time"] is not None:
            entries.append((int(task["start_time"]), 2, f"{name} started"))
        if task["finished_time"] is not None:
            why = f": {task['reason']}" if task["reason"] else ""
            code = f", exit code {task['exit_code']}" if task["exit_code"] is not None else ""
            entries.append((int(task["finished_time"]), 3, f"{name} {task['status']}{code}{why}"))
    if job["finished_time"] is not None:
        entries.append((int(job["finished_time"]), 4, f"job {job_id} {job['status']}"))
    else:
        entries.append((int(job["submitted_time"]), 4, f"job {job_id} is {job['status']}"))
    entries.sort(key=lambda e: (e[0], e[1]))
    return [f"[{_stamp(t)}] {text}" for t, _, text in entries]


@blueprint.get("/scheduler/jobs/<job_id>/log/server")
async def job_server_log(job_id: str) -> Response:
    """ProActive's server log of a job, as text: its submission, each task's dispatch,
    start and end (with the exit code or reason), and its end."""
    job = await requested_job(job_id)
    tasks = await jobstore.list_tasks(services().store, int(job["id"]), 0, int(job["total_tasks"]))
    text = "".join(line + "\n" for line in server_log_lines(job, tasks))
    return Response(text, content_type=outputs.TEXT)
