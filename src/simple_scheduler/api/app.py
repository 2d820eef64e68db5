"""Build the Quart app from explicitly passed services (no module globals).

The server (and the tests) open the store, load the keys and start the scheduler, then
hand them over in one `Services` object; the app only serves requests with them. Their
life cycle stays with whoever created them, so a test client and the real server run
exactly the same app.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass, field

from quart import Quart

from simple_scheduler.api import (
    jobs,
    logs,
    openapi,
    results,
    session,
    status,
    submission,
    tasks,
)
from simple_scheduler.api.errors import register_error_handlers
from simple_scheduler.api.fastread import FastReader
from simple_scheduler.api.matrix import MatrixConverter
from simple_scheduler.api.tokencache import TokenCache
from simple_scheduler.auth import LoginThrottle
from simple_scheduler.config import Config
from simple_scheduler.db import Store
from simple_scheduler.keys import KeyPair
from simple_scheduler.scheduler import Scheduler
from simple_scheduler.workflow.limits import Limits

#: Where ProActive mounts its REST application.
PREFIX = "/rest"


@dataclass
class Services:
    """Everything a request handler may use."""

    config: Config
    store: Store
    scheduler: Scheduler
    keys: KeyPair
    throttle: LoginThrottle = field(default_factory=LoginThrottle)
    started_at: float = field(default_factory=time.time)
    #: Set while the server shuts down: the status endpoint says so.
    stopping: bool = False
    #: Verified tokens, for a few seconds (see tokencache.py).
    tokens: TokenCache = field(default_factory=TokenCache)
    #: (session id, job id) -> {log file: bytes already sent}, for `livelog`.
    livelog_cursors: OrderedDict[tuple[str, int], dict[str, int]] = field(
        default_factory=OrderedDict
    )

    #: In-thread primary-key reads (SQLite only; see fastread.py).
    fast: FastReader | None = None

    def __post_init__(self) -> None:
        if self.fast is None:
            self.fast = FastReader.open(self.config.database_url)

    def close(self) -> None:
        """Release what the services opened themselves (the store is the caller's)."""
        if self.fast is not None:
            self.fast.close()
            self.fast = None

    @property
    def limits(self) -> Limits:
        return Limits(max_bytes=self.config.max_upload_bytes)


class SchedulerApp(Quart):
    """A Quart app that carries its services, reached through `current_app`."""

    services: Services


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
    ):
        app.register_blueprint(blueprint, url_prefix=PREFIX)
    register_error_handlers(app)
    from simple_scheduler import dashboard  # here: dashboard imports the api package

    dashboard.install(app)
    return app
