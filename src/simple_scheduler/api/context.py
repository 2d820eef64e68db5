"""The app's context: the services handed to it at creation, and how handlers reach them.

The server (and the tests) open the store, load the keys and start the scheduler, then
hand them over in one `Services` object; the app only serves requests with them.
Handlers call `services()`; nothing here imports a route module, so no cycle.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import cast

from quart import Quart, current_app

from simple_scheduler.api.bodylimit import LimitedRequest
from simple_scheduler.api.tokencache import TokenCache
from simple_scheduler.api.views import JobDetails
from simple_scheduler.auth.keys import KeyPair
from simple_scheduler.auth.sessions import LoginThrottle
from simple_scheduler.config import Config
from simple_scheduler.scheduler import Scheduler
from simple_scheduler.states import ServerRole, check_role
from simple_scheduler.store.db import Store
from simple_scheduler.workflow.limits import Limits


@dataclass
class Role:
    """This server's role, as the requests see it; the server's leadership moves it."""

    name: ServerRole = "leader"
    #: The leader's URL as it advertises it (on a standby, when known).
    leader_url: str | None = None

    def move(self, new: ServerRole) -> None:
        check_role(self.name, new)
        self.name = new

    @property
    def leads(self) -> bool:
        return self.name == "leader"


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
    #: Leader, or a standby that refuses changes (standby.py).
    role: Role = field(default_factory=Role)
    #: Verified tokens, for a few seconds (see tokencache.py).
    tokens: TokenCache = field(default_factory=TokenCache)
    #: (session id, job id) -> {log file: bytes already sent}, for `livelog`.
    livelog_cursors: OrderedDict[tuple[str, int], dict[str, int]] = field(
        default_factory=OrderedDict
    )

    #: Per job: precious tasks and declared variable details (details.py).
    job_details: OrderedDict[int, JobDetails] = field(default_factory=OrderedDict)

    def close(self) -> None:
        """Release what the services opened themselves (none today; the store is the
        caller's, and holds its in-loop reader itself)."""

    @property
    def limits(self) -> Limits:
        return Limits(max_bytes=self.config.max_upload_bytes)


class SchedulerApp(Quart):
    """A Quart app that carries its services, reached through `current_app`."""

    services: Services
    #: The upload limit holds for chunked bodies too (see bodylimit.py).
    request_class = LimitedRequest


def services() -> Services:
    """The services of the app serving this request."""
    return cast(SchedulerApp, current_app).services
