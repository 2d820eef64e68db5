"""HTTP errors in ProActive's shape: `{"httpErrorCode": N, "errorMessage": "..."}`.

Domain errors carry no HTTP knowledge; this edge maps them (h11's `error_status_hint`
idea, applied at one place). Anything unmapped is a bug: it is logged with its trace and
answered 500 with no internals, so bad input can never leak a stack trace.
"""

from __future__ import annotations

import logging
import math

from quart import Quart, Response, current_app, jsonify
from werkzeug.exceptions import HTTPException

from simple_scheduler.auth.sessions import AuthError, LoginThrottled
from simple_scheduler.errors import JobAlreadyFinished, StateConflict, UnknownJob, UnknownTask
from simple_scheduler.workflow.errors import WorkflowError, WorkflowTooLarge

log = logging.getLogger("simple_scheduler.api")

NOT_CONNECTED = "You are not connected to the server, you should log on first"

#: ProActive's exception classes: its Java client rebuilds typed exceptions from the
#: error's `exceptionClass` (SchedulerRestClient.rebuildServerSideException), but only
#: when `exception` holds a serialized Throwable too; with `exception: null` it raises a
#: plain `Exception` that the client's proxy wraps as an UndeclaredThrowableException.
_PACKAGE = "org.ow2.proactive_grid_cloud_portal.scheduler.exception."
NOT_CONNECTED_EXCEPTION = _PACKAGE + "NotConnectedRestException"
PERMISSION_EXCEPTION = _PACKAGE + "PermissionRestException"
UNKNOWN_JOB_EXCEPTION = _PACKAGE + "UnknownJobRestException"
UNKNOWN_TASK_EXCEPTION = _PACKAGE + "UnknownTaskRestException"
JOB_CREATION_EXCEPTION = _PACKAGE + "JobCreationRestException"
JOB_ALREADY_FINISHED_EXCEPTION = _PACKAGE + "JobAlreadyFinishedRestException"
_BY_STATUS = {
    401: NOT_CONNECTED_EXCEPTION,
    403: PERMISSION_EXCEPTION,
    404: UNKNOWN_JOB_EXCEPTION,
}


class ApiError(Exception):
    """Raised by handlers to answer `status` with `message`."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        headers: dict[str, str] | None = None,
        exception: str | None = None,
    ):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}
        #: ProActive's exception class name; by default the one its status implies
        self.exception = exception


def error_response(
    status: int,
    message: str,
    headers: dict[str, str] | None = None,
    exception: str | None = None,
) -> Response:
    exception = exception or _BY_STATUS.get(status)
    body = jsonify(
        {
            "httpErrorCode": status,
            "errorMessage": message,
            "stackTrace": None,
            # A Throwable as Jackson writes one (message, empty trace: no internals)
            "exception": {"message": message, "stackTrace": []} if exception else None,
            "exceptionClass": exception,
        }
    )
    body.status_code = status
    for name, value in (headers or {}).items():
        body.headers[name] = value
    return body


def not_found(what: str) -> ApiError:
    return ApiError(404, what)


def register_error_handlers(app: Quart) -> None:
    """Install the mapping from exceptions to JSON error responses."""

    @app.errorhandler(ApiError)
    async def api_error(exc: ApiError) -> Response:
        return error_response(exc.status, exc.message, exc.headers, exc.exception)

    @app.errorhandler(LoginThrottled)
    async def throttled(exc: LoginThrottled) -> Response:
        retry = str(max(1, math.ceil(exc.retry_after)))
        return error_response(429, exc.message, {"Retry-After": retry})

    @app.errorhandler(AuthError)
    async def auth_error(exc: AuthError) -> Response:
        return error_response(401, exc.message)

    @app.errorhandler(UnknownJob)
    async def unknown_job(exc: UnknownJob) -> Response:
        return error_response(404, str(exc), exception=UNKNOWN_JOB_EXCEPTION)

    @app.errorhandler(UnknownTask)
    async def unknown_task(exc: UnknownTask) -> Response:
        return error_response(404, str(exc), exception=UNKNOWN_TASK_EXCEPTION)

    @app.errorhandler(StateConflict)
    async def conflict(exc: StateConflict) -> Response:
        finished = isinstance(exc, JobAlreadyFinished)
        return error_response(
            409, str(exc), exception=JOB_ALREADY_FINISHED_EXCEPTION if finished else None
        )

    @app.errorhandler(WorkflowTooLarge)
    async def too_large_workflow(exc: WorkflowTooLarge) -> Response:
        return error_response(
            413, f"workflow too large: {exc}", exception=JOB_CREATION_EXCEPTION
        )

    @app.errorhandler(WorkflowError)
    async def bad_workflow(exc: WorkflowError) -> Response:
        return error_response(400, f"invalid workflow:\n{exc}", exception=JOB_CREATION_EXCEPTION)

    @app.errorhandler(HTTPException)
    async def http_error(exc: HTTPException) -> Response:
        status = exc.code or 500
        if status == 413:
            limit = current_app.config.get("MAX_CONTENT_LENGTH")
            message = f"request too large: the upload limit (max_upload_bytes) is {limit} bytes"
        else:
            message = exc.description or exc.name
        allow = {k: v for k, v in exc.get_headers() if k.lower() == "allow"}
        return error_response(status, message, allow)

    @app.errorhandler(Exception)
    async def bug(exc: Exception) -> Response:
        log.error("unhandled error in a request", exc_info=exc)
        return error_response(500, "internal server error (the server log has the details)")
