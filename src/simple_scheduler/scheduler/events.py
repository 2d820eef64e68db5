"""The scheduler's event bus: one event per committed change, fanned out to subscribers.

The scheduler records an event where each change happens (a task's or job's status in
`Scheduler._set` / `_job_status`, a submission, a removal, a priority change) and hands
the events of one write batch to `EventBus.publish` only after that batch's transaction
has committed: a subscriber never hears of a state the database does not hold yet.

Design, so that subscribers can never slow scheduling:
- `publish` is synchronous and O(interested subscribers) per event: subscribers are
  indexed by the owner they follow (plus the few that follow everybody), and an event is
  appended to each interested subscriber's bounded deque. No encoding happens here.
- An event carries plain snapshots (row dicts) taken when the change happened, so it is
  immutable once recorded; turning it into JSON is the subscriber side's job, done once
  per event however many subscribers get it (`SchedulerEvent.cached`). The one
  exception is a submission: its JobStateData (7.6 MB for 10,000 tasks) is rendered by
  `prepare` (the endpoint's renderer, off the loop) before the job goes live, because
  every later event of the job waits behind it in its followers' streams.
- A subscriber whose queue is full is closed at once, with a log line: a slow or stuck
  client costs a bounded amount of memory and nothing else. When nobody subscribes the
  scheduler records nothing (`EventBus.active`).

Event names are ProActive's (`SchedulerEvent` enum) so its Java client decodes them.
A new job's tasks get no event for their first status: JOB_SUBMITTED carries every
task's state (ProActive's `InternalJob.start()` sets its tasks PENDING without task
events too), so a 10,000-task submission is one event, not 10,001 (and its tasks' first
statuses are stored by the submission itself: `states.first_task_status`). ProActive announces
no event for a task going back to SUBMITTED, PENDING or PAUSED later; we send
`TASK_PROGRESS` for those so a follower misses no status (its data says which).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from simple_scheduler.states import JobStatus, TaskStatus

log = logging.getLogger("simple_scheduler.events")

J = JobStatus
T = TaskStatus

#: Frame kinds (ProActive's `action`).
JOB_SUBMITTED = "JOB_SUBMITTED"
JOB_STATE_UPDATED = "JOB_STATE_UPDATED"
TASK_STATE_UPDATED = "TASK_STATE_UPDATED"

#: Events a subscriber queues at most before it is disconnected as too slow.
DEFAULT_QUEUE_SIZE = 100_000


@dataclass(slots=True, eq=False)
class SchedulerEvent:
    """One committed change. `job` / `task` are snapshots taken when it happened."""

    action: str
    name: str
    job_id: int
    owner: str
    #: the job's unchanging columns (shared by all of the job's events) ...
    job_static: Mapping[str, Any]
    #: ... and its changing ones at the time of the event
    job: Mapping[str, Any]
    task: Mapping[str, Any] | None = None
    #: JOB_SUBMITTED: every task's first row, for JobStateData
    tasks: Sequence[Mapping[str, Any]] | None = None
    #: `time.monotonic()` when recorded (event lag is measured from here)
    recorded: float = field(default_factory=time.monotonic)
    #: the encoded JSON and its WebSocket frame, made once by the first subscriber that
    #: sends it (a server's frames are unmasked: the same bytes serve every subscriber)
    cached: bytes | None = None
    frame: bytes | None = None
    #: the encoding in progress, when it has to await (job events read the job's
    #: details): the subscribers that need it meanwhile wait for it
    encoding: asyncio.Future[bytes] | None = None


def task_event_name(old: TaskStatus, new: TaskStatus) -> str:
    """ProActive's `schedulerEvent` for a task status change."""
    if new is T.RUNNING:
        return "TASK_PENDING_TO_RUNNING"
    if new is T.FINISHED and old is T.IN_ERROR:
        return "TASK_IN_ERROR_TO_FINISHED"
    if new is T.SKIPPED:
        return "TASK_SKIPPED"
    if new in (T.WAITING_ON_ERROR, T.WAITING_ON_FAILURE):
        return "TASK_WAITING_FOR_RESTART"
    if new is T.IN_ERROR:
        return "TASK_IN_ERROR"
    if new in (T.SUBMITTED, T.PENDING, T.PAUSED):
        return "TASK_PROGRESS"
    return "TASK_RUNNING_TO_FINISHED"  # FINISHED, FAULTY, FAILED, ABORTED, NOT_*


def job_event_name(old: JobStatus, new: JobStatus, faulty: int) -> str:
    """ProActive's `schedulerEvent` for a job status change."""
    if new is J.PAUSED:
        return "JOB_PAUSED"
    if old is J.PAUSED and new in (J.PENDING, J.RUNNING, J.STALLED):
        return "JOB_RESUMED"
    if new is J.IN_ERROR:
        return "JOB_IN_ERROR"
    if old is J.IN_ERROR and new in (J.RUNNING, J.STALLED):
        return "JOB_RESTARTED_FROM_ERROR"
    if new in (J.FINISHED, J.CANCELED, J.FAILED, J.KILLED):
        if old is J.PENDING:
            return "JOB_PENDING_TO_FINISHED"
        if new is J.FINISHED and faulty:
            return "JOB_RUNNING_TO_FINISHED_WITH_ERRORS"
        return "JOB_RUNNING_TO_FINISHED"
    if new is J.RUNNING and old is J.PENDING:
        return "JOB_PENDING_TO_RUNNING"
    return "JOB_UPDATED"  # RUNNING <-> STALLED: no ProActive event of its own


class Subscription:
    """One subscriber: its filter and its bounded queue."""

    def __init__(
        self,
        bus: EventBus,
        owner: str | None,
        names: frozenset[str] | None,
        session: str | None,
        max_queued: int,
    ) -> None:
        self._bus = bus
        #: the owner whose jobs it follows; None: everybody's (admins only)
        self.owner = owner
        #: the event names it wants; None: all
        self.names = names
        self.session = session
        self.max_queued = max_queued
        self.queue: deque[SchedulerEvent] = deque()
        self.closed_because: str | None = None
        #: called once when it closes: the sender may be stuck writing to a client that
        #: stopped reading, and waking its queue would not free it
        self.on_close: Callable[[], object] | None = None
        #: the sender's wait, resolved by the next event: one loop turn from a commit to
        #: the sender (an `asyncio.Event` under `wait_for` took three, and a task)
        self._waiter: asyncio.Future[None] | None = None

    @property
    def closed(self) -> bool:
        return self.closed_because is not None

    def offer(self, event: SchedulerEvent) -> None:
        if self.names is not None and event.name not in self.names:
            return
        if len(self.queue) >= self.max_queued:
            log.warning(
                "events subscriber of %s disconnected: %d events queued, it does not keep up",
                self.owner or "all jobs",
                len(self.queue),
            )
            self.close("too slow: its event queue is full")
            return
        self.queue.append(event)
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def wait(self, timeout: float) -> bool:
        """Wait until events are queued or it is closed; False on timeout."""
        if self.queue or self.closed:
            return True
        loop = asyncio.get_running_loop()
        self._waiter = waiter = loop.create_future()
        timer = loop.call_later(timeout, _resolve, waiter)
        try:
            await waiter
        finally:
            timer.cancel()
            self._waiter = None
        return bool(self.queue) or self.closed

    def take(self) -> list[SchedulerEvent]:
        """Everything queued, oldest first."""
        items = list(self.queue)
        self.queue.clear()
        return items

    def close(self, reason: str) -> None:
        """Stop it (idempotent): the queue is dropped and its waiter woken."""
        if self.closed_because is None:
            self.closed_because = reason
            self.queue.clear()
            self._bus._remove(self)
            if self.on_close is not None:
                self.on_close()
        self._wake()


def _resolve(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


class EventBus:
    """Subscribers indexed by the owner they follow; `publish` appends to their queues."""

    def __init__(self, max_queued: int = DEFAULT_QUEUE_SIZE) -> None:
        self.max_queued = max_queued
        self._by_owner: dict[str, list[Subscription]] = {}
        self._everybody: list[Subscription] = []
        self.published = 0
        #: made by the events endpoint: renders events ahead of publishing
        self.renderer: Callable[[Sequence[SchedulerEvent]], Awaitable[None]] | None = None

    @property
    def active(self) -> bool:
        """Whether anyone listens (the scheduler records events only then)."""
        return bool(self._by_owner or self._everybody)

    @property
    def subscribers(self) -> int:
        return len(self._everybody) + sum(len(s) for s in self._by_owner.values())

    def subscribe(
        self,
        owner: str | None,
        names: Iterable[str] | None = None,
        *,
        session: str | None = None,
        max_queued: int | None = None,
    ) -> Subscription:
        """Follow `owner`'s jobs (None: everybody's); `names` empty or None: every event."""
        wanted = frozenset(names) if names else None
        sub = Subscription(self, owner, wanted, session, max_queued or self.max_queued)
        if owner is None:
            self._everybody = [*self._everybody, sub]
        else:
            self._by_owner[owner] = [*self._by_owner.get(owner, ()), sub]
        return sub

    def _remove(self, sub: Subscription) -> None:
        # New lists, never mutated ones: `publish` may be iterating over the old list.
        if sub.owner is None:
            self._everybody = [s for s in self._everybody if s is not sub]
            return
        subs = [s for s in self._by_owner.get(sub.owner, ()) if s is not sub]
        if subs:
            self._by_owner[sub.owner] = subs
        else:
            self._by_owner.pop(sub.owner, None)

    async def prepare(self, events: Sequence[SchedulerEvent]) -> None:
        """Render the events that someone will receive, before they are published.

        For JOB_SUBMITTED: everything its job does next queues behind it in its
        followers' streams, so its bytes had better be ready when it is published."""
        wanted = [e for e in events if self._everybody or e.owner in self._by_owner]
        if wanted and self.renderer is not None:
            try:
                await self.renderer(wanted)
            except Exception:  # they are rendered when sent, then
                log.exception("rendering events ahead failed")

    def publish(self, events: Iterable[SchedulerEvent]) -> None:
        """Queue committed events for their subscribers, in order."""
        everybody = self._everybody
        by_owner = self._by_owner
        for event in events:
            self.published += 1
            for sub in by_owner.get(event.owner, ()):
                sub.offer(event)
            for sub in everybody:
                sub.offer(event)

    def close_session(self, session: str, reason: str) -> int:
        """Close every subscription opened with `session` (logout); how many."""
        subs = [
            s
            for s in [*self._everybody, *(s for v in self._by_owner.values() for s in v)]
            if s.session == session
        ]
        for sub in subs:
            sub.close(reason)
        return len(subs)

    def close_all(self, reason: str) -> None:
        for sub in [*self._everybody, *(s for v in self._by_owner.values() for s in v)]:
            sub.close(reason)
