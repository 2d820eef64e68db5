"""Task and job results (ProActive's `TaskResultData` / `JobResultData`), full logs, and
`restartAllInErrorTasks`.

A native or bash task's result value is its exit code as text, as with ProActive's
native engine; a task that failed has no value and its reason (`"exit code 3"`,
`"walltime of 5 s exceeded"`, `"could not start: ..."`) as `exceptionMessage`. A task
that ended FINISHED through `finishInErrorTask` keeps its failure as its exception.

Results exist once something is final: a task result once the task has ended after
running at least once, a job result once the job has ended; before that the answer is
409 with the status in the message (ProActive raised or returned a raw mapping error
here, issue #2409); a killed job's result also waits, briefly, for its running tasks to
be reaped (ABORTED). Tasks that never ran (NOT_STARTED, SKIPPED) have no result and are
left out of the job's `allResults`, as in ProActive.

`output` carries the task's stdout and stderr over all attempts, complete up to
`MAX_OUTPUT_BYTES` per stream (beyond that the end, after a marker line; the `log/out`
and `log/err` endpoints always give everything). `serializedValue` and
`serializedException` are Java serializations, as ProActive's Java client decodes them
(javaser.py): the exit code as a `java.lang.Integer` on success, the failure as a
`java.lang.Exception` carrying the reason (what makes `hadException()` true).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson
from quart import Blueprint, Response, jsonify, request

from simple_scheduler.api import javaser, outputs, views
from simple_scheduler.api.access import requested_job, requested_task
from simple_scheduler.api.context import services
from simple_scheduler.api.details import job_details
from simple_scheduler.api.errors import JOB_ALREADY_FINISHED_EXCEPTION, ApiError
from simple_scheduler.api.requests import int_arg
from simple_scheduler.api.streaming import PAGE_ROWS, json_stream
from simple_scheduler.errors import StateConflict
from simple_scheduler.execution.backend import OutputKind, TaskFiles
from simple_scheduler.states import JOB_TERMINAL, TASK_TERMINAL, TaskStatus
from simple_scheduler.store import jobstore
from simple_scheduler.store.db import Row, Store

blueprint = Blueprint("results", __name__)

JsonDict = dict[str, Any]

_FILENAME_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


# -- building the DTOs -----------------------------------------------------------------------


def has_result(task: Row) -> bool:
    """Ended after running at least once: NOT_STARTED and SKIPPED tasks have no result."""
    return task["status"] in TASK_TERMINAL and int(task["attempts"]) > 0


def succeeded(task: Row) -> bool:
    """FINISHED with no failure recorded (a finished In-Error task keeps its reason)."""
    return task["status"] == TaskStatus.FINISHED and task["reason"] is None


def exception_message(task: Row) -> str | None:
    if succeeded(task):
        return None
    return str(task["reason"] or f"task {task['name']} ended {task['status']}")


def value(task: Row) -> str | None:
    """The exit code as text on success (ProActive's native engine), else None."""
    if not succeeded(task) or task["exit_code"] is None:
        return None
    return str(task["exit_code"])


def value_text(task: Row) -> str:
    """ProActive's `result/value`: the value, or the failure's message."""
    return value(task) or exception_message(task) or ""


def _output(job: Row, task: Row, kind: OutputKind, files: TaskFiles) -> str:
    """One stream over all attempts; its last MAX_OUTPUT_BYTES when longer (blocking)."""
    paths = outputs.task_output_files(int(job["id"]), task, (kind,), files)
    return outputs.read_tail(paths, f"result/log/{'out' if kind == 'stdout' else 'err'}")


def serialized_value(task: Row) -> str | None:
    """The exit code as a Java-serialized Integer (base64), on success."""
    if not succeeded(task) or task["exit_code"] is None:
        return None
    return javaser.b64(javaser.integer(int(task["exit_code"])))


def serialized_exception(task: Row) -> str | None:
    """The failure as a Java-serialized Exception (base64), when the task failed."""
    message = exception_message(task)
    return None if message is None else javaser.b64(javaser.exception(message))


def task_result(job: Row, task: Row, files: TaskFiles) -> JsonDict:
    """TaskResultData (reads the outputs: call it in a worker thread)."""
    return {
        "id": {"id": int(task["task_index"]), "readableName": task["name"]},
        "value": value(task),
        "serializedValue": serialized_value(task),
        "exceptionMessage": exception_message(task),
        "serializedException": serialized_exception(task),
        "metadata": {},
        "propagatedVariables": {},
        "output": {
            "stdoutLogs": _output(job, task, "stdout", files),
            "stderrLogs": _output(job, task, "stderr", files),
        },
        "raw": False,
    }


def _precious(task: Row) -> bool:
    return bool(jobstore.json_field(task["spec"]).get("precious_result"))


#: A job result's bytes rendered per worker-thread step (outputs make tasks unequal).
RESULT_STEP_BYTES = 4 * 1024 * 1024


def _render_results(
    job: Row, rows: list[Row], keep: Callable[[Row], bool], files: TaskFiles, at: int
) -> tuple[bytes, int]:
    """`"name": TaskResultData` of the kept rows from `at`, until about
    RESULT_STEP_BYTES are made; the bytes and the index of the first row left."""
    parts: list[bytes] = []
    size = 0
    while at < len(rows) and size < RESULT_STEP_BYTES:
        row = rows[at]
        at += 1
        if keep(row):
            part = (
                orjson.dumps(str(row["name"])) + b":" + orjson.dumps(task_result(job, row, files))
            )
            parts.append(part)
            size += len(part)
    return b",".join(parts), at


async def _result_map(
    store: Store, job: Row, keep: Callable[[Row], bool], files: TaskFiles
) -> AsyncIterator[bytes]:
    """The members of a `{taskName: TaskResultData}` map, in task order, streamed."""
    first = True
    for start in range(0, int(job["total_tasks"]), PAGE_ROWS):
        rows = await jobstore.task_range(store, int(job["id"]), start, start + PAGE_ROWS)
        at = 0
        while at < len(rows):
            body, at = await asyncio.to_thread(_render_results, job, rows, keep, files, at)
            if body:
                yield body if first else b"," + body
                first = False


async def _job_result_chunks(
    store: Store, job: Row, files: TaskFiles, details: views.JobDetails
) -> AsyncIterator[bytes]:
    """JobResultData, one map after the other, each read and rendered page by page."""
    head = orjson.dumps({"id": views.job_id_data(job), "jobInfo": views.job_info(job, details)})
    yield head[:-1] + b',"allResults":{'
    async for part in _result_map(store, job, has_result, files):
        yield part
    yield b'},"preciousResults":{'
    async for part in _result_map(store, job, lambda t: has_result(t) and _precious(t), files):
        yield part
    yield b'},"resultMap":{},"exceptionResults":{'
    async for part in _result_map(store, job, lambda t: has_result(t) and not succeeded(t), files):
        yield part
    yield b"}}"


async def _values_chunks(store: Store, job: Row) -> AsyncIterator[bytes]:
    """`{taskName: value text}` of the tasks that have a result, page by page."""

    def render(rows: list[Row]) -> bytes:
        return b",".join(
            orjson.dumps(str(t["name"])) + b":" + orjson.dumps(value_text(t))
            for t in rows
            if has_result(t)
        )

    yield b"{"
    first = True
    for start in range(0, int(job["total_tasks"]), PAGE_ROWS):
        rows = await jobstore.task_range(store, int(job["id"]), start, start + PAGE_ROWS)
        body = await asyncio.to_thread(render, rows)
        if body:
            yield body if first else b"," + body
            first = False
    yield b"}"


# -- lookups -------------------------------------------------------------------------------


async def _ended_job(job_id: str) -> Row:
    job = await requested_job(job_id)
    if job["status"] not in JOB_TERMINAL:
        raise ApiError(409, f"job {job['id']} is {job['status']}: no result yet")
    task = await jobstore.first_unended_task(services().store, int(job["id"]))
    if task is not None:  # killed, its process not yet gone
        raise ApiError(
            409,
            f"job {job['id']} is {job['status']} but task {task['name']} is still"
            f" {task['status']}: no result yet",
        )
    return job


async def _ended_task(job_id: str, task_name: str) -> tuple[Row, Row]:
    job, task = await requested_task(job_id, task_name)
    if task["status"] not in TASK_TERMINAL:
        raise ApiError(409, f"task {task['name']} is {task['status']}: no result yet")
    if not has_result(task):
        raise ApiError(409, f"task {task['name']} is {task['status']}: it never ran, no result")
    return job, task


# -- results -------------------------------------------------------------------------------


@blueprint.get("/scheduler/jobs/<job_id>/tasks/<task_name>/result")
async def get_task_result(job_id: str, task_name: str) -> Response:
    """A task's result: TaskResultData (409 until the task has ended)."""
    job, task = await _ended_task(job_id, task_name)
    files = services().scheduler.files
    return jsonify(await asyncio.to_thread(task_result, job, task, files))


@blueprint.get("/scheduler/jobs/<job_id>/tasks/<task_name>/result/value")
async def get_task_result_value(job_id: str, task_name: str) -> Response:
    """A task's result value as text: the exit code, or why it failed (409 until ended)."""
    _, task = await _ended_task(job_id, task_name)
    return Response(value_text(task), content_type=outputs.TEXT)


@blueprint.get("/scheduler/jobs/<job_id>/result")
async def get_job_result(job_id: str) -> Response:
    """The job's results: JobResultData (409 while the job is alive; streamed)."""
    job = await _ended_job(job_id)
    svc = services()
    details = await job_details(svc, int(job["id"]), job)
    return json_stream(_job_result_chunks(svc.store, job, svc.scheduler.files, details))


@blueprint.get("/scheduler/jobs/<job_id>/result/value")
async def get_job_result_value(job_id: str) -> Response:
    """Task name -> result value text (failure message for failed tasks); 409 while alive."""
    job = await _ended_job(job_id)
    return json_stream(_values_chunks(services().store, job))


# -- In-Error ------------------------------------------------------------------------------


@blueprint.put("/scheduler/jobs/<job_id>/restartAllInErrorTasks")
async def restart_all_in_error_tasks(job_id: str) -> Response:
    """Restart every IN_ERROR task of the job; false when there was none (409 if ended)."""
    job = await requested_job(job_id)
    if job["status"] in JOB_TERMINAL:
        raise ApiError(
            409,
            f"job {job['id']} is {job['status']}: no In-Error task to restart",
            exception=JOB_ALREADY_FINISHED_EXCEPTION,
        )
    tasks = await jobstore.list_tasks(services().store, int(job["id"]), 0, int(job["total_tasks"]))
    restarted = False
    for task in tasks:
        if task["status"] != TaskStatus.IN_ERROR:
            continue
        try:
            restarted |= await services().scheduler.restart_in_error_task(
                int(job["id"]), str(task["name"])
            )
        except StateConflict:
            continue  # restarted or finished by someone else meanwhile
    return jsonify(restarted)


# -- full logs -----------------------------------------------------------------------------


def _download(response: Response, filename: str) -> Response:
    if request.args.get("destination") == "file":
        response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


@blueprint.get("/scheduler/jobs/<job_id>/log/full")
async def job_log_full(job_id: str) -> Response:
    """The job's complete output, as `result/log/all` (`?sessionid=`, `destination=file`)."""
    job = await requested_job(job_id, query_token=True)
    response = await outputs.job_log(job, int_arg("offset", 0, minimum=0))
    return _download(response, f"job_{job_id}.log")


@blueprint.get("/scheduler/jobs/<job_id>/tasks/<task_name>/result/log/full")
async def task_log_full(job_id: str, task_name: str) -> Response:
    """A task's complete output, as `result/log/all` (`?sessionid=`, `destination=file`)."""
    job, task = await requested_task(job_id, task_name, query_token=True)
    offset = int_arg("offset", 0, minimum=0)
    response = outputs.task_log(job, task, outputs.STREAMS["all"], offset)
    return _download(response, f"job_{job_id}_{_FILENAME_UNSAFE.sub('_', task_name)}.log")
