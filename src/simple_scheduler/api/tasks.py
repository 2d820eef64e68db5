"""Tasks of one job: listings (paged), state, and the task actions.

Tasks are addressed by name, as in ProActive. Listings are paged in SQL: `offset`/`limit`,
100 by default and at most 256 per page (ProActive's `TASKS_MAXIMUM_PAGE_SIZE`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from quart import Blueprint, Response, jsonify

from simple_scheduler.api import views
from simple_scheduler.api.access import requested_job, requested_task
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
    return await _listing(job_id, paginated=False, item=_name)


@blueprint.get("/scheduler/jobs/<job_id>/tasks/paginated")
async def task_names_paginated(job_id: str) -> Response:
    """Task names, one page (`offset`, `limit` <= 256): RestPage<String>."""
    return await _listing(job_id, paginated=True, item=_name)


@blueprint.get("/scheduler/jobs/<job_id>/taskstates")
async def task_states(job_id: str) -> Response:
    """The first 100 task states: RestPage<TaskStateData>."""
    return await _listing(job_id, paginated=False, item=views.task_state)


@blueprint.get("/scheduler/jobs/<job_id>/taskstates/paginated")
async def task_states_paginated(job_id: str) -> Response:
    """Task states, one page (`offset`, `limit` <= 256): RestPage<TaskStateData>."""
    return await _listing(job_id, paginated=True, item=views.task_state)


def _name(task: Row, job: Row) -> Any:
    return task["name"]


async def _listing(job_id: str, *, paginated: bool, item: Callable[[Row, Row], Any]) -> Response:
    """One page of the job's tasks, each rendered by `item`: a RestPage."""
    job = await requested_job(job_id)
    rows = await _tasks_page(job, paginated)
    return jsonify(views.rest_page([item(r, job) for r in rows], int(job["total_tasks"])))


@blueprint.get("/scheduler/jobs/<job_id>/tasks/<task_name>")
async def task_state(job_id: str, task_name: str) -> Response:
    """One task's state: TaskStateData."""
    job, task = await requested_task(job_id, task_name)
    return jsonify(views.task_state(task, job))


Action = Callable[[int, str], Awaitable[bool]]


async def _act(job_id: str, task_name: str, pick: Callable[[], Action]) -> Response:
    """One scheduler action on the task of the URL; its answer as JSON."""
    job, task = await requested_task(job_id, task_name)
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
    """Kill a running task and run it again after 5 s if it has an execution left.

    The kill uses up the running execution (ProActive's restartTask). true: the task
    runs again after 5 s. false: it was not running (nothing done), or it had no
    execution left (default maxNumberOfExecution 1): it was killed and ends through its
    error policy, by default FAULTY with its dependents run.
    """
    return await _act(job_id, task_name, lambda: services().scheduler.restart_task)


@blueprint.put("/scheduler/jobs/<job_id>/tasks/<task_name>/restartInErrorTask")
async def restart_in_error_task(job_id: str, task_name: str) -> Response:
    """Run an IN_ERROR task again with a fresh budget of executions; 409 otherwise."""
    return await _act(job_id, task_name, lambda: services().scheduler.restart_in_error_task)


@blueprint.put("/scheduler/jobs/<job_id>/tasks/<task_name>/finishInErrorTask")
async def finish_in_error_task(job_id: str, task_name: str) -> Response:
    """Mark an IN_ERROR task FINISHED so its dependents run; 409 otherwise."""
    return await _act(job_id, task_name, lambda: services().scheduler.finish_in_error_task)
