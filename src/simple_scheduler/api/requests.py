"""Reading requests: query arguments, job ids, and the workflow and variables of a
submission. Shared by the route modules, so none of them imports another."""

from __future__ import annotations

import asyncio
import dataclasses
import math

from quart import request
from quart.datastructures import FileStorage
from werkzeug.datastructures import MultiDict
from werkzeug.exceptions import RequestTimeout

from simple_scheduler.api.context import services
from simple_scheduler.api.errors import JOB_CREATION_EXCEPTION, ApiError
from simple_scheduler.jsonlimits import JsonTooLarge, loads_bounded
from simple_scheduler.workflow import Job, load_workflow_bytes, parse_workflow
from simple_scheduler.workflow.archive import is_zip


def is_number(text: str) -> bool:
    """ASCII digits only: `str.isdigit()` also accepts `²` or `١`, which `int()` refuses."""
    return text.isascii() and text.isdigit()


def parse_job_id(text: str) -> int:
    """Job ids are numbers; anything else names no job (404, not 400, as ProActive)."""
    if not is_number(text) or len(text) > 18:
        raise ApiError(404, f"job {text!r} does not exist")
    return int(text)


#: The largest integer SQLite stores (a bigger one in a query is an OverflowError).
MAX_INT = 2**63 - 1


def int_arg(name: str, default: int, *, minimum: int | None = None) -> int:
    """An integer query parameter (ASCII digits, optional minus), 400 when it is not one."""
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    digits = raw[1:] if raw.startswith("-") else raw
    if not is_number(digits):
        shown = raw if len(raw) <= 40 else raw[:40] + "..."
        raise ApiError(400, f"query parameter {name}={shown!r} is not an integer")
    if len(digits) > 19 or int(digits) > MAX_INT:
        raise ApiError(400, f"query parameter {name} is too large (at most {MAX_INT})")
    value = int(raw)
    if minimum is not None and value < minimum:
        raise ApiError(400, f"query parameter {name}={value} must be at least {minimum}")
    return value


def bool_arg(name: str, default: bool) -> bool:
    """A `true`/`false` query parameter (any case), 400 for anything else."""
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    lowered = raw.lower()
    if lowered not in ("true", "false"):
        shown = raw if len(raw) <= 40 else raw[:40] + "..."
        raise ApiError(400, f"query parameter {name}={shown!r} must be true or false")
    return lowered == "true"


XML_TYPES = ("application/xml", "text/xml", "application/zip", "application/octet-stream")


def variables_from_json(text: str) -> dict[str, str]:
    """The `variables` part: a flat JSON object, within `jsonlimits`' size and depth."""
    try:
        document = loads_bounded(text) if text.strip() else {}
    except JsonTooLarge as exc:
        raise ApiError(400, f"the variables part is too large: {exc}") from None
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


async def _form_parts() -> tuple[MultiDict[str, str], MultiDict[str, FileStorage]]:
    """The fields and files of a form body, parsed by Quart's own parser with Quart's
    limits and body timeout, as `request.form` and `request.files` do, but in this task:
    Quart runs the parse under `asyncio.wait_for`, a task of its own on Python 3.11, two
    more turns of the event loop per submit (~16 ms under the soak's load)."""
    parser = request.make_form_data_parser()
    try:
        async with asyncio.timeout(request.body_timeout):
            return await parser.parse(
                request.body, request.mimetype, request.content_length, request.mimetype_params
            )
    except TimeoutError:
        raise RequestTimeout() from None


async def workflow_submission(matrix: dict[str, str]) -> tuple[bytes, dict[str, str]]:
    """The workflow bytes and the submit-time variables of this request."""
    variables: dict[str, str] = {}
    workflow: bytes | None = None
    mimetype = request.mimetype
    if mimetype in ("multipart/form-data", "application/x-www-form-urlencoded"):
        form, files = await _form_parts()
        if "variables" in files:
            try:
                raw = files["variables"].read().decode("utf-8")
            except UnicodeDecodeError as exc:
                raise ApiError(
                    400, f"the variables part is not UTF-8 text (byte {exc.start})"
                ) from None
            variables = variables_from_json(raw)
        elif "variables" in form:
            variables = variables_from_json(form["variables"])
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
            exception=JOB_CREATION_EXCEPTION,
        )
    if not workflow:
        raise ApiError(
            400,
            "no workflow in the request: send it as a file part (file=@job.xml)",
            exception=JOB_CREATION_EXCEPTION,
        )
    variables.update(matrix)
    return workflow, variables


def with_query_generic_information(job: Job, *, exclude: tuple[str, ...] = ()) -> Job:
    """ProActive: query parameters of a submission become generic information, and
    `submission.mode=rest-api` is added when the client did not say. `exclude`: query
    parameters that are arguments of the endpoint (e.g. `jobsid`), not information."""
    extra = {name: value for name, value in request.args.items() if name and name not in exclude}
    extra.setdefault("submission.mode", "rest-api")
    return dataclasses.replace(job, generic_information={**job.generic_information, **extra})


#: An XML document up to this size is parsed on the event loop (~0.1-0.3 ms for a job
#: of a few tasks): under load the hop to a worker thread and back cost a one-task
#: submit more than the parse (0.8 ms median, 3 ms p75). Larger ones, and every zip
#: (which may inflate to the size limit), go to a thread.
INLINE_PARSE_BYTES = 2048


async def parse_document(data: bytes, variables: dict[str, str]) -> tuple[Job, bytes]:
    """Parse and validate: the job, and the (unzipped) XML document. Off the loop unless
    the document is a small XML one."""
    limits = services().limits

    def work() -> tuple[Job, bytes]:
        document = load_workflow_bytes(data, limits)
        return parse_workflow(document, variables, limits), document

    if len(data) <= INLINE_PARSE_BYTES and not is_zip(data):
        return work()
    return await asyncio.to_thread(work)


def job_ids_arg() -> list[int]:
    raw = [part for value in request.args.getlist("jobsid") for part in value.split(",")]
    ids = [parse_job_id(v.strip()) for v in raw if v.strip()]
    if not ids:
        raise ApiError(400, "give at least one job id: ?jobsid=1&jobsid=2")
    return list(dict.fromkeys(ids))
