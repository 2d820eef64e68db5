"""Jobs: submit, validate, list, inspect, kill, pause, resume, remove.

Submission follows ProActive's multipart rules (PROACTIVE.md 1.2): a `variables` JSON
part and `;NAME=value` matrix parameters override the workflow's variables (matrix last,
so it wins); the first other part is the workflow, XML or a zip holding one. Parsing runs
in a worker thread (a 10,000-task workflow must not stall every other request), except
for a small XML document, which costs less than the hop (`requests.parse_document`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

import orjson
from quart import Blueprint, Response, jsonify, request

from simple_scheduler.api import requests, views
from simple_scheduler.api.access import (
    authenticate,
    check_priority,
    requested_job,
    requested_jobs,
)
from simple_scheduler.api.context import Services, services
from simple_scheduler.api.details import job_details
from simple_scheduler.api.errors import JOB_ALREADY_FINISHED_EXCEPTION, ApiError
from simple_scheduler.api.requests import bool_arg, int_arg
from simple_scheduler.api.streaming import PAGE_ROWS, json_answer, json_stream, rest_page
from simple_scheduler.states import JobStatus
from simple_scheduler.store import jobstore
from simple_scheduler.store.db import Row, Store
from simple_scheduler.workflow import (
    WorkflowError,
    WorkflowTooLarge,
)
from simple_scheduler.workflow.details import variable_details

log = logging.getLogger("simple_scheduler.api")

blueprint = Blueprint("jobs", __name__)


@blueprint.post("/scheduler/submit<matrix:matrix>")
async def submit(matrix: dict[str, str]) -> Response:
    """Submit a workflow (multipart: the workflow part, optional `variables` JSON part)."""
    principal = await authenticate()
    data, variables = await requests.workflow_submission(matrix)
    job, document = await requests.parse_document(data, variables)
    xml = document.decode("utf-8", "replace")
    job = requests.with_query_generic_information(job)
    check_priority(job.priority, principal)
    job_id = await services().scheduler.submit(job, principal.name, xml)
    return jsonify({"id": job_id, "readableName": job.name})


_FLAGS = ("advanced", "hidden")
#: JobValidationData's per-variable maps, and the detail each one carries.
_UPDATED = {
    "updatedModels": "model",
    "updatedDescriptions": "description",
    "updatedGroups": "group",
    "updatedAdvanced": "advanced",
    "updatedHidden": "hidden",
}


@blueprint.post("/scheduler/validate<matrix:matrix>")
async def validate(matrix: dict[str, str]) -> Response:
    """Check a workflow without submitting it: JobValidationData, 200 either way."""
    await authenticate()
    result: dict[str, object] = {
        "valid": False,
        "taskName": None,
        "errorMessage": None,
        "stackTrace": None,
        "updatedVariables": {},
        "updatedModels": {},
        "updatedDescriptions": {},
        "updatedGroups": {},
        "updatedAdvanced": {},
        "updatedHidden": {},
        # ours: what the parser accepted but ignores (selection scripts, data spaces, ...)
        "warnings": [],
    }
    try:
        data, variables = await requests.workflow_submission(matrix)
        job, document = await requests.parse_document(data, variables)
    except WorkflowTooLarge as exc:
        result["errorMessage"] = f"workflow too large: {exc}"
    except WorkflowError as exc:
        result["errorMessage"] = str(exc)
        result["taskName"] = next((p.task for p in exc.problems if p.task), None)
    except ApiError as exc:
        if exc.status != 400:
            raise
        result["errorMessage"] = exc.message
    else:
        result["valid"] = True
        result["updatedVariables"] = dict(job.variables)
        result["warnings"] = list(job.warnings)
        declared = variable_details(document)
        for key, detail in _UPDATED.items():
            result[key] = {
                name: declared.get(name, {}).get(detail, False if detail in _FLAGS else None)
                for name in job.variables
            }
    return jsonify(result)


@blueprint.get("/scheduler/jobs")
async def list_job_ids() -> Response:
    """Job ids, newest first: RestPage<String> (`index`/`limit`, -1 = everything)."""
    principal = await authenticate()
    pages, total, small = await _pages(principal.is_admin, principal.name)
    return await json_answer(rest_page(pages, _job_id_text, total), small=small)


@blueprint.get("/scheduler/jobsinfo")
async def list_jobs_info() -> Response:
    """Jobs with their info, newest first: RestPage<UserJobData>."""
    principal = await authenticate()
    pages, total, small = await _pages(principal.is_admin, principal.name)
    return await json_answer(
        rest_page(_with_details(services(), pages), _user_job, total), small=small
    )


async def _with_details(
    svc: Services, pages: AsyncIterator[list[Row]]
) -> AsyncIterator[list[tuple[Row, views.JobDetails]]]:
    """Each page's rows with their job details (precious tasks, declared variables)."""
    async for rows in pages:
        yield [(row, await job_details(svc, int(row["id"]), row)) for row in rows]


def _user_job(item: tuple[Row, views.JobDetails]) -> object:
    return views.user_job(*item)


#: ProActive's status groups for the listing filters of `revisionjobsinfo`.
_STATUS_FILTERS = {
    "pending": (JobStatus.PENDING,),
    "running": (JobStatus.RUNNING, JobStatus.STALLED, JobStatus.PAUSED, JobStatus.IN_ERROR),
    "finished": (JobStatus.FINISHED, JobStatus.CANCELED, JobStatus.FAILED, JobStatus.KILLED),
}


@blueprint.get("/scheduler/revisionjobsinfo")
async def revision_jobs_info() -> Response:
    """Jobs with their info, filtered and paged, under the scheduler's state revision:
    `{"revision": N, "map": {"N": [UserJobData...]}}` (ProActive's RestMapPage).

    Filters as the clients send them: `myjobs`, `pending`, `running`, `finished`,
    `withIssuesOnly`, `jobName`, `projectName`, `userName`; `index`/`limit` page (newest
    first; `sortParams` is accepted and that order kept). A user lists their own jobs only.
    """
    principal = await authenticate()
    owner: str | None = principal.name
    if principal.is_admin and not bool_arg("myjobs", False):
        owner = request.args.get("userName") or None
    elif request.args.get("userName") and request.args["userName"] != principal.name:
        owner = "\0"  # another user's jobs: none visible
    statuses = [
        s.value
        for group, members in _STATUS_FILTERS.items()
        if bool_arg(group, True)
        for s in members
    ]
    rows, _total = await jobstore.list_jobs_filtered(
        services().store,
        owner=owner,
        statuses=statuses,
        with_issues_only=bool_arg("withIssuesOnly", False),
        name=request.args.get("jobName") or None,
        project=request.args.get("projectName") or None,
        index=int_arg("index", -1, minimum=-1),
        limit=int_arg("limit", -1, minimum=-1),
    )
    svc = services()
    items = [views.user_job(r, await job_details(svc, int(r["id"]), r)) for r in rows]
    revision = svc.scheduler.revision
    return jsonify({"revision": revision, "map": {str(revision): items}})


def _job_id_text(row: Row) -> str:
    return str(row["id"])


async def _pages(is_admin: bool, name: str) -> tuple[AsyncIterator[list[Row]], int, bool]:
    """The requested listing as pages of rows (streamed: `limit=-1` may be every job),
    the total count, and whether the listing is small (a short page: sent in one piece)."""
    index = int_arg("index", -1, minimum=-1)
    limit = int_arg("limit", -1, minimum=-1)
    store = services().store
    owner = None if is_admin else name
    total = await jobstore.count_jobs(store, owner)

    async def pages() -> AsyncIterator[list[Row]]:
        # ProActive: index is used only with a limit; -1 means no paging at all.
        left: int | None = None if limit < 0 else limit
        below: int | None = None
        skip = 0 if limit < 0 else max(0, index)
        while left is None or left > 0:
            count = PAGE_ROWS if left is None else min(PAGE_ROWS, left)
            rows = await jobstore.jobs_page(store, owner, below=below, skip=skip, count=count)
            if rows:
                yield rows
            if len(rows) < count:
                return
            left = None if left is None else left - len(rows)
            below, skip = int(rows[-1]["id"]), 0

    return pages(), total, 0 <= limit <= jobstore.SMALL_PAGE


@blueprint.get("/scheduler/jobs/<job_id>")
async def job_state(job_id: str) -> Response:
    """The job and all its tasks: JobStateData, tasks keyed by index (streamed)."""
    job = await requested_job(job_id)
    extra = await job_details(services(), int(job["id"]), job)  # in the request's context
    return json_stream(_job_state_chunks(services().store, job, extra))


async def _job_state_chunks(
    store: Store, job: Row, details: views.JobDetails
) -> AsyncIterator[bytes]:
    """JobStateData: the job without tasks, then its tasks a page at a time."""
    head = await asyncio.to_thread(orjson.dumps, views.job_state(job, [], details))
    # `tasks` is the last key: the head ends with `"tasks":{}}`; the tasks go in between.
    yield head[: -len(b"}}")]
    job_id, total, first = int(job["id"]), int(job["total_tasks"]), True
    for start in range(0, total, PAGE_ROWS):
        rows = await jobstore.task_range(store, job_id, start, start + PAGE_ROWS)
        if rows:
            body = await asyncio.to_thread(render_task_states, rows, job)
            yield body if first else b"," + body
            first = False
    yield b"}}"


def render_task_states(rows: list[Row], job: Row) -> bytes:
    """`"index": TaskStateData` of each row, comma-separated (in a worker thread)."""
    return b",".join(
        b'"%d":%s' % (int(row["task_index"]), orjson.dumps(views.task_state(row, job)))
        for row in rows
    )


@blueprint.get("/scheduler/jobs/<job_id>/info")
async def job_info(job_id: str) -> Response:
    """The job's status, times and task counters: JobInfoData."""
    job = await requested_job(job_id)
    return jsonify(views.job_info(job, await job_details(services(), int(job["id"]), job)))


@blueprint.get("/scheduler/jobs/<job_id>/xml")
async def job_xml(job_id: str) -> Response:
    """The workflow as submitted (unzipped)."""
    job = await requested_job(job_id)
    return Response(job["xml"], content_type="application/xml; charset=utf-8")


@blueprint.put("/scheduler/jobs/<job_id>/kill")
async def kill_job(job_id: str) -> Response:
    """Kill a job: true once it is KILLED and committed (running tasks ABORTED, the others
    NOT_STARTED; their processes get TERM, the grace, KILL); 409 when it had ended."""
    job = await requested_job(job_id)
    if not await services().scheduler.kill_job(int(job["id"])):
        ended = await jobstore.get_job(services().store, int(job["id"]))
        status = ended["status"] if ended is not None else job["status"]
        raise ApiError(
            409,
            f"job {job['id']} has already ended ({status}): nothing to kill",
            exception=JOB_ALREADY_FINISHED_EXCEPTION,
        )
    return jsonify(True)


@blueprint.put("/scheduler/jobs/kill")
async def kill_jobs() -> Response:
    """Kill several jobs (`?jobsid=1&jobsid=2`): true when every one was alive."""
    jobs = await requested_jobs(await authenticate())
    results = [await services().scheduler.kill_job(int(j["id"])) for j in jobs]
    return jsonify(all(results))


@blueprint.put("/scheduler/jobs/<job_id>/pause")
async def pause_job(job_id: str) -> Response:
    """Pause a job: running tasks go on, the others wait (409 if the job has ended)."""
    return await _act(job_id, lambda: services().scheduler.pause_job)


@blueprint.put("/scheduler/jobs/<job_id>/resume")
async def resume_job(job_id: str) -> Response:
    """Resume a paused job (false when it was not paused, 409 if it has ended)."""
    return await _act(job_id, lambda: services().scheduler.resume_job)


@blueprint.delete("/scheduler/jobs/<job_id>")
async def remove_job(job_id: str) -> Response:
    """Remove a job and its files; a live job is killed first."""
    return await _act(job_id, lambda: services().scheduler.remove_job)


@blueprint.delete("/scheduler/jobs")
async def remove_jobs() -> Response:
    """Remove several jobs (`?jobsid=1&jobsid=2`)."""
    for job in await requested_jobs(await authenticate()):
        await services().scheduler.remove_job(int(job["id"]))
    return jsonify(True)


Action = Callable[[int], Awaitable[bool]]


async def _act(job_id: str, pick: Callable[[], Action]) -> Response:
    """One scheduler action on the job of the URL; its answer as JSON."""
    job = await requested_job(job_id)
    return jsonify(await pick()(int(job["id"])))
