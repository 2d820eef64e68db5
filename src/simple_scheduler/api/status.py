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
    """The scheduler's state: STARTED, or SHUTTING_DOWN while the server stops."""
    await authenticate()
    return jsonify("SHUTTING_DOWN" if services().stopping else "STARTED")


@blueprint.get("/health")
async def health() -> Response:
    """Liveness for load balancers and systemd: no login, no database (not ProActive)."""
    return jsonify({"status": "ok"})
