"""Who is asking, and which jobs they may see: the checks every handler starts with.

A user sees their own jobs only; another user's job answers 404 exactly like a job that
does not exist, so ids cannot be probed. Admins see everything.
"""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING, cast

from quart import current_app, g, request

from simple_scheduler import auth, jobstore
from simple_scheduler.api import csrf
from simple_scheduler.api.errors import NOT_CONNECTED, ApiError
from simple_scheduler.auth import AuthError, Principal
from simple_scheduler.db import Row

if TYPE_CHECKING:
    from simple_scheduler.api.app import SchedulerApp, Services


def services() -> Services:
    return cast("SchedulerApp", current_app).services


def request_token() -> str | None:
    # werkzeug's Headers is case-insensitive, a plain Mapping is not: pick the two we read.
    wanted = (auth.SESSION_HEADER, "Authorization")
    headers = {name: value for name in wanted if (value := request.headers.get(name))}
    return auth.extract_token(headers, request.cookies)


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
        token = request.args.get(auth.SESSION_HEADER)
    if not token:
        raise AuthError(NOT_CONNECTED)
    svc = services()
    principal = svc.tokens.get(token)
    if principal is None:
        principal = await auth.verify_token(svc.store, svc.keys, token)
        svc.tokens.put(token, principal)
    csrf.protect(svc.keys, principal.jti)
    g.principal = principal
    return principal


def is_number(text: str) -> bool:
    """ASCII digits only: `str.isdigit()` also accepts `²` or `١`, which `int()` refuses."""
    return text.isascii() and text.isdigit()


def parse_job_id(text: str) -> int:
    """Job ids are numbers; anything else names no job (404, not 400, as ProActive)."""
    if not is_number(text) or len(text) > 18:
        raise ApiError(404, f"job {text!r} does not exist")
    return int(text)


async def visible_job(job_id_text: str, principal: Principal) -> Row:
    """The job row if it exists and `principal` may see it, else 404."""
    job_id = parse_job_id(job_id_text)
    row = await get_job(job_id)
    if row is None or not may_see(principal, row):
        raise ApiError(404, f"job {job_id} does not exist")
    return row


async def get_job(job_id: int) -> Row | None:
    """The job row: in-thread when the store allows it, else through the store."""
    fast = services().fast
    if fast is not None:
        try:
            return fast.fetch_one("SELECT * FROM jobs WHERE id = :id", {"id": job_id})
        except sqlite3.Error:
            pass  # busy or locked: the store's connection waits properly
    return await jobstore.get_job(services().store, job_id)


def may_see(principal: Principal, job: Row) -> bool:
    return principal.is_admin or job["owner"] == principal.name


async def visible_task(job: Row, name: str) -> Row:
    row = await jobstore.get_task(services().store, int(job["id"]), name)
    if row is None:
        raise ApiError(404, f"job {job['id']} has no task named {name!r}")
    return row


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
