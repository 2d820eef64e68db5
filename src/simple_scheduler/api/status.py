"""Scheduler status (ProActive's `SchedulerStatusData`) and a no-work health check."""

from __future__ import annotations

from quart import Blueprint, Response, jsonify

from simple_scheduler.api.access import (
    authenticate,
)
from simple_scheduler.api.context import services

blueprint = Blueprint("status", __name__)


@blueprint.get("/scheduler/status")
async def scheduler_status() -> Response:
    """The scheduler's state: STARTED; STOPPED on a standby (it accepts no job);
    SHUTTING_DOWN while the server stops."""
    await authenticate()
    svc = services()
    if svc.stopping:
        return jsonify("SHUTTING_DOWN")
    return jsonify("STARTED" if svc.role.leads else "STOPPED")


@blueprint.get("/health")
async def health() -> Response:
    """Liveness for load balancers and systemd, and this server's role: no login, no
    database (not ProActive). `role`: leader, standby or taking-over; a standby names the
    leader's URL when it knows it."""
    role = services().role
    body: dict[str, str] = {"status": "ok", "role": role.name}
    if not role.leads and role.leader_url:
        body["leader"] = role.leader_url
    return jsonify(body)
