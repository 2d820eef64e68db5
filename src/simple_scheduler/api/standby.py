"""What a standby server answers to requests that would change jobs: 503, and where to go.

A standby shares the leader's store and process directory, so every read works there
(jobs, tasks, outputs, the dashboard), but only the leader's scheduler may change a job:
a standby's own would drive the same jobs twice. So any request that changes state (the
same rule as CSRF's: a method other than GET/HEAD/OPTIONS, plus ProActive's GET resubmit)
is refused before its handler runs, unless it only touches sessions (they live in the
shared store, and a client must be able to log in wherever its load balancer sends it) or
changes nothing stored (validation, a live-log cursor of this server). `Retry-After`
lets a client retry here: when the leader is dead this server takes over in seconds.
"""

from __future__ import annotations

from quart import Quart, request

from simple_scheduler.api import csrf
from simple_scheduler.api.context import services
from simple_scheduler.api.errors import ApiError

#: State-changing endpoints a standby still serves.
SERVED_ON_STANDBY = frozenset(
    {
        "session.login",
        "session.renew",
        "session.logout",
        "jobs.validate",
        "logs.livelog_reset",
        "dashboard_data.workflow",
    }
)
#: Seconds a client should wait before retrying a refused change here.
RETRY_AFTER_S = 5
#: Names the leader's URL (when known) on a refusal, for clients that follow it.
LEADER_HEADER = "X-Scheduler-Leader"


class NotLeader(ApiError):
    """A change asked of a standby (503)."""

    def __init__(self, message: str, leader_url: str | None) -> None:
        headers = {"Retry-After": str(RETRY_AFTER_S)}
        if leader_url:
            headers[LEADER_HEADER] = leader_url
        super().__init__(503, message, headers=headers)


def refused_on_standby(endpoint: str | None, method: str) -> bool:
    """Whether a standby refuses this endpoint called with this method."""
    changes = method not in csrf.SAFE_METHODS or endpoint in csrf.STATE_CHANGING_ENDPOINTS
    return changes and endpoint not in SERVED_ON_STANDBY


async def refuse_changes() -> None:
    """`before_request`: a standby refuses what only the leader may do."""
    role = services().role
    if role.leads or not refused_on_standby(request.endpoint, request.method):
        return
    if role.name == "taking-over":
        raise NotLeader(
            "this server is taking over as the leader (the last one stopped): "
            f"retry in {RETRY_AFTER_S} s",
            None,
        )
    where = (
        f"send it to the leader, {role.leader_url}"
        if role.leader_url
        else "the leader's address is not known; send it to the leader"
    )
    raise NotLeader(
        f"this server is a standby: it serves reads only; {request.method} "
        f"{request.path} changes jobs, so {where} (or retry here in {RETRY_AFTER_S} s, "
        f"should the leader be gone)",
        role.leader_url,
    )


def install(app: Quart) -> None:
    app.before_request(refuse_changes)
