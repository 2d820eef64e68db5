"""A `JobSource` fed by the server's events WebSocket, with polling as the fallback.

`wait` returns as soon as an event of the watched job arrives (a job's end is seen within
milliseconds, with no request per turn), instead of sleeping out the poll delay. The
job's info comes from its JOB_STATE_UPDATED events (JobInfoData, counters included);
task events carry no job counters, so after them the info is read again with
`GET /jobs/{id}/info`, at most every `REFRESH_S` (a busy job's progress bar stays
current at a few requests a second, whatever its size).

Subscribing comes first and the first info is read after the server's reply, so no
change falls between the two. When the socket cannot open (an older server, a proxy that
does not pass WebSockets), `open_source` returns a `PollingSource`; when it closes during
the watch (the session it opened with expired: the CLI renews its token as it goes; a
server restart), it is opened again, and the source polls once that fails.

`websockets` is imported when a socket is opened: every CLI verb loads this module, and
the import alone costs ~30 ms of start-up.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import orjson

from simple_scheduler.client.watch import JobInfo, JobSource, PollingSource

if TYPE_CHECKING:
    from websockets.sync.client import ClientConnection

    from simple_scheduler.client.rest import Rest

#: The events path under the server's base URL (PROACTIVE.md 6.2).
EVENTS_PATH = "/rest/scheduler/events"
#: Sent as User-Agent: the server's log says who subscribed.
AGENT = "simple-scheduler-cli"
#: How long opening the socket may take before polling is used instead.
OPEN_TIMEOUT_S = 5.0
#: Shortest time between two reads of the info after task events.
REFRESH_S = 0.25
#: Times a closed stream is opened again before polling takes over.
MAX_REOPENS = 20


def events_url(base: str) -> str:
    """`ws://host:port/rest/scheduler/events` from the server's `http(s)://` base URL."""
    if base.startswith("https://"):
        return "wss://" + base.removeprefix("https://") + EVENTS_PATH
    return "ws://" + base.removeprefix("http://") + EVENTS_PATH


@contextmanager
def job_source(rest: Rest, job_id: int) -> Iterator[JobSource]:
    """`open_source`, closed afterwards."""
    source = open_source(rest, job_id)
    try:
        yield source
    finally:
        if isinstance(source, EventsSource):
            source.close()


def open_source(rest: Rest, job_id: int) -> JobSource:
    """The events source when the server's socket opens, else a polling one."""
    socket = subscribe(rest)
    return PollingSource(rest, job_id) if socket is None else EventsSource(rest, job_id, socket)


def subscribe(rest: Rest) -> ClientConnection | None:
    """A socket subscribed to the user's events (the server has answered), or None."""
    token = rest.token
    if token is None:
        return None
    from websockets.exceptions import InvalidHandshake, WebSocketException
    from websockets.sync.client import connect

    try:
        socket = connect(
            events_url(rest.session.url),
            additional_headers={"sessionid": token},
            user_agent_header=AGENT,
            open_timeout=OPEN_TIMEOUT_S,
            max_size=None,  # a big job's JobStateData is megabytes; we skip it anyway
        )
    except (OSError, TimeoutError, InvalidHandshake, WebSocketException):
        return None
    try:
        socket.send(orjson.dumps({"myEventsOnly": True, "events": []}).decode())
        socket.recv(timeout=OPEN_TIMEOUT_S)  # the NONE reply: subscribed from here on
    except (TimeoutError, WebSocketException):
        socket.close()
        return None
    return socket


class EventsSource:
    """Follows one job over an open events socket (see the module's docstring)."""

    def __init__(self, rest: Rest, job_id: int, socket: ClientConnection) -> None:
        self.rest = rest
        self.job_id = job_id
        self._reopens = MAX_REOPENS
        self._poll = PollingSource(rest, job_id)
        self._socket: ClientConnection | None = socket
        self._info: JobInfo | None = None
        #: task events arrived since the info was read
        self._stale = False
        self._refresh_at = 0.0

    @property
    def live(self) -> bool:
        """Whether changes still come from the socket (False once it has closed)."""
        return self._socket is not None

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None

    def snapshot(self) -> JobInfo:
        now = time.monotonic()
        if self._socket is None or self._info is None or (self._stale and now >= self._refresh_at):
            self._info = self._poll.snapshot()
            self._stale = False
            self._refresh_at = now + REFRESH_S
        return self._info

    def wait(self, timeout: float) -> None:
        from websockets.exceptions import ConnectionClosed  # loaded by `subscribe` already

        self.rest.renew_if_due()  # no request may come for long: keep the session alive
        socket = self._socket
        if socket is None:
            self._poll.wait(timeout)
            return
        try:
            self._take(socket.recv(timeout=timeout))
            while True:  # whatever else has arrived, without waiting
                self._take(socket.recv(timeout=0))
        except TimeoutError:
            return
        except ConnectionClosed:
            self._reopen()

    def _reopen(self) -> None:
        """The server closed the stream (its session expired: the token has been renewed
        since; the server restarted): subscribe again, else poll from now on."""
        self.close()
        if self._reopens > 0:
            self._reopens -= 1
            self._socket = subscribe(self.rest)
            self._info = None  # read again: changes made meanwhile were not heard of

    def _take(self, message: str | bytes) -> None:
        if message == "X":  # heartbeat
            return
        try:
            event: dict[str, Any] = orjson.loads(message)
            action, data = event["action"], event["data"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            return
        if action == "JOB_STATE_UPDATED" and data["jobId"]["id"] == self.job_id:
            self._info = data  # JobInfoData: the status and every counter
            self._stale = False
        elif action == "TASK_STATE_UPDATED" and data["jobId"]["id"] == self.job_id:
            self._stale = True
