"""Jobs: submit, validate, list, inspect, kill, pause, resume, remove.

Submission follows ProActive's multipart rules (PROACTIVE.md 1.2): a `variables` JSON
part and `;NAME=value` matrix parameters override the workflow's variables (matrix last,
so it wins); the first other part is the workflow, XML or a zip holding one. Parsing runs
in a worker thread: a 10,000-task workflow must not stall every other request.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import math

from quart import Blueprint, Response, jsonify, request

from simple_scheduler import jobstore
from simple_scheduler.api import views
from simple_scheduler.api.access import (
    authenticate,
    int_arg,
    parse_job_id,
    services,
    visible_job,
)
from simple_scheduler.api.errors import ApiError
from simple_scheduler.db import Row
from simple_scheduler.workflow import (
    Job,
    WorkflowError,
    WorkflowTooLarge,
    load_workflow_bytes,
    parse_workflow,
)

blueprint = Blueprint("jobs", __name__)

XML_TYPES = ("application/xml", "text/xml", "application/zip", "application/octet-stream")


def _no_constant(name: str) -> object:
    raise ValueError(f"{name} is not a JSON value")


def _variables_from_json(text: str) -> dict[str, str]:
    try:
        document = json.loads(text, parse_constant=_no_constant) if text.strip() else {}
    except ValueError as exc:  # JSONDecodeError, NaN/Infinity
        raise ApiError(400, f"the variables part is not JSON: {exc}") from None
    if not isinstance(document, dict):
        raise ApiError(400, "the variables part must be a JSON object of name -> value")
    out: dict[str, str] = {}
    for name, value in document.items():
        if isinstance(value, dict | list):
            raise ApiError(400, f"variable {name!r}: value must be a string, number or boolean")
        if isinstance(value, float) and not math.isfinite(value):
            raise ApiError(400, f"variable {name!r}: {value} is not a finite number")
        out[str(name)] = "" if value is None else _scalar(value)
    return out


def _scalar(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


async def _submission(matrix: dict[str, str]) -> tuple[bytes, dict[str, str]]:
    """The workflow bytes and the submit-time variables of this request."""
    variables: dict[str, str] = {}
    workflow: bytes | None = None
    mimetype = request.mimetype
    if mimetype in ("multipart/form-data", "application/x-www-form-urlencoded"):
        files = await request.files
        form = await request.form
        if "variables" in files:
            try:
                raw = files["variables"].read().decode("utf-8")
            except UnicodeDecodeError as exc:
                raise ApiError(
                    400, f"the variables part is not UTF-8 text (byte {exc.start})"
                ) from None
            variables = _variables_from_json(raw)
        elif "variables" in form:
            variables = _variables_from_json(form["variables"])
        # Field order across files and plain fields is not kept by the form parser: a
        # file part (curl -F file=@job.xml) is preferred, as every client sends one.
        for name, upload in files.items(multi=True):
            if name != "variables":
                workflow = upload.read()
                break
        else:
            for name, value in form.items(multi=True):
                if name != "variables":
                    workflow = value.encode("utf-8")
                    break
    elif mimetype in XML_TYPES:
        body = await request.get_data(cache=False, as_text=False)
        workflow = body if isinstance(body, bytes) else body.encode()
    else:
        raise ApiError(
            400,
            f"unsupported content type {mimetype or 'none'!r}: send multipart/form-data "
            f"with the workflow as a file part (curl -F file=@job.xml)",
        )
    if not workflow:
        raise ApiError(400, "no workflow in the request: send it as a file part (file=@job.xml)")
    variables.update(matrix)
    return workflow, variables


def with_query_generic_information(job: Job, *, exclude: tuple[str, ...] = ()) -> Job:
    """ProActive: query parameters of a submission become generic information, and
    `submission.mode=rest-api` is added when the client did not say. `exclude`: query
    parameters that are arguments of the endpoint (e.g. `jobsid`), not information."""
    extra = {name: value for name, value in request.args.items() if name and name not in exclude}
    extra.setdefault("submission.mode", "rest-api")
    return dataclasses.replace(job, generic_information={**job.generic_information, **extra})


async def parse_document(data: bytes, variables: dict[str, str]) -> tuple[Job, bytes]:
    """Parse and validate in a worker thread: the job, and the (unzipped) XML document."""
    limits = services().limits

    def work() -> tuple[Job, bytes]:
        document = load_workflow_bytes(data, limits)
        return parse_workflow(document, variables, limits), document

    return await asyncio.to_thread(work)


@blueprint.post("/scheduler/submit<matrix:matrix>")
async def submit(matrix: dict[str, str]) -> Response:
    """Submit a workflow (multipart: the workflow part, optional `variables` JSON part)."""
    principal = await authenticate()
    data, variables = await _submission(matrix)
    job, document = await parse_document(data, variables)
    xml = document.decode("utf-8", "replace")
    job = with_query_generic_information(job)
    job_id = await services().scheduler.submit(job, principal.name, xml)
    return jsonify({"id": job_id, "readableName": job.name})


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
    }
    try:
        data, variables = await _submission(matrix)
        job, _ = await parse_document(data, variables)
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
    return jsonify(views.rest_page([views.user_job(r) for r in rows], total))


async def _page(is_admin: bool, name: str) -> tuple[list[Row], int]:
    index = int_arg("index", -1, minimum=-1)
    limit = int_arg("limit", -1, minimum=-1)
    return await jobstore.list_jobs(services().store, None if is_admin else name, index, limit)


@blueprint.get("/scheduler/jobs/<job_id>")
async def job_state(job_id: str) -> Response:
    """The job and all its tasks: JobStateData, tasks keyed by index."""
    principal = await authenticate()
    job = await visible_job(job_id, principal)
    tasks = await jobstore.list_tasks(services().store, int(job["id"]), 0, int(job["total_tasks"]))
    return jsonify(views.job_state(job, tasks))


@blueprint.get("/scheduler/jobs/<job_id>/info")
async def job_info(job_id: str) -> Response:
    """The job's status, times and task counters: JobInfoData."""
    principal = await authenticate()
    return jsonify(views.job_info(await visible_job(job_id, principal)))


@blueprint.get("/scheduler/jobs/<job_id>/xml")
async def job_xml(job_id: str) -> Response:
    """The workflow as submitted (unzipped)."""
    principal = await authenticate()
    job = await visible_job(job_id, principal)
    return Response(job["xml"], content_type="application/xml; charset=utf-8")


@blueprint.put("/scheduler/jobs/<job_id>/kill")
async def kill_job(job_id: str) -> Response:
    """Kill a job: true, or false when it had already ended."""
    principal = await authenticate()
    job = await visible_job(job_id, principal)
    return jsonify(await services().scheduler.kill_job(int(job["id"])))


@blueprint.put("/scheduler/jobs/kill")
async def kill_jobs() -> Response:
    """Kill several jobs (`?jobsid=1&jobsid=2`): true when every one was alive."""
    principal = await authenticate()
    ids = job_ids_arg()
    jobs = [await visible_job(str(i), principal) for i in ids]
    results = [await services().scheduler.kill_job(int(j["id"])) for j in jobs]
    return jsonify(all(results))


def job_ids_arg() -> list[int]:
    raw = [part for value in request.args.getlist("jobsid") for part in value.split(",")]
    ids = [parse_job_id(v.strip()) for v in raw if v.strip()]
    if not ids:
        raise ApiError(400, "give at least one job id: ?jobsid=1&jobsid=2")
    return list(dict.fromkeys(ids))


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
    jobs = [await visible_job(str(i), principal) for i in job_ids_arg()]
    for job in jobs:
        await services().scheduler.remove_job(int(job["id"]))
    return jsonify(True)
