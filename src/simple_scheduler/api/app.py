"""Build the Quart app from explicitly passed services (no module globals).

The server (and the tests) open the store, load the keys and start the scheduler, then
hand them over in one `Services` object; the app only serves requests with them. Their
life cycle stays with whoever created them, so a test client and the real server run
exactly the same app.
"""

from __future__ import annotations

from simple_scheduler.api import (
    events,
    jobs,
    logs,
    openapi,
    results,
    session,
    standby,
    status,
    submission,
    tasks,
)
from simple_scheduler.api.context import SchedulerApp, Services
from simple_scheduler.api.errors import register_error_handlers
from simple_scheduler.api.matrix import MatrixConverter
from simple_scheduler.api.streaming import without_send_timeout

#: Where ProActive mounts its REST application.
PREFIX = "/rest"


def create_app(services: Services) -> SchedulerApp:
    app = SchedulerApp("simple_scheduler")
    app.services = services
    limit = services.config.max_upload_bytes
    app.config.update(
        MAX_CONTENT_LENGTH=limit,
        # A workflow sent as a plain form field (no filename) is held in memory too.
        MAX_FORM_MEMORY_SIZE=limit,
        # Logs of a big task stream for a while; the body timeout still guards uploads.
        RESPONSE_TIMEOUT=3600,
        JSON_SORT_KEYS=False,
    )
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.url_map.converters["matrix"] = MatrixConverter
    app.url_map.strict_slashes = False
    for blueprint in (
        session.blueprint,
        jobs.blueprint,
        submission.blueprint,
        tasks.blueprint,
        logs.blueprint,
        results.blueprint,
        status.blueprint,
        openapi.blueprint,
        events.blueprint,
    ):
        app.register_blueprint(blueprint, url_prefix=PREFIX)
    register_error_handlers(app)
    standby.install(app)
    app.after_request(without_send_timeout)
    from simple_scheduler import dashboard  # here: dashboard imports the api package

    dashboard.install(app)
    return app
