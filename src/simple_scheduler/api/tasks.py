"""Tasks of one job: listings (paged), state, and the task actions.

Tasks are addressed by name, as in ProActive. Listings are paged in SQL: `offset`/`limit`,
100 by default and at most 256 per page (ProActive's `TASKS_MAXIMUM_PAGE_SIZE`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from quart import Blueprint, Response, jsonify

from simple_scheduler.api import views
from simple_scheduler.api.access import (
    authenticate,
    visible_job,
    visible_task,
)
from simple_scheduler.api.context import services
from simple_scheduler.api.errors import JOB_ALREADY_FINISHED_EXCEPTION, ApiError
from simple_scheduler.api.requests import int_arg
from simple_scheduler.states import JOB_TERMINAL
from simple_scheduler.store import jobstore
from simple_scheduler.store.db import Row

blueprint = Blueprint("tasks", __name__)

DEFAULT_PAGE = 100
MAX_PAGE = 256


async def _tasks_page(job: Row, paginated: bool) -> list[Row]:
    offset = int_arg("offset", 0, minimum=0) if paginated else 0
    limit = int_arg("limit", DEFAULT_PAGE, minimum=0) if paginated else DEFAULT_PAGE
    return await jobstore.list_tasks(services().store, int(job["id"]), offset, min(limit, MAX_PAGE))


@blueprint.get("/scheduler/jobs/<job_id>/tasks")
async def task_names(job_id: str) -> Response:
    """The first 100 task names: RestPage<String>."""
    principal = await authenticate()
    job = await visible_job(job_id, principal)
    rows = await _tasks_page(job, paginated=False)
    return jsonify(views.rest_page([r["name"] for r in rows], int(job["total_tasks"])))


@blueprint.get("/scheduler/jobs/<job_id>/tasks/paginated")
async def task_names_paginated(job_id: str) -> Response:
    """Task names, one page (`offset`, `limit` <= 256): RestPage<String>."""
    principal = await authenticate()
    job = await visible_job(job_id, principal)
    rows = await _tasks_page(job, paginated=True)
    return jsonify(views.rest_page([r["name"] for r in rows], int(job["total_tasks"])))


@blueprint.get("/scheduler/jobs/<job_id>/taskstates")
async def task_states(job_id: str) -> Response:
    """The first 100 task states: RestPage<TaskStateData>."""
    principal = await authenticate()
    job = await visible_job(job_id, principal)
    rows = await _tasks_page(job, paginated=False)
    return jsonify(
        views.rest_page([views.task_state(r, job) for r in rows], int(job["total_tasks"]))
    )


@blueprint.get("/scheduler/jobs/<job_id>/taskstates/paginated")
async def task_states_paginated(job_id: str) -> Response:
    """Task states, one page (`offset`, `limit` <= 256): RestPage<TaskStateData>."""
    principal = await authenticate()
    job = await visible_job(job_id, principal)
    rows = await _tasks_page(job, paginated=True)
    return jsonify(
        views.rest_page([views.task_state(r, job) for r in rows], int(job["total_tasks"]))
    )


@blueprint.get("/scheduler/jobs/<job_id>/tasks/<task_name>")
async def task_state(job_id: str, task_name: str) -> Response:
    """One task's state: TaskStateData."""
    principal = await authenticate()
    job = await visible_job(job_id, principal)
    return jsonify(views.task_state(await visible_task(job, task_name), job))


Action = Callable[[int, str], Awaitable[bool]]


async def _act(job_id: str, task_name: str, pick: Callable[[], Action]) -> Response:
    principal = await authenticate()
    job = await visible_job(job_id, principal)
    task = await visible_task(job, task_name)
    if job["status"] in JOB_TERMINAL:
        # Kills are committed before they answer, so this row is the truth: say it.
        raise ApiError(
            409,
            f"job {job['id']} has ended ({job['status']}): task {task['name']} is"
            f" {task['status']}",
            exception=JOB_ALREADY_FINISHED_EXCEPTION,
        )
    return jsonify(await pick()(int(job["id"]), str(task["name"])))


@blueprint.put("/scheduler/jobs/<job_id>/tasks/<task_name>/kill")
async def kill_task(job_id: str, task_name: str) -> Response:
    """Kill a running task (it counts as failed, no retry); 409 unless RUNNING."""
    return await _act(job_id, task_name, lambda: services().scheduler.kill_task)


@blueprint.put("/scheduler/jobs/<job_id>/tasks/<task_name>/restart")
async def restart_task(job_id: str, task_name: str) -> Response:
    """Kill a running task and run it again after 5 s; false when it was not running."""
    return await _act(job_id, task_name, lambda: services().scheduler.restart_task)


@blueprint.put("/scheduler/jobs/<job_id>/tasks/<task_name>/restartInErrorTask")
async def restart_in_error_task(job_id: str, task_name: str) -> Response:
    """Run an IN_ERROR task again with a fresh budget of executions; 409 otherwise."""
    return await _act(job_id, task_name, lambda: services().scheduler.restart_in_error_task)


@blueprint.put("/scheduler/jobs/<job_id>/tasks/<task_name>/finishInErrorTask")
async def finish_in_error_task(job_id: str, task_name: str) -> Response:
    """Mark an IN_ERROR task FINISHED so its dependents run; 409 otherwise."""
    return await _act(job_id, task_name, lambda: services().scheduler.finish_in_error_task)
