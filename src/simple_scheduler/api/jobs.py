"""Jobs: submit, validate, list, inspect, kill, pause, resume, remove.

Submission follows ProActive's multipart rules (PROACTIVE.md 1.2): a `variables` JSON
part and `;NAME=value` matrix parameters override the workflow's variables (matrix last,
so it wins); the first other part is the workflow, XML or a zip holding one. Parsing runs
in a worker thread: a 10,000-task workflow must not stall every other request.
"""

from __future__ import annotations

import logging

from quart import Blueprint, Response, jsonify, request

from simple_scheduler.api import requests, views
from simple_scheduler.api.access import (
    authenticate,
    visible_job,
)
from simple_scheduler.api.context import services
from simple_scheduler.api.details import job_details
from simple_scheduler.api.errors import JOB_ALREADY_FINISHED_EXCEPTION, ApiError
from simple_scheduler.api.requests import bool_arg, int_arg
from simple_scheduler.states import JobStatus
from simple_scheduler.store import jobstore
from simple_scheduler.store.db import Row
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
    rows, total = await _page(principal.is_admin, principal.name)
    return jsonify(views.rest_page([str(r["id"]) for r in rows], total))


@blueprint.get("/scheduler/jobsinfo")
async def list_jobs_info() -> Response:
    """Jobs with their info, newest first: RestPage<UserJobData>."""
    principal = await authenticate()
    rows, total = await _page(principal.is_admin, principal.name)
    svc = services()
    items = [views.user_job(r, await job_details(svc, int(r["id"]))) for r in rows]
    return jsonify(views.rest_page(items, total))


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
    items = [views.user_job(r, await job_details(svc, int(r["id"]))) for r in rows]
    revision = svc.scheduler.revision
    return jsonify({"revision": revision, "map": {str(revision): items}})


async def _page(is_admin: bool, name: str) -> tuple[list[Row], int]:
    index = int_arg("index", -1, minimum=-1)
    limit = int_arg("limit", -1, minimum=-1)
    return await jobstore.list_jobs(services().store, None if is_admin else name, index, limit)


@blueprint.get("/scheduler/jobs/<job_id>")
async def job_state(job_id: str) -> Response:
    """The job and all its tasks: JobStateData, tasks keyed by index."""
    principal = await authenticate()
    job = await visible_job(job_id, principal)
    svc = services()
    tasks = await jobstore.list_tasks(svc.store, int(job["id"]), 0, int(job["total_tasks"]))
    return jsonify(views.job_state(job, tasks, await job_details(svc, int(job["id"]))))


@blueprint.get("/scheduler/jobs/<job_id>/info")
async def job_info(job_id: str) -> Response:
    """The job's status, times and task counters: JobInfoData."""
    principal = await authenticate()
    job = await visible_job(job_id, principal)
    return jsonify(views.job_info(job, await job_details(services(), int(job["id"]))))


@blueprint.get("/scheduler/jobs/<job_id>/xml")
async def job_xml(job_id: str) -> Response:
    """The workflow as submitted (unzipped)."""
    principal = await authenticate()
    job = await visible_job(job_id, principal)
    return Response(job["xml"], content_type="application/xml; charset=utf-8")


@blueprint.put("/scheduler/jobs/<job_id>/kill")
async def kill_job(job_id: str) -> Response:
    """Kill a job: true once it is KILLED and committed (running tasks ABORTED, the others
    NOT_STARTED; their processes get TERM, the grace, KILL); 409 when it had ended."""
    principal = await authenticate()
    job = await visible_job(job_id, principal)
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
    principal = await authenticate()
    ids = requests.job_ids_arg()
    jobs = [await visible_job(str(i), principal) for i in ids]
    results = [await services().scheduler.kill_job(int(j["id"])) for j in jobs]
    return jsonify(all(results))


@blueprint.put("/scheduler/jobs/<job_id>/pause")
async def pause_job(job_id: str) -> Response:
    """Pause a job: running tasks go on, the others wait (409 if the job has ended)."""
    principal = await authenticate()
    job = await visible_job(job_id, principal)
    return jsonify(await services().scheduler.pause_job(int(job["id"])))


@blueprint.put("/scheduler/jobs/<job_id>/resume")
async def resume_job(job_id: str) -> Response:
    """Resume a paused job (false when it was not paused, 409 if it has ended)."""
    principal = await authenticate()
    job = await visible_job(job_id, principal)
    return jsonify(await services().scheduler.resume_job(int(job["id"])))


@blueprint.delete("/scheduler/jobs/<job_id>")
async def remove_job(job_id: str) -> Response:
    """Remove a job and its files; a live job is killed first."""
    principal = await authenticate()
    job = await visible_job(job_id, principal)
    return jsonify(await services().scheduler.remove_job(int(job["id"])))


@blueprint.delete("/scheduler/jobs")
async def remove_jobs() -> Response:
    """Remove several jobs (`?jobsid=1&jobsid=2`)."""
    principal = await authenticate()
    jobs = [await visible_job(str(i), principal) for i in requests.job_ids_arg()]
    for job in jobs:
        await services().scheduler.remove_job(int(job["id"]))
    return jsonify(True)
