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

from collections import OrderedDict
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from quart import Blueprint, Response, jsonify

from simple_scheduler import jobstore
from simple_scheduler.api.access import (
    authenticate,
    bool_arg,
    int_arg,
    is_number,
    services,
    visible_job,
    visible_task,
)
from simple_scheduler.api.errors import ApiError
from simple_scheduler.db import Row
from simple_scheduler.taskrun import task_dir

blueprint = Blueprint("logs", __name__)

CHUNK = 64 * 1024
STREAMS = {"out": ("stdout",), "err": ("stderr",), "all": ("stdout", "stderr")}
TEXT = "text/plain; charset=utf-8"
#: Live-log cursors kept (session, job); the oldest are forgotten first.
MAX_CURSORS = 10_000


@dataclass(frozen=True)
class Segment:
    path: Path
    start: int  # first byte to send
    end: int  # size when the request was made


def task_output_files(
    process_directory: Path, job_id: int, task: Row, kinds: Sequence[str]
) -> list[Path]:
    paths: list[Path] = []
    for attempt in range(1, int(task["attempts"]) + 1):
        directory = task_dir(process_directory, job_id, int(task["task_index"]), attempt)
        paths.extend(directory / kind for kind in kinds)
    return paths


def file_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def from_offset(paths: Iterable[Path], offset: int) -> tuple[list[Segment], int]:
    """Segments for the bytes after `offset` of the concatenation, and its total size."""
    segments: list[Segment] = []
    position = 0
    for path in paths:
        size = file_size(path)
        if size and position + size > offset:
            segments.append(Segment(path, max(0, offset - position), size))
        position += size
    return segments, position


async def chunks(segments: Sequence[Segment]) -> AsyncIterator[bytes]:
    for segment in segments:
        try:
            with segment.path.open("rb") as f:
                f.seek(segment.start)
                remaining = segment.end - segment.start
                while remaining > 0:
                    data = f.read(min(CHUNK, remaining))
                    if not data:
                        break
                    remaining -= len(data)
                    yield data
        except FileNotFoundError:
            continue  # removed meanwhile (job deleted): what was sent stays valid


def _stream(segments: Sequence[Segment], next_offset: int) -> Response:
    response = Response(chunks(segments), content_type=TEXT)
    response.headers["X-Next-Offset"] = str(next_offset)
    return response


def _read_all(paths: Iterable[Path]) -> str:
    """Whole files as text (the seed's small JSON endpoint only)."""
    parts: list[bytes] = []
    for path in paths:
        try:
            parts.append(path.read_bytes())
        except OSError:
            continue
    return b"".join(parts).decode("utf-8", "replace")


@blueprint.get("/scheduler/jobs/<job_id>/tasks/<task_name>/result/log/<stream>")
async def task_log(job_id: str, task_name: str, stream: str) -> Response:
    """A task's stdout (`out`), stderr (`err`) or both (`all`), from byte `offset`."""
    kinds = STREAMS.get(stream)
    if kinds is None:
        raise ApiError(404, f"no log named {stream!r}: use out, err or all")
    principal = await authenticate()
    job = await visible_job(job_id, principal)
    task = await visible_task(job, task_name)
    offset = int_arg("offset", 0, minimum=0)
    paths = task_output_files(services().config.process_directory, int(job["id"]), task, kinds)
    segments, total = from_offset(paths, offset)
    return _stream(segments, max(offset, total))


async def _job_paths(job: Row, kinds: Sequence[str]) -> list[Path]:
    job_id = int(job["id"])
    tasks = await jobstore.list_tasks(services().store, job_id, 0, int(job["total_tasks"]))
    directory = services().config.process_directory
    return [p for t in tasks for p in task_output_files(directory, job_id, t, kinds)]


@blueprint.get("/scheduler/jobs/<job_id>/result/log/all")
async def job_log(job_id: str) -> Response:
    """Every task's output in task order, from byte `offset`."""
    principal = await authenticate()
    job = await visible_job(job_id, principal)
    offset = int_arg("offset", 0, minimum=0)
    segments, total = from_offset(await _job_paths(job, STREAMS["all"]), offset)
    return _stream(segments, max(offset, total))


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


def _new_segments(paths: Iterable[Path], cursor: dict[str, int]) -> list[Segment]:
    segments = []
    for path in paths:
        size = file_size(path)
        seen = cursor.get(str(path), 0)
        if size > seen:
            segments.append(Segment(path, seen, size))
    return segments


@blueprint.get("/scheduler/jobs/<job_id>/livelog")
async def livelog(job_id: str) -> Response:
    """The job's output not yet returned to this session (`allLogs=true`: all of it)."""
    principal = await authenticate()
    job = await visible_job(job_id, principal)
    cursor = _cursor(job, principal.jti)
    if bool_arg("allLogs", False):
        cursor.clear()
    segments = _new_segments(await _job_paths(job, STREAMS["all"]), cursor)
    for segment in segments:
        cursor[str(segment.path)] = segment.end
    return _stream(segments, 0)


@blueprint.get("/scheduler/jobs/<job_id>/livelog/available")
async def livelog_available(job_id: str) -> Response:
    """How many bytes of output `livelog` would return now."""
    principal = await authenticate()
    job = await visible_job(job_id, principal)
    cursor = _cursor(job, principal.jti)
    segments = _new_segments(await _job_paths(job, STREAMS["all"]), cursor)
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
    directory = services().config.process_directory
    return jsonify(
        {
            "status": task["status"],
            "stdout": _read_all(task_output_files(directory, int(job["id"]), task, ("stdout",))),
            "stderr": _read_all(task_output_files(directory, int(job["id"]), task, ("stderr",))),
        }
    )
