"""SQL for jobs, tasks and dependencies: what the scheduler writes and the API reads.

Writes come in two shapes only: a whole submitted job (one transaction), and a batch of
status changes (one transaction, one `executemany` per table). Reads are plain queries
on the reader connection; listings are paged in SQL.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from simple_scheduler.db import Row, Store, Tx
from simple_scheduler.dbengine import INT32_MAX, matchable
from simple_scheduler.states import JOB_TERMINAL
from simple_scheduler.workflow import Job, NativeCommand, Script, Task

TASK_COLUMNS = (
    "status",
    "attempts",
    "max_number_of_execution",
    "exit_code",
    "signal",
    "reason",
    "scheduled_time",
    "start_time",
    "finished_time",
    "in_error_time",
    "pid",
    "pid_start_time",
)
#: The job's task counters, kept exact by the scheduler (ProActive's JobInfo numbers).
JOB_COUNTERS = (
    "pending_tasks",
    "running_tasks",
    "finished_tasks",
    "faulty_tasks",
    "failed_tasks",
    "in_error_tasks",
)
JOB_COLUMNS = (
    "status",
    "priority",
    "start_time",
    "finished_time",
    "in_error_time",
    *JOB_COUNTERS,
)

_UPDATE_TASK = (
    "UPDATE tasks SET "
    + ", ".join(f"{c} = :{c}" for c in TASK_COLUMNS)
    + " WHERE job_id = :job_id AND task_index = :task_index"
)
_UPDATE_JOB = "UPDATE jobs SET " + ", ".join(f"{c} = :{c}" for c in JOB_COLUMNS) + " WHERE id = :id"


def _script(script: Script | None) -> dict[str, Any] | None:
    if script is None:
        return None
    return {"language": script.language, "code": script.code, "arguments": list(script.arguments)}


def task_spec(task: Task, job: Job) -> dict[str, Any]:
    """What to run, as stored in `tasks.spec` (JSON): everything the scheduler needs later."""
    executable: dict[str, Any]
    if isinstance(task.executable, NativeCommand):
        executable = {"kind": "native", "argv": list(task.executable.argv)}
    else:
        executable = {"kind": "script", **(_script(task.executable) or {})}
    return {
        "executable": executable,
        "pre": _script(task.pre),
        "post": _script(task.post),
        "cleaning": _script(task.cleaning),
        "description": task.description,
        "variables": dict(task.variables),
        "generic_information": job.task_generic_information(task),
        "working_dir": task.working_dir,
        "environment": dict(task.environment),
        "walltime": task.walltime,
        "task_retry_delay": task.task_retry_delay or job.task_retry_delay,
        "precious_result": task.precious_result,
        "run_as_me": task.run_as_me,
        "number_of_nodes": task.number_of_nodes,
        "base_max_number_of_execution": None,
    }


async def insert_job(tx: Tx, job: Job, owner: str, xml: str, now_ms: int) -> int:
    """Write a submitted job, its tasks and its dependencies; the caller holds the transaction."""
    job_id = await tx.next_id("jobs")
    total = len(job.tasks)
    await tx.execute(
        "INSERT INTO jobs (id, owner, name, priority, status, on_task_error,"
        " max_number_of_execution, project_name, description, variables, generic_information,"
        " xml, submitted_time, total_tasks, pending_tasks, running_tasks, finished_tasks,"
        " faulty_tasks, failed_tasks, in_error_tasks) VALUES (:id, :owner, :name, :priority,"
        " 'PENDING', :on_task_error, :max_exec, :project_name, :description, :variables,"
        " :generic_information, :xml, :submitted_time, :total, :total, 0, 0, 0, 0, 0)",
        {
            "id": job_id,
            "owner": owner,
            "name": job.name,
            "priority": job.priority,
            "on_task_error": job.on_task_error,
            "max_exec": job.max_number_of_execution,
            "project_name": job.project_name,
            "description": job.description,
            "variables": json.dumps(job.variables),
            "generic_information": json.dumps(job.generic_information),
            "xml": xml,
            "submitted_time": now_ms,
            "total": total,
        },
    )
    await tx.execute_many(
        "INSERT INTO tasks (job_id, task_index, name, status, spec, on_task_error,"
        " max_number_of_execution, attempts) VALUES (:job_id, :task_index, :name, 'SUBMITTED',"
        " :spec, :on_task_error, :max_exec, 0)",
        [
            {
                "job_id": job_id,
                "task_index": task.index,
                "name": task.name,
                "spec": json.dumps(task_spec(task, job)),
                "on_task_error": task.on_task_error or job.on_task_error,
                "max_exec": effective_max_executions(job, task),
            }
            for task in job.tasks
        ],
    )
    await tx.execute_many(
        "INSERT INTO dependencies (job_id, task_index, parent)"
        " VALUES (:job_id, :task_index, :parent)",
        [
            {"job_id": job_id, "task_index": task.index, "parent": parent}
            for task in job.tasks
            for parent in task.depends
        ],
    )
    return job_id


def effective_max_executions(job: Job, task: Task) -> int:
    value = task.max_number_of_execution
    if value is None:
        value = job.max_number_of_execution
    return max(1, value)


async def write_batch(
    tx: Tx, tasks: Sequence[Mapping[str, Any]], jobs: Sequence[Mapping[str, Any]]
) -> None:
    """One batch of status changes: rows carry every column of TASK_COLUMNS / JOB_COLUMNS."""
    await tx.execute_many(_UPDATE_TASK, tasks)
    await tx.execute_many(_UPDATE_JOB, jobs)


async def load_live(store: Store) -> tuple[list[Row], list[Row], list[Row]]:
    """Jobs that are alive, or ended with tasks still running: what a restart must resume."""
    terminal = ", ".join(f"'{s}'" for s in sorted(JOB_TERMINAL))
    jobs = await store.fetch_all(
        f"SELECT * FROM jobs WHERE status NOT IN ({terminal}) OR id IN"
        " (SELECT job_id FROM tasks WHERE status = 'RUNNING') ORDER BY id"
    )
    if not jobs:
        return [], [], []
    ids = ", ".join(str(int(j["id"])) for j in jobs)
    tasks = await store.fetch_all(
        f"SELECT * FROM tasks WHERE job_id IN ({ids}) ORDER BY job_id, task_index"
    )
    deps = await store.fetch_all(f"SELECT * FROM dependencies WHERE job_id IN ({ids})")
    return jobs, tasks, deps


async def delete_job(store: Store, job_id: int) -> None:
    async with store.transaction() as tx:
        await tx.execute("DELETE FROM dependencies WHERE job_id = :id", {"id": job_id})
        await tx.execute("DELETE FROM tasks WHERE job_id = :id", {"id": job_id})
        await tx.execute("DELETE FROM jobs WHERE id = :id", {"id": job_id})


# -- reads for the API -------------------------------------------------------------------


async def get_job(store: Store, job_id: int) -> Row | None:
    return await store.fetch_one("SELECT * FROM jobs WHERE id = :id", {"id": job_id})


async def list_jobs(
    store: Store, owner: str | None, index: int, limit: int
) -> tuple[list[Row], int]:
    """Newest first; `owner=None` lists everybody's (admins). Returns (page, total)."""
    where = "" if owner is None else " WHERE owner = :owner"
    values: dict[str, Any] = {} if owner is None else {"owner": owner}
    total = int(await store.fetch_val("SELECT COUNT(*) FROM jobs" + where, values) or 0)
    query = "SELECT * FROM jobs" + where + " ORDER BY id DESC"
    if limit >= 0:
        query += " LIMIT :limit OFFSET :offset"
        values |= {"limit": limit, "offset": max(0, index)}
    return await store.fetch_all(query, values), total


async def list_tasks(store: Store, job_id: int, offset: int, limit: int) -> list[Row]:
    return await store.fetch_all(
        "SELECT * FROM tasks WHERE job_id = :job_id ORDER BY task_index"
        " LIMIT :limit OFFSET :offset",
        {"job_id": job_id, "limit": limit, "offset": max(0, offset)},
    )


async def get_task(store: Store, job_id: int, name: str) -> Row | None:
    if not matchable(name):  # a name from a URL; PostgreSQL would raise, not miss
        return None
    return await store.fetch_one(
        "SELECT * FROM tasks WHERE job_id = :job_id AND name = :name",
        {"job_id": job_id, "name": name},
    )


async def get_task_by_index(store: Store, job_id: int, index: int) -> Row | None:
    if not 0 <= index <= INT32_MAX:  # task_index is INTEGER: PostgreSQL would raise
        return None
    return await store.fetch_one(
        "SELECT * FROM tasks WHERE job_id = :job_id AND task_index = :index",
        {"job_id": job_id, "index": index},
    )


async def task_dependencies(store: Store, job_id: int) -> dict[int, list[int]]:
    rows = await store.fetch_all(
        "SELECT task_index, parent FROM dependencies WHERE job_id = :job_id"
        " ORDER BY task_index, parent",
        {"job_id": job_id},
    )
    out: dict[int, list[int]] = {}
    for row in rows:
        out.setdefault(int(row["task_index"]), []).append(int(row["parent"]))
    return out


def json_field(value: str | None) -> Any:
    return json.loads(value) if value else {}
