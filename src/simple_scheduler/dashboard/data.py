"""JSON the dashboard needs and the ProActive REST API does not give in one cheap call.

Everything else the pages show comes from `/rest/scheduler/...` itself. These endpoints
exist because a browser drawing a 10,000-task job cannot afford ProActive's shapes:
`GET /jobs/{id}` is ~800 bytes per task and has no edges, task listings stop at 256 per
page, `jobsinfo` has no filters, and `log/out` returns everything after an offset in one
answer. Each endpoint starts with the API's own checks (`authenticate`, `may_see`, the
same 404 for another user's job), so a user sees exactly what the API shows them.

- `session`: who is logged in, and the CSRF token state changes must carry;
- `jobs`: `jobsinfo`, filtered by status and name in SQL;
- `jobs/{id}/graph`: names, statuses (one character each) and edges of every task;
- `jobs/{id}/live`: the job's info and the status string again, what the page polls;
- `jobs/{id}/tasks/{name}`: the task's state and the sizes of each attempt's logs;
- `.../attempts/{n}/{stdout|stderr}`: one attempt's log from an offset, at most
  `MAX_CHUNK` bytes per answer (or all of it as a download);
- `workflow`: an upload's variables (with models) and problems, without storing it.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import orjson
from quart import Blueprint, Response, jsonify, request

from simple_scheduler.api import csrf, views
from simple_scheduler.api.access import (
    authenticate,
    may_see,
    visible_task,
)
from simple_scheduler.api.context import services
from simple_scheduler.api.errors import ApiError
from simple_scheduler.api.outputs import Segment, chunks, file_size
from simple_scheduler.api.requests import int_arg, parse_job_id, variables_from_json
from simple_scheduler.auth.sessions import AuthError, Principal
from simple_scheduler.dashboard import bulk
from simple_scheduler.dashboard.inspect import inspect_workflow
from simple_scheduler.execution.backend import OutputKind
from simple_scheduler.states import TASK_COUNTERS, JobStatus, TaskStatus
from simple_scheduler.store.db import Row

blueprint = Blueprint("dashboard_data", __name__, url_prefix="/dashboard/api")

#: One character per task status: a 10,000-task job's statuses are a 10 KB string.
STATUS_CODES: dict[str, str] = {s.value: chr(ord("A") + i) for i, s in enumerate(TaskStatus)}
#: JobInfoData's counter of each `jobs` counter column (as views.job_info names them).
_COUNTER_FIELDS = {
    "pending_tasks": "numberOfPendingTasks",
    "running_tasks": "numberOfRunningTasks",
    "finished_tasks": "numberOfFinishedTasks",
    "failed_tasks": "numberOfFailedTasks",
    "faulty_tasks": "numberOfFaultyTasks",
    "in_error_tasks": "numberOfInErrorTasks",
}
#: The JobInfoData counters a task in each status (by code) counts in: the page follows
#: the counters from task events (states.TASK_COUNTERS, the one definition).
COUNTED_AS: dict[str, list[str]] = {
    STATUS_CODES[status.value]: [_COUNTER_FIELDS[c] for c in columns]
    for status, columns in TASK_COUNTERS.items()
}
_UNKNOWN_CODE = "?"
#: Job columns the pages read (`SELECT *` would copy the whole workflow XML every poll).
JOB_COLUMNS = (
    "id, owner, name, priority, status, project_name, description, variables,"
    " generic_information, submitted_time, start_time, finished_time, in_error_time,"
    " total_tasks, pending_tasks, running_tasks, finished_tasks, faulty_tasks, failed_tasks,"
    " in_error_tasks"
)
#: Largest page of the job list.
MAX_JOBS_PAGE = 200
#: Default and largest log chunk: a page follows a 10 GB log without holding it.
DEFAULT_CHUNK = 256 * 1024
MAX_CHUNK = 1024 * 1024
LOG_STREAMS: tuple[OutputKind, ...] = ("stdout", "stderr")
TEXT = "text/plain; charset=utf-8"


def _no_store(response: Response) -> Response:
    response.headers["Cache-Control"] = "no-store"
    return response


def _fast_json(body: Any) -> Response:
    """orjson for the large answers (a 10,000-task graph is ~250 KB of JSON)."""
    return _no_store(Response(orjson.dumps(body), content_type="application/json"))


async def _job(job_id_text: str, principal: Principal) -> Row:
    """`access.visible_job` without the XML column: the same rule and the same 404."""
    job_id = parse_job_id(job_id_text)
    row = await services().store.fetch_one(
        f"SELECT {JOB_COLUMNS} FROM jobs WHERE id = :id", {"id": job_id}
    )
    if row is None or not may_see(principal, row):
        raise ApiError(404, f"job {job_id} does not exist")
    return row


@blueprint.get("/session")
async def session() -> Response:
    """The logged-in user and the token that cookie-authenticated state changes send;
    `{"user": null}` when there is no valid session (the login page asks this first,
    and "nobody yet" is an answer there, not an error)."""
    try:
        principal = await authenticate()
    except AuthError:
        return _no_store(jsonify({"user": None}))
    return _no_store(
        jsonify(
            {
                "user": principal.name,
                "admin": principal.is_admin,
                "expires": principal.exp * 1000,
                "csrfHeader": csrf.HEADER,
                "csrfToken": csrf.token_for(services().keys, principal.jti),
            }
        )
    )


def _statuses_filter() -> list[str]:
    raw = [s.strip().upper() for s in request.args.get("status", "").split(",") if s.strip()]
    known = {s.value for s in JobStatus}
    for status in raw:
        if status not in known:
            shown = status if len(status) <= 40 else status[:40] + "..."
            raise ApiError(400, f"unknown job status {shown!r}: one of {', '.join(sorted(known))}")
    return raw


def _like_pattern(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


@blueprint.get("/jobs")
async def jobs() -> Response:
    """`jobsinfo` (RestPage<UserJobData>, newest first) with `status=A,B` and `name=`
    (substring, case-insensitive for ASCII) filters."""
    principal = await authenticate()
    index = int_arg("index", 0, minimum=0)
    limit = min(int_arg("limit", 25, minimum=1), MAX_JOBS_PAGE)
    clauses: list[str] = []
    values: dict[str, Any] = {}
    if not principal.is_admin:
        clauses.append("owner = :owner")
        values["owner"] = principal.name
    statuses = _statuses_filter()
    if statuses:
        names = [f":s{i}" for i in range(len(statuses))]
        clauses.append(f"status IN ({', '.join(names)})")
        values.update({f"s{i}": s for i, s in enumerate(statuses)})
    name = request.args.get("name", "").strip()
    if name:
        # lower() on both sides: SQLite's LIKE ignores ASCII case, PostgreSQL's does not.
        clauses.append("lower(name) LIKE :name ESCAPE '\\'")
        values["name"] = _like_pattern(name[:255].lower())
    where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
    store = services().store
    total = int(await store.fetch_val(f"SELECT COUNT(*) FROM jobs{where}", values) or 0)
    rows = await store.fetch_all(
        f"SELECT {JOB_COLUMNS} FROM jobs{where} ORDER BY id DESC LIMIT :limit OFFSET :offset",
        {**values, "limit": limit, "offset": index},
    )
    return _no_store(jsonify(views.rest_page([views.user_job(r) for r in rows], total)))


def _codes(statuses: list[str]) -> str:
    return "".join([STATUS_CODES.get(s, _UNKNOWN_CODE) for s in statuses])


async def _status_string(job_id: int) -> str:
    found = await bulk.rows(
        services().store,
        "SELECT status FROM tasks WHERE job_id = :id ORDER BY task_index",
        {"id": job_id},
    )
    return _codes([r[0] for r in found])


@blueprint.get("/jobs/<job_id>/graph")
async def graph(job_id: str) -> Response:
    """Every task's name and status and every edge, compactly: what the graph is drawn
    from. `edges` is flat: child, parent, child, parent, ... (task indexes)."""
    principal = await authenticate()
    job = await _job(job_id, principal)
    store = services().store
    number = int(job["id"])
    tasks = await bulk.rows(
        store,
        "SELECT name, status FROM tasks WHERE job_id = :id ORDER BY task_index",
        {"id": number},
    )
    deps = await bulk.rows(
        store, "SELECT task_index, parent FROM dependencies WHERE job_id = :id", {"id": number}
    )
    edges = [int(value) for row in deps for value in row]
    return _fast_json(
        {
            "job": views.job_info(job),
            "codes": {code: status for status, code in STATUS_CODES.items()},
            "counters": COUNTED_AS,
            "names": [r[0] for r in tasks],
            "statuses": _codes([r[1] for r in tasks]),
            "edges": edges,
        }
    )


@blueprint.get("/jobs/<job_id>/live")
async def live(job_id: str) -> Response:
    """The job's info and its task statuses now (`statuses=false`: the info only)."""
    principal = await authenticate()
    job = await _job(job_id, principal)
    body: dict[str, Any] = {"job": views.job_info(job)}
    if request.args.get("statuses", "true") != "false":
        body["statuses"] = await _status_string(int(job["id"]))
    return _fast_json(body)


def _attempt_files(job: Row, task: Row, attempt: int) -> dict[str, Path]:
    files = services().scheduler.files
    job_id, index = int(job["id"]), int(task["task_index"])
    return {s: Path(files.output_path(job_id, index, attempt, s)) for s in LOG_STREAMS}


@blueprint.get("/jobs/<job_id>/tasks/<task_name>")
async def task(job_id: str, task_name: str) -> Response:
    """TaskStateData plus each attempt's log sizes (the page polls this one call)."""
    principal = await authenticate()
    job = await _job(job_id, principal)
    row = await visible_task(job, task_name)
    attempts = []
    for attempt in range(1, int(row["attempts"]) + 1):
        files = _attempt_files(job, row, attempt)
        attempts.append({"attempt": attempt, **{s: file_size(p) for s, p in files.items()}})
    return _no_store(jsonify({"task": views.task_state(row, job), "attempts": attempts}))


def _read_chunk(path: Path, offset: int, limit: int) -> tuple[bytes, int]:
    try:
        with path.open("rb") as f:
            size = f.seek(0, 2)
            f.seek(min(offset, size))
            return f.read(limit), size
    except FileNotFoundError:
        return b"", 0


@blueprint.get("/jobs/<job_id>/tasks/<task_name>/attempts/<int:attempt>/<stream>")
async def attempt_log(job_id: str, task_name: str, attempt: int, stream: str) -> Response:
    """One attempt's stdout or stderr from byte `offset`, at most `limit` bytes
    (`X-Next-Offset`, `X-Size` headers); `download=1`: the whole file as an attachment."""
    if stream not in LOG_STREAMS:
        raise ApiError(404, f"no log named {stream!r}: use stdout or stderr")
    principal = await authenticate()
    job = await _job(job_id, principal)
    row = await visible_task(job, task_name)
    if not 1 <= attempt <= int(row["attempts"]):
        raise ApiError(404, f"task {task_name!r} has no attempt {attempt}")
    path = _attempt_files(job, row, attempt)[stream]
    if request.args.get("download") == "1":
        size = file_size(path)
        response = Response(chunks([Segment(path, 0, size)]), content_type=TEXT)
        filename = f"job{int(job['id'])}-task{int(row['task_index'])}-{attempt}.{stream}.txt"
        response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
        response.headers["Content-Length"] = str(size)
        return _no_store(response)
    offset = int_arg("offset", 0, minimum=0)
    limit = min(int_arg("limit", DEFAULT_CHUNK, minimum=1), MAX_CHUNK)
    data, size = await asyncio.to_thread(_read_chunk, path, offset, limit)
    response = Response(data, content_type=TEXT)
    response.headers["X-Next-Offset"] = str(min(offset, size) + len(data))
    response.headers["X-Size"] = str(size)
    return _no_store(response)


@blueprint.post("/workflow")
async def workflow() -> Response:
    """Read an upload's variables and problems (multipart `file`, optional `variables`
    JSON); nothing is stored. 200 with `valid: false` for an invalid workflow."""
    await authenticate()
    files = await request.files
    form = await request.form
    upload = files.get("file")
    if upload is None:
        raise ApiError(400, "send the workflow as the multipart part `file`")
    data = upload.read()
    overrides = variables_from_json(form.get("variables", "")) if "variables" in form else {}
    limits = services().limits
    result = await asyncio.to_thread(inspect_workflow, data, overrides, limits)
    return _no_store(jsonify(result))
