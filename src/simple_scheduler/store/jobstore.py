"""SQL for jobs, tasks and dependencies: what the scheduler writes and the API reads.

Writes come in two shapes only: a whole submitted job (one transaction), and a batch of
status changes (one transaction, one `executemany` per table). Reads are plain queries
on the reader connection; listings are paged in SQL. What a request reads per call is
bounded whatever the history: rows by key, pages by key, and job counts from
`job_counts` (kept with the jobs in the same transactions), never a COUNT over all jobs.
Those small reads are marked `small=True` (on SQLite, answered in the loop's thread).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from simple_scheduler.states import (
    JOB_COUNTERS,
    JOB_TERMINAL,
    TASK_TERMINAL,
    JobStatus,
    TaskStatus,
    count_tasks,
    first_task_status,
)
from simple_scheduler.store.db import Row, Store, Tx
from simple_scheduler.store.dbengine import INT32_MAX, matchable
from simple_scheduler.workflow import Job, NativeCommand, Script, Task
from simple_scheduler.workflow.details import job_details

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
    (job_id,) = await insert_jobs(tx, [(job, owner, xml)], now_ms)
    return job_id


async def insert_jobs(
    tx: Tx, submissions: Sequence[tuple[Job, str, str]], now_ms: int
) -> list[int]:
    """Write several submitted jobs (job, owner, XML) in the caller's transaction; their
    ids, in order. One statement per table for all of them: concurrent submits share
    one transaction (group commit) instead of queueing one transaction each."""
    if not submissions:
        return []
    count = len(submissions)
    after = await tx.fetch_val(_TAKE_JOB_IDS, {"count": count})
    ids = list(range(int(after) - count, int(after)))
    await tx.execute_batches(_job_batches(ids, submissions, now_ms))
    return ids


async def commit_jobs(
    store: Store, submissions: Sequence[tuple[Job, str, str]], now_ms: int
) -> list[int]:
    """`insert_jobs` in a transaction of its own, committed; on SQLite in one hop to the
    driver's thread (rows are built there too, off the event loop), or none when small."""
    if not submissions:
        return []
    if not store.one_hop:
        async with store.transaction() as tx:
            return await insert_jobs(tx, submissions, now_ms)
    return await store.run_transaction(
        _commit_work(submissions, now_ms), small=_small(submissions)
    )


def commit_jobs_now(
    store: Store, submissions: Sequence[tuple[Job, str, str]], now_ms: int
) -> list[int] | None:
    """`commit_jobs` done at once in the loop's thread, or None when it cannot be
    without waiting (the caller then uses `commit_jobs`)."""
    if not submissions or not _small(submissions) or not store.one_hop:
        return None
    return store.transaction_now(_commit_work(submissions, now_ms))


def _small(submissions: Sequence[tuple[Job, str, str]]) -> bool:
    return sum(len(job.tasks) for job, _, _ in submissions) <= SMALL_SUBMIT_TASKS


def _commit_work(
    submissions: Sequence[tuple[Job, str, str]], now_ms: int
) -> Callable[[sqlite3.Connection], list[int]]:
    count = len(submissions)

    def work(conn: sqlite3.Connection) -> list[int]:
        ((after,),) = conn.execute(_TAKE_JOB_IDS, {"count": count}).fetchall()
        ids = list(range(int(after) - count, int(after)))
        for query, rows in _job_batches(ids, submissions, now_ms):
            if rows:
                conn.executemany(query, rows)
        return ids

    return work


#: Submitted jobs of up to this many tasks in all are written in the loop's thread
#: (`Store.run_transaction`): building and inserting their rows takes ~1 ms.
SMALL_SUBMIT_TASKS = 64


_TAKE_JOB_IDS = (
    "UPDATE id_sequences SET next_value = next_value + :count WHERE name = 'jobs'"
    " RETURNING next_value"
)


def _job_batches(
    ids: Sequence[int], submissions: Sequence[tuple[Job, str, str]], now_ms: int
) -> list[tuple[str, list[dict[str, Any]]]]:
    """The INSERTs of submitted jobs whose ids are taken: jobs, tasks, dependencies."""
    jobs = (
        "INSERT INTO jobs (id, owner, name, priority, status, on_task_error,"
        " max_number_of_execution, project_name, description, variables, generic_information,"
        " xml, details, submitted_time, total_tasks, "
        + ", ".join(JOB_COUNTERS)
        + ") VALUES (:id, :owner, :name, :priority, :status, :on_task_error, :max_exec,"
        " :project_name, :description, :variables, :generic_information, :xml, :details,"
        " :submitted_time, :total, "
        + ", ".join(f":{c}" for c in JOB_COUNTERS)
        + ")",
        [
            {
                **count_tasks(first_task_status(bool(t.depends)) for t in job.tasks),
                "status": JobStatus.PENDING.value,
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
                "details": json.dumps(job_details(job, xml.encode("utf-8"))),
                "submitted_time": now_ms,
                "total": len(job.tasks),
            }
            for job_id, (job, owner, xml) in zip(ids, submissions, strict=True)
        ],
    )
    tasks = (
        "INSERT INTO tasks (job_id, task_index, name, status, spec, on_task_error,"
        " max_number_of_execution, attempts) VALUES (:job_id, :task_index, :name, :status,"
        " :spec, :on_task_error, :max_exec, 0)",
        [
            {
                "job_id": job_id,
                "task_index": task.index,
                "name": task.name,
                "status": first_task_status(bool(task.depends)).value,
                "spec": json.dumps(task_spec(task, job)),
                "on_task_error": job.task_on_error(task),
                "max_exec": job.task_max_number_of_execution(task),
            }
            for job_id, (job, _, _) in zip(ids, submissions, strict=True)
            for task in job.tasks
        ],
    )
    per_owner: dict[str, int] = {}
    for _, owner, _ in submissions:
        per_owner[owner] = per_owner.get(owner, 0) + 1
    counts = (
        "INSERT INTO job_counts (owner, jobs) VALUES (:owner, :jobs)"
        " ON CONFLICT (owner) DO UPDATE SET jobs = job_counts.jobs + excluded.jobs",
        [{"owner": owner, "jobs": n} for owner, n in per_owner.items()],
    )
    dependencies = (
        "INSERT INTO dependencies (job_id, task_index, parent)"
        " VALUES (:job_id, :task_index, :parent)",
        [
            {"job_id": job_id, "task_index": task.index, "parent": parent}
            for job_id, (job, _, _) in zip(ids, submissions, strict=True)
            for task in job.tasks
            for parent in task.depends
        ],
    )
    return [jobs, counts, tasks, dependencies]


async def write_batch(
    store: Store, tasks: Sequence[Mapping[str, Any]], jobs: Sequence[Mapping[str, Any]]
) -> None:
    """One batch of status changes, in a transaction of its own: rows carry every column
    of TASK_COLUMNS / JOB_COLUMNS."""
    await store.write_batches([(_UPDATE_TASK, tasks), (_UPDATE_JOB, jobs)])


async def load_live(store: Store) -> tuple[list[Row], list[Row], list[Row]]:
    """Jobs that are alive, or ended with tasks still running: what a restart must resume."""
    terminal = ", ".join(f"'{s}'" for s in sorted(JOB_TERMINAL))
    jobs = await store.fetch_all(
        f"SELECT * FROM jobs WHERE status NOT IN ({terminal}) OR id IN"
        " (SELECT job_id FROM tasks WHERE status = :running) ORDER BY id",
        {"running": TaskStatus.RUNNING.value},
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
        await tx.execute(
            "UPDATE job_counts SET jobs = jobs - 1"
            " WHERE owner = (SELECT owner FROM jobs WHERE id = :id)",
            {"id": job_id},
        )
        await tx.execute("DELETE FROM dependencies WHERE job_id = :id", {"id": job_id})
        await tx.execute("DELETE FROM tasks WHERE job_id = :id", {"id": job_id})
        await tx.execute("DELETE FROM jobs WHERE id = :id", {"id": job_id})


# -- reads for the API -------------------------------------------------------------------


async def get_job(store: Store, job_id: int) -> Row | None:
    return await store.fetch_one("SELECT * FROM jobs WHERE id = :id", {"id": job_id}, small=True)


#: A job row without its workflow document: what listings show (the XML may be large).
LISTED_JOB = (
    "id, owner, name, priority, status, on_task_error, max_number_of_execution,"
    " project_name, description, variables, generic_information, details, submitted_time,"
    " start_time, finished_time, in_error_time, total_tasks, " + ", ".join(JOB_COUNTERS)
)

#: A page of jobs up to this many rows is read in the loop's thread (`small`).
SMALL_PAGE = 100


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


async def count_jobs(store: Store, owner: str | None) -> int:
    """How many jobs `owner` has (None: everybody), from `job_counts`: a read per owner,
    not a scan of every job ever kept."""
    if owner is None:
        total = await store.fetch_val("SELECT SUM(jobs) FROM job_counts", small=True)
    elif not matchable(owner):
        return 0
    else:
        total = await store.fetch_val(
            "SELECT jobs FROM job_counts WHERE owner = :owner", {"owner": owner}, small=True
        )
    return int(total or 0)


async def jobs_page(
    store: Store, owner: str | None, *, below: int | None, skip: int, count: int
) -> list[Row]:
    """Up to `count` jobs, newest first, with ids under `below` (None: from the newest),
    after skipping `skip`. Long listings go page by page: each continues below the last
    id of the one before (keyset), so a job submitted meanwhile shifts nothing."""
    clauses: list[str] = []
    values: dict[str, Any] = {"count": count, "skip": max(0, skip)}
    if owner is not None:
        clauses.append("owner = :owner")
        values["owner"] = owner
    if below is not None:
        clauses.append("id < :below")
        values["below"] = below
    where = " WHERE " + " AND ".join(clauses) if clauses else ""
    return await store.fetch_all(
        f"SELECT {LISTED_JOB} FROM jobs" + where + " ORDER BY id DESC LIMIT :count OFFSET :skip",
        values,
        small=count <= SMALL_PAGE and skip <= SMALL_PAGE,
    )


async def first_unended_task(store: Store, job_id: int) -> Row | None:
    """A task of the job that has not reached a terminal status, if any."""
    terminal = ", ".join(f"'{s}'" for s in sorted(TASK_TERMINAL))
    return await store.fetch_one(
        f"SELECT name, status FROM tasks WHERE job_id = :job_id AND status NOT IN ({terminal})"
        " LIMIT 1",
        {"job_id": job_id},
    )


async def task_range(store: Store, job_id: int, start: int, stop: int) -> list[Row]:
    """Tasks with `start <= index < stop`, in order (a primary-key range)."""
    return await store.fetch_all(
        "SELECT * FROM tasks WHERE job_id = :job_id AND task_index >= :start"
        " AND task_index < :stop ORDER BY task_index",
        {"job_id": job_id, "start": start, "stop": stop},
    )


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
        small=True,
    )


async def get_task_by_index(store: Store, job_id: int, index: int) -> Row | None:
    if not 0 <= index <= INT32_MAX:  # task_index is INTEGER: PostgreSQL would raise
        return None
    return await store.fetch_one(
        "SELECT * FROM tasks WHERE job_id = :job_id AND task_index = :index",
        {"job_id": job_id, "index": index},
        small=True,
    )


async def task_dependencies(store: Store, job_id: int) -> dict[int, list[int]]:
    rows = await store.fetch_all(
        "SELECT task_index, parent FROM dependencies WHERE job_id = :job_id"
        " ORDER BY task_index, parent",
        {"job_id": job_id}
    )
    out: dict[int, list[int]] = {}
    for row in rows:
        out.setdefault(int(row["task_index"]), []).append(int(row["parent"]))
    return out


def json_field(value: str | None) -> Any:
    return json.loads(value) if value else {}


async def precious_task_names(store: Store, job_id: int) -> list[str]:
    """The job's tasks declared with `preciousResult="true"`, in task order."""
    # Portable SQL (no engine's JSON functions): LIKE narrows to the candidates, json
    # decides. `task_spec` is written by json.dumps, whose separator is ": ".
    rows = await store.fetch_all(
        "SELECT name, spec FROM tasks WHERE job_id = :job_id AND spec LIKE :pattern"
        " ORDER BY task_index",
        {"job_id": job_id, "pattern": '%"precious_result": true%'},
    )
    return [str(r["name"]) for r in rows if json_field(r["spec"]).get("precious_result")]


async def stored_details(store: Store, job_id: int) -> str | None:
    """The job's `details` JSON (None for a job submitted before it was kept)."""
    value = await store.fetch_val(
        "SELECT details FROM jobs WHERE id = :id", {"id": job_id}, small=True
    )
    return None if value is None else str(value)


async def job_document(store: Store, job_id: int) -> str | None:
    """The job's workflow as submitted."""
    value = await store.fetch_val("SELECT xml FROM jobs WHERE id = :id", {"id": job_id})
    return None if value is None else str(value)


async def list_jobs_filtered(
    store: Store,
    *,
    owner: str | None,
    statuses: Sequence[str],
    with_issues_only: bool,
    name: str | None,
    project: str | None,
    index: int,
    limit: int,
) -> tuple[list[Row], int]:
    """Jobs matching ProActive's listing filters, newest first: (page, total)."""
    if not statuses:
        return [], 0
    values: dict[str, Any] = {}
    where = []
    if owner is not None:
        where.append("owner = :owner")
        values["owner"] = owner
    names = [f":s{i}" for i in range(len(statuses))]
    where.append(f"status IN ({', '.join(names)})")
    values |= {f"s{i}": s for i, s in enumerate(statuses)}
    if with_issues_only:
        where.append(
            "(faulty_tasks + failed_tasks + in_error_tasks > 0"
            " OR status IN ('CANCELED', 'FAILED', 'KILLED', 'IN_ERROR'))"
        )
    if name is not None:
        where.append("name = :name")
        values["name"] = name
    if project is not None:
        where.append("project_name = :project")
        values["project"] = project
    clause = " WHERE " + " AND ".join(where)
    total = int(await store.fetch_val("SELECT COUNT(*) FROM jobs" + clause, values) or 0)
    query = "SELECT * FROM jobs" + clause + " ORDER BY id DESC"
    if limit >= 0:
        query += " LIMIT :limit OFFSET :offset"
        values |= {"limit": limit, "offset": max(0, index)}
    return await store.fetch_all(query, values), total
