"""Watching a job until it ends: where changes come from, and what the ending means.

A `JobSource` gives the job's current info and waits for the next change: the verbs use
`eventsource.EventsSource` (the events WebSocket: woken by each change), and
`PollingSource` here (GET `/jobs/{id}/info`, sleeping between polls) when the socket
cannot open. `watch`, the progress bar and the log follower do not know which.

Polling backs off: 20 ms after a change (a busy job changes again soon), growing to 500 ms
while nothing happens, so a short job is seen ending within a few tens of milliseconds
and an idle one costs two requests a second.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from simple_scheduler.client.errors import JOB_FAILED, OK, ClientError
from simple_scheduler.states import JOB_TERMINAL, JobStatus

if TYPE_CHECKING:
    from simple_scheduler.client.rest import Rest

JobInfo = dict[str, Any]

FIRST_DELAY = 0.02
MAX_DELAY = 0.5
GROWTH = 1.5


class Backoff:
    """Delays that start short and grow to a cap; `reset` after activity."""

    def __init__(
        self, first: float = FIRST_DELAY, cap: float = MAX_DELAY, growth: float = GROWTH
    ) -> None:
        self.first, self.cap, self.growth = first, cap, growth
        self._delay = first

    def reset(self) -> None:
        self._delay = self.first

    def next(self) -> float:
        delay = self._delay
        self._delay = min(self.cap, delay * self.growth)
        return delay


class JobSource(Protocol):
    """Where a watcher learns about one job."""

    def snapshot(self) -> JobInfo:
        """The job's current JobInfoData."""
        ...

    def wait(self, timeout: float) -> None:
        """Return after `timeout` seconds, or earlier when the job may have changed."""
        ...


class PollingSource:
    """Polls `/jobs/{id}/info`; a job removed while watched counts as ended badly."""

    def __init__(self, rest: Rest, job_id: int) -> None:
        self.rest = rest
        self.job_id = job_id
        self._seen = False

    def snapshot(self) -> JobInfo:
        try:
            info = self.rest.job_info(self.job_id)
        except ClientError as exc:
            if self._seen and exc.status == 404:
                raise ClientError(JOB_FAILED, f"job {self.job_id} was removed") from None
            raise
        self._seen = True
        return info

    def wait(self, timeout: float) -> None:
        time.sleep(timeout)


def ended(info: JobInfo) -> bool:
    return info["status"] in JOB_TERMINAL


def failed_tasks(info: JobInfo) -> int:
    return int(info["numberOfFailedTasks"]) + int(info["numberOfFaultyTasks"])


def exit_code(info: JobInfo) -> int:
    """0 for FINISHED with no failed or faulty task, 1 for any other ending."""
    return OK if info["status"] == JobStatus.FINISHED and failed_tasks(info) == 0 else JOB_FAILED


class Follower(Protocol):
    """Something that reads output on each turn (see `follow`)."""

    #: True once it has read everything it wanted: the watch may stop before the job ends.
    finished: bool

    def pump(self, info: JobInfo, final: bool) -> bool:
        """Read what is new given the job's info; True when there was something. `final`:
        the job has ended, this is the last turn (print what is left)."""
        ...


def watch(
    source: JobSource,
    on_change: Callable[[JobInfo], None],
    follower: Follower | None = None,
    backoff: Backoff | None = None,
) -> JobInfo:
    """Follow the job until it ends (or the follower has finished) and return its info.

    `on_change` sees every distinct info; the follower pumps on every turn, including the
    one that sees the end, so nothing written before the end is missed.
    """
    delays = backoff or Backoff()
    last: JobInfo | None = None
    while True:
        info = source.snapshot()
        changed = info != last
        if changed:
            on_change(info)
            last = info
        done = ended(info)
        active = follower.pump(info, done) if follower is not None else False
        if done or (follower is not None and follower.finished):
            return info
        if changed or active:
            delays.reset()
        source.wait(delays.next())
