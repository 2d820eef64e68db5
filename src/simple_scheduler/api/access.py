"""Who is asking, and which jobs they may see: the checks every handler starts with.

A user sees their own jobs only; another user's job answers 404 exactly like a job that
does not exist, so ids cannot be probed. Admins see everything.
"""

from __future__ import annotations

from quart import g, request

from simple_scheduler.api import csrf
from simple_scheduler.api.context import services
from simple_scheduler.api.errors import NOT_CONNECTED, UNKNOWN_TASK_EXCEPTION, ApiError
from simple_scheduler.api.requests import job_ids_arg, parse_job_id
from simple_scheduler.auth import sessions
from simple_scheduler.auth.sessions import AuthError, Principal
from simple_scheduler.store import jobstore
from simple_scheduler.store.db import Row


def request_token() -> str | None:
    # werkzeug's Headers is case-insensitive, a plain Mapping is not: pick the two we read.
    wanted = (sessions.SESSION_HEADER, "Authorization")
    headers = {name: value for name in wanted if (value := request.headers.get(name))}
    return sessions.extract_token(headers, request.cookies)


async def authenticate(*, query_token: bool = False) -> Principal:
    """The verified principal of this request, or 401.

    `query_token`: also accept `?sessionid=` (ProActive's `log/full` downloads, which a
    browser opens without headers); nowhere else, so tokens stay out of access logs.
    A state change authenticated by the cookie alone must pass `csrf.protect`.
    """
    cached: Principal | None = g.get("principal")
    if cached is not None:
        return cached
    token = request_token()
    if not token and query_token:
        token = request.args.get(sessions.SESSION_HEADER)
    if not token:
        raise AuthError(NOT_CONNECTED)
    svc = services()
    principal = svc.tokens.get(token)
    if principal is None:
        principal = await sessions.verify_token(svc.store, svc.keys, token)
        svc.tokens.put(token, principal)
    csrf.protect(svc.keys, principal.jti)
    g.principal = principal
    return principal


async def visible_job(job_id_text: str, principal: Principal) -> Row:
    """The job row if it exists and `principal` may see it, else 404."""
    job_id = parse_job_id(job_id_text)
    row = await jobstore.get_job(services().store, job_id)
    if row is None or not may_see(principal, row):
        raise ApiError(404, f"job {job_id} does not exist")
    return row


async def requested_job(job_id_text: str, *, query_token: bool = False) -> Row:
    """The job named in the URL, for the authenticated caller (401, then 404)."""
    return await visible_job(job_id_text, await authenticate(query_token=query_token))


async def requested_task(
    job_id_text: str, task_name: str, *, query_token: bool = False
) -> tuple[Row, Row]:
    """The job and the task named in the URL, for the authenticated caller."""
    job = await requested_job(job_id_text, query_token=query_token)
    return job, await visible_task(job, task_name)


async def requested_jobs(principal: Principal) -> list[Row]:
    """The jobs of `?jobsid=`, each one visible to `principal` (404 at the first that is not)."""
    return [await visible_job(str(i), principal) for i in job_ids_arg()]


def may_see(principal: Principal, job: Row) -> bool:
    return principal.is_admin or job["owner"] == principal.name


async def visible_task(job: Row, name: str) -> Row:
    row = await jobstore.get_task(services().store, int(job["id"]), name)
    if row is None:
        raise ApiError(
            404, f"job {job['id']} has no task named {name!r}", exception=UNKNOWN_TASK_EXCEPTION
        )
    return row


#: Priorities only an admin may give a job (ProActive: "HIGH and HIGHEST are for admins").
ADMIN_PRIORITIES = frozenset(("high", "highest"))


def check_priority(priority: str, principal: Principal) -> None:
    """403 unless this user may give a job `priority` (any case).

    The one rule for every way a priority is set: the workflow's `priority` attribute at
    submit and resubmit, submitflat, and the priority endpoint. Refused, not capped, as
    ProActive's submit does ("Only the administrator can submit a job with such
    priority"): a job never runs at a priority other than the one its owner asked for.
    """
    name = priority.lower()
    if name in ADMIN_PRIORITIES and not principal.is_admin:
        raise ApiError(403, f"only an administrator may set the priority {name.upper()}")
