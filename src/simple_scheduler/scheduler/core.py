"""The scheduler: owns the DAG of every live job, the worker limit and the error policies.

It runs inside the web process as asyncio code and talks to execution only through
`backend.ExecutionBackend`. Design choices:

- **In memory, O(1) per event.** Each live task keeps a counter of parents that have not
  yet released it; a task's end walks its own children only. Ready tasks sit in one heap
  ordered by (job priority, job id, task index), so the highest-priority, oldest job goes
  first. Stale heap entries are skipped when popped, never searched for.
- **Group-committed, ordered writes.** Status changes mark rows dirty; one flusher
  writes every dirty row in one transaction. It commits at once when no commit is in
  flight, and while one is, changes accumulate for the next (group commit, as databases
  do): idle, a change is in the store about a millisecond later; under load, each commit
  carries whatever happened during the previous one. An execution is released from the
  backend only after its outcome is committed.
- **Exactly once across crashes.** An execution's key is `<job>.<task>.<attempt>`, so
  on restart the backend's `list` tells which attempt really started, whether or not the
  database had recorded it. See `_reconcile`.
- **Children spawned ahead (pre-spawn).** When a task's last unfinished parent starts,
  its next execution is spawned held (`spawn(start=False)`: monitor forked, files open,
  the command blocked before exec), up to `prespawn` at a time; when it becomes due,
  dispatch sends only `start`, which takes the fork and set-up off a chain's edge. Held
  executions are in no status and hold no worker slot: the task stays SUBMITTED or
  PENDING until started like any other. One that will not be started soon (its task
  paused or ended, its parent failed without retry) is cancelled (`kill`: it exits
  without running its command), and its key is spawned again only once that exit is in.
  A record's `started` flag tells a restarted scheduler a held execution from a run.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import json
import logging
import sys
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from simple_scheduler.errors import JobAlreadyFinished, StateConflict, UnknownTask
from simple_scheduler.execution.backend import (
    BackendError,
    Event,
    ExecutionBackend,
    Exited,
    ExitStatus,
    Lost,
    Started,
    TaskFiles,
    TaskRecord,
    TaskSpec,
    Unreachable,
    execution_key,
)
from simple_scheduler.scheduler.events import (
    JOB_STATE_UPDATED,
    JOB_SUBMITTED,
    TASK_STATE_UPDATED,
    EventBus,
    SchedulerEvent,
    job_event_name,
    task_event_name,
)
from simple_scheduler.scheduler.spec import NoAccount, build_spec, has_steps, task_account
from simple_scheduler.states import (
    EXECUTION_ALIVE,
    JOB_TERMINAL,
    TASK_COUNTERS,
    TASK_ON_JOB_END,
    TASK_PAUSABLE,
    TASK_RELEASES_CHILDREN,
    TASK_TERMINAL,
    TASK_WAITING_TO_RETRY,
    JobStatus,
    TaskStatus,
    check_job,
    check_task,
    count_tasks,
    first_task_status,
    job_status,
)
from simple_scheduler.store import jobstore
from simple_scheduler.store.db import Row, Store
from simple_scheduler.workflow import Job

log = logging.getLogger("simple_scheduler.scheduler")

T = TaskStatus
J = JobStatus

PRIORITY_RANK = {"highest": 0, "high": 1, "normal": 2, "low": 3, "lowest": 4, "idle": 5}
#: ProActive re-queues a task restarted by a user after this many seconds.
RESTART_DELAY_S = 5.0

BackendFactory = Callable[[], Awaitable[ExecutionBackend]]
#: A submit waiting for its group write: the job, its owner, its XML, and its id to come.
_Submission = tuple[Job, str, str, "asyncio.Future[int]"]


#: States whose log line does not repeat the task's last reason.
_QUIET_REASON = frozenset({T.SUBMITTED, T.PENDING, T.RUNNING, T.PAUSED})
#: States every task passes through on success: logged at DEBUG.
_ROUTINE = frozenset({T.PENDING, T.RUNNING, T.FINISHED})


def proactive_retry_delay(execution_number: int) -> float:
    """ProActive's growing delay (InternalJob.getNextWaitingTime), in seconds."""
    if execution_number <= 0:
        return 1.0
    if execution_number > 10:
        return 60.0
    return execution_number + proactive_retry_delay(execution_number - 1)


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass(eq=False)
class LiveTask:
    index: int
    name: str
    status: TaskStatus
    spec: dict[str, Any]
    on_error: str
    max_exec: int
    attempts: int
    parents: list[int] = field(default_factory=list)
    children: list[int] = field(default_factory=list)
    waiting_parents: int = 0
    exit_code: int | None = None
    signal: int | None = None
    reason: str | None = None
    scheduled_time: int | None = None
    start_time: int | None = None
    finished_time: int | None = None
    in_error_time: int | None = None
    pid: int | None = None
    pid_start_time: int | None = None
    #: why we asked the backend to kill it: "job", "task", "restart" or "walltime"
    kill_reason: str | None = None
    timer: asyncio.TimerHandle | None = None
    #: Handed to a backend that queues (Slurm), not yet started there: the task stays
    #: PENDING (PAUSED while held) but holds a worker slot and execution `attempts`.
    queued: bool = False
    #: The key of its next execution, spawned ahead and held (see pre-spawn above).
    held: str | None = None

    def row(self, job_id: int) -> dict[str, Any]:
        return {
            "job_id": job_id,
            "task_index": self.index,
            "status": self.status.value,
            # A queued execution is not counted until it starts (ProActive counts
            # executions at start). Stored so, a restart finds it as "the following
            # attempt" in the backend's list and adopts it (see `_reconcile`).
            "attempts": self.attempts - 1 if self.queued else self.attempts,
            "max_number_of_execution": self.max_exec,
            "exit_code": self.exit_code,
            "signal": self.signal,
            "reason": self.reason,
            "scheduled_time": self.scheduled_time,
            "start_time": self.start_time,
            "finished_time": self.finished_time,
            "in_error_time": self.in_error_time,
            "pid": self.pid,
            "pid_start_time": self.pid_start_time,
        }

    def cancel_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None


@dataclass(eq=False)
class LiveJob:
    id: int
    owner: str
    name: str
    priority: str
    status: JobStatus
    on_error: str
    variables: dict[str, str]
    tasks: list[LiveTask]
    paused: bool = False
    start_time: int | None = None
    finished_time: int | None = None
    in_error_time: int | None = None
    counters: dict[str, int] = field(default_factory=dict)
    #: The job's columns that never change (owner, name, submitted time, ...): what an
    #: event needs besides `row()` to be rendered like the REST answers.
    static: dict[str, Any] = field(default_factory=dict)

    @property
    def rank(self) -> int:
        return PRIORITY_RANK.get(self.priority, 2)

    def recount(self) -> None:
        self.counters = count_tasks(task.status for task in self.tasks)

    @staticmethod
    def _count(counts: dict[str, int], status: TaskStatus, delta: int) -> None:
        for name in TASK_COUNTERS[status]:
            counts[name] += delta

    def row(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "status": self.status.value,
            "priority": self.priority,
            "start_time": self.start_time,
            "finished_time": self.finished_time,
            "in_error_time": self.in_error_time,
            **self.counters,
        }


def _leftovers(status: ExitStatus | None) -> str:
    """"; N processes it left behind were ended" when the executor had to."""
    if status is None or not status.leftovers:
        return ""
    return f"; {status.leftovers} processes it left behind were ended"


class Scheduler:
    """Runs jobs. Every public coroutine is safe to call from request handlers."""

    def __init__(
        self,
        store: Store,
        backend_factory: BackendFactory,
        *,
        files: TaskFiles,
        nb_of_workers: int,
        kill_grace: float = 5.0,
        base_env: Mapping[str, str] | None = None,
        task_user: str | None = None,
        run_as_me_map: Mapping[str, str] | None = None,
        prespawn: int = 0,
    ) -> None:
        """`prespawn`: how many executions may wait spawned ahead at once (0: none; a
        backend whose spawn is a fork of a local process gains, a cluster one not)."""
        self.store = store
        self._backend_factory = backend_factory
        self._backend: ExecutionBackend | None = None
        #: The executions' files (outputs, scripts, failed steps), through the seam.
        self.files = files
        #: 0: no limit of ours (a cluster backend leaves queuing to its engine).
        self.nb_of_workers = nb_of_workers if nb_of_workers > 0 else sys.maxsize
        self.kill_grace = kill_grace
        self._base_env = dict(base_env or {})
        #: Unix accounts of tasks (see `spec.task_account`).
        self.task_user = task_user or None
        self.run_as_me_map = dict(run_as_me_map or {})
        self._jobs: dict[int, LiveJob] = {}
        self._by_key: dict[str, tuple[LiveJob, LiveTask]] = {}
        self._ready: list[tuple[int, int, int]] = []
        self._running = 0
        self.max_running_seen = 0
        self._dirty_tasks: dict[tuple[int, int], tuple[LiveJob, LiveTask]] = {}
        self._dirty_jobs: dict[int, LiveJob] = {}
        self._release_after_flush: list[str] = []
        self._flush_needed = asyncio.Event()
        self._end_waiters: dict[int, asyncio.Event] = {}  #: wait_job's, by job id
        self._flushed = asyncio.Condition()
        self._flush_generation = 0
        self._writing = False
        self._connected = asyncio.Event()
        self._background: list[asyncio.Task[None]] = []
        self._closing = False
        #: Submits waiting for the next group write, and the task writing them (if any).
        self._submissions: list[_Submission] = []
        self._submitter: asyncio.Future[None] | None = None
        #: Subscribers to committed changes (the events WebSocket).
        self.events = EventBus()
        #: Events of changes not yet committed: published by `_write_batch` after commit.
        self._pending_events: list[SchedulerEvent] = []
        #: Executions already recorded as ended (killed) whose process is still dying:
        #: they keep their worker slot until their exit arrives.
        self._dying: set[str] = set()
        self.prespawn = max(0, prespawn)
        #: Executions spawned ahead and held, by key.
        self._held: dict[str, tuple[LiveJob, LiveTask]] = {}
        #: Held executions given up (cancelled, or ended unstarted): their key is spawned
        #: again only once the event is set (their exit is in), then released first.
        self._stale: dict[str, asyncio.Event] = {}
        #: Stale keys a spawn waits for (`_spawn_after` forgets them, not `_forget_stale`).
        self._respawning: set[str] = set()

    # -- life cycle ----------------------------------------------------------------------

    async def start(self) -> None:
        """Load live jobs, connect, reconcile with the backend, then run."""
        await self._load()
        await self._connect()
        self._background = [
            asyncio.create_task(self._consume_events(), name="scheduler-events"),
            asyncio.create_task(self._flusher(), name="scheduler-flusher"),
        ]
        for task in self._background:  # a dead one must say so, not hang every job
            task.add_done_callback(_log_failure)
        self._dispatch()

    async def stop(self, *, detach: bool = False) -> None:
        """Write what is pending and let go; running tasks keep running for the next start.

        `detach`: the server stops for good (a clean stop): the backend may let go of what
        it keeps for us once nothing runs (see `ExecutionBackend.detach`)."""
        self._closing = True
        for job in self._jobs.values():
            for task in job.tasks:
                task.cancel_timer()
        # Events first, so nothing new gets dirty; then write; then stop the flusher while
        # it is idle (cancelled mid-transaction, it would leave a query in aiosqlite's
        # thread that completes after the loop is gone).
        if self._background:
            events, flusher = self._background
            await _cancel(events)
            await self.flush()
            await _cancel(flusher)
        if self._backend is not None:
            with contextlib.suppress(Exception):
                if detach:
                    # Held executions would keep the hypervisor up for nothing: cancel
                    # them (the next start finds them ended unstarted, and respawns).
                    held = list(self._held)
                    for _, task in self._held.values():
                        task.held = None
                    self._held.clear()
                    await asyncio.gather(*(self._kill(key) for key in held))
                    await self._backend.detach()
                await self._backend.close()

    async def _connect(self) -> None:
        delay = 0.05
        while True:
            try:
                self._backend = await self._backend_factory()
                break
            except (OSError, BackendError) as exc:
                log.warning("backend unreachable (%s); retrying in %.1fs", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
        records = await self._backend.list()
        self._reconcile(records)
        self._connected.set()

    # -- loading and reconciliation ----------------------------------------------------

    async def _load(self) -> None:
        jobs, tasks, deps = await jobstore.load_live(self.store)
        by_job: dict[int, list[Row]] = {}
        for row in tasks:
            by_job.setdefault(int(row["job_id"]), []).append(row)
        for jrow in jobs:
            job_id = int(jrow["id"])
            live = [
                LiveTask(
                    index=int(r["task_index"]),
                    name=str(r["name"]),
                    status=T(r["status"]),
                    spec=json.loads(r["spec"]),
                    on_error=str(r["on_task_error"]),
                    max_exec=int(r["max_number_of_execution"]),
                    attempts=int(r["attempts"]),
                    exit_code=r["exit_code"],
                    signal=r["signal"],
                    reason=r["reason"],
                    scheduled_time=r["scheduled_time"],
                    start_time=r["start_time"],
                    finished_time=r["finished_time"],
                    in_error_time=r["in_error_time"],
                    pid=r["pid"],
                    pid_start_time=r["pid_start_time"],
                )
                for r in by_job.get(job_id, [])
            ]
            job = LiveJob(
                id=job_id,
                owner=str(jrow["owner"]),
                name=str(jrow["name"]),
                priority=str(jrow["priority"]),
                status=J(jrow["status"]),
                on_error=str(jrow["on_task_error"]),
                variables=json.loads(jrow["variables"]),
                tasks=live,
                paused=jrow["status"] == J.PAUSED.value,
                start_time=jrow["start_time"],
                finished_time=jrow["finished_time"],
                in_error_time=jrow["in_error_time"],
                static=_static_columns(jrow),
            )
            self._jobs[job_id] = job
        for d in deps:
            job = self._jobs[int(d["job_id"])]
            child, parent = job.tasks[int(d["task_index"])], job.tasks[int(d["parent"])]
            child.parents.append(parent.index)
            parent.children.append(child.index)
        for job in self._jobs.values():
            job.recount()
            for task in job.tasks:
                task.waiting_parents = sum(
                    1 for p in task.parents if job.tasks[p].status not in TASK_RELEASES_CHILDREN
                )

    def _reconcile(self, records: list[TaskRecord]) -> None:
        """Make memory agree with what the backend really ran (after any restart)."""
        by_key = {r.key: r for r in records}
        claimed: set[str] = set()
        hold: list[str] = []  #: queued executions whose held state must change
        unhold: list[str] = []
        # Held executions are learnt afresh from the records (after a reconnect too).
        for _, held in self._held.values():
            held.held = None
        self._held.clear()
        for key, stale in list(self._stale.items()):
            gone = by_key.get(key)
            if (gone is None or gone.state not in EXECUTION_ALIVE) and not stale.is_set():
                stale.set()
                self._spawn_task(self._forget_stale(key))
        for job in list(self._jobs.values()):
            for task in job.tasks:
                if task.status in TASK_TERMINAL or task.status is T.IN_ERROR:
                    continue
                current = execution_key(job.id, task.index, task.attempts)
                following = execution_key(job.id, task.index, task.attempts + 1)
                if task.status is T.RUNNING or task.queued:
                    record = by_key.get(current)
                elif following in by_key and by_key[following].started:
                    # Spawned before the database recorded it (or queued in the backend,
                    # which is stored as not yet started): adopt that attempt. (Spawned
                    # ahead and never started: the `else` below holds it again.)
                    record = by_key[following]
                    task.attempts += 1
                    task.scheduled_time = task.scheduled_time or now_ms()
                    self._running += 1
                    if record.state == "spawned" and self._queues():
                        target = T.PAUSED if job.paused else T.PENDING
                        if task.status is not target:
                            self._set(job, task, target)
                        task.queued = True
                        self._mark(job, task)
                        if job.paused != (record.extra.get("held") == "1"):
                            (hold if job.paused else unhold).append(following)
                    else:
                        if task.status is not T.PENDING:
                            self._set(job, task, T.PENDING)
                        self._set(job, task, T.RUNNING)
                else:
                    ahead = by_key.get(following)
                    if ahead is not None and following not in self._stale:
                        # Spawned ahead, never started: hold it again, or give it up.
                        claimed.add(following)
                        self._adopt_held(job, task, ahead)
                    if task.status is T.SUBMITTED and task.waiting_parents == 0:
                        # Its PENDING was still in the status batch when we died (submit
                        # commits SUBMITTED): an acknowledged job must run.
                        self._make_eligible(job, task)
                    elif task.status is T.PENDING and not job.paused:
                        heapq.heappush(self._ready, (job.rank, job.id, task.index))
                    elif (
                        task.status in TASK_WAITING_TO_RETRY
                        and task.timer is None  # first start: the delay was lost with us
                    ):
                        self._schedule_retry(job, task, 0.0)
                    continue
                key = execution_key(job.id, task.index, task.attempts)
                claimed.add(key)
                self._by_key.setdefault(key, (job, task))
                if record is None:
                    if task.pid is None and task.kill_reason is None:
                        # The spawn never reached the backend: nothing ran, run it now.
                        self._spawn(job, task)
                    else:
                        self._execution_ended(
                            key, None, "lost: unknown to the backend after a restart", lost=True
                        )
                    continue
                self._apply_record(job, task, record)
        for key, record in by_key.items():
            if key not in claimed:
                # Not ours (job removed, or already recorded): make sure it is gone.
                if record.state in EXECUTION_ALIVE:
                    self._spawn_task(self._kill(key))
                else:
                    self._release_after_flush.append(key)
        self._running = sum(
            1
            for job in self._jobs.values()
            for t in job.tasks
            if t.status is T.RUNNING or t.queued
        )
        if hold:
            self._spawn_task(self._hold(hold, True))
        if unhold:
            self._spawn_task(self._hold(unhold, False))
        self._settle(set(self._jobs.values()))

    def _adopt_held(self, job: LiveJob, task: LiveTask, record: TaskRecord) -> None:
        """A held execution found at reconciliation, for a task that is not running."""
        key = record.key
        alive = record.state in EXECUTION_ALIVE
        if alive and task.status in (T.SUBMITTED, T.PENDING) and not job.paused:
            task.held = key
            self._held[key] = (job, task)
            return
        stale = self._stale[key] = asyncio.Event()
        if alive:
            self._spawn_task(self._kill(key))  # cancelled: its exit sets `stale`
        else:
            stale.set()
            self._spawn_task(self._forget_stale(key))

    def _apply_record(self, job: LiveJob, task: LiveTask, record: TaskRecord) -> None:
        key = record.key
        if record.pid is not None and task.pid is None:
            task.pid, task.pid_start_time = record.pid, record.pid_start_time
            self._mark(job, task)
        if task.queued and record.state == "running":
            self._started(job, task, time.time())
        if record.state == "exited" and record.status is not None:
            self._execution_ended(key, record.status, None)
        elif record.state == "lost":
            self._execution_ended(key, None, f"lost: {record.reason or 'monitor lost'}", lost=True)
        elif task.kill_reason is not None:
            self._spawn_task(self._kill(key))
        elif not record.started and self._backend is not None:
            # Held, and recorded RUNNING: the start was decided but never arrived.
            self._spawn_task(self._backend.start(key))

    # -- submission ----------------------------------------------------------------------

    async def submit(self, job: Job, owner: str, xml: str) -> int:
        """Store a validated job, then start scheduling it; its id once it is committed.

        Group commit: submits that arrive while a write is in progress are stored
        together by the next one, in one transaction. One transaction per submit,
        serialised on the single writer, made 32 concurrent clients queue behind each
        other (400 ms p50 for a one-task job).
        """
        if self._submitter is None and not self._submissions:
            # Nothing being written: a small job is committed right here, in the loop's
            # thread, when the store can (a task of its own cost a loop turn to start
            # and one more to hand the id back).
            submitted = now_ms()
            ids = jobstore.commit_jobs_now(self.store, [(job, owner, xml)], submitted)
            if ids is not None:
                live = self._live_job(ids[0], job, owner, submitted)
                announced = [self._submitted_event(live)] if self.events.active else []
                await self.events.prepare(announced)  # as in _store_group
                self._go_live(live, job)
                self.events.publish(announced)
                self._settle({live})
                return live.id
        done: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._submissions.append((job, owner, xml, done))
        if self._submitter is None:
            self._submitter = asyncio.ensure_future(self._store_submissions())
        # Shielded: a client that goes away must not cancel the others' group write.
        return await asyncio.shield(done)

    async def _store_submissions(self) -> None:
        """Write the waiting submissions, a group at a time, until none is left."""
        try:
            while self._submissions:
                group, self._submissions = self._submissions, []
                await self._store_group(group)
        finally:
            self._submitter = None

    async def _store_group(self, group: list[_Submission]) -> None:
        try:
            submitted = now_ms()
            ids = await jobstore.commit_jobs(
                self.store, [(j, o, x) for j, o, x, _ in group], submitted
            )
        except Exception as exc:
            if len(group) > 1:  # one bad job must not fail the others: each alone
                for item in group:
                    await self._store_group([item])
                return
            if not group[0][3].done():
                group[0][3].set_exception(exc)
            return
        lives = [
            self._live_job(job_id, job, owner, submitted)
            for (job, owner, _, _), job_id in zip(group, ids, strict=True)
        ]
        announced = [self._submitted_event(live) for live in lives] if self.events.active else []
        # Rendered before the jobs go live: the first changes of a 10,000-task job queue
        # behind its JobStateData (7.6 MB) in every follower's stream, so that it is ready
        # when they happen, not 250 ms later (made off the loop; a no-op when nobody
        # follows these owners).
        await self.events.prepare(announced)
        for live, (job, _, _, done) in zip(lives, group, strict=True):
            self._go_live(live, job)
            if not done.done():
                done.set_result(live.id)
        # Committed above: each announced before any of its changes.
        self.events.publish(announced)
        self._settle(set(lives))

    def _live_job(self, job_id: int, job: Job, owner: str, submitted: int) -> LiveJob:
        """The scheduler's copy of a committed job (not live yet)."""
        tasks = [
            LiveTask(
                index=t.index,
                name=t.name,
                status=first_task_status(bool(t.depends)),
                spec=jobstore.task_spec(t, job),
                on_error=job.task_on_error(t),
                max_exec=job.task_max_number_of_execution(t),
                attempts=0,
                parents=list(t.depends),
                waiting_parents=len(t.depends),
            )
            for t in job.tasks
        ]
        for t in tasks:
            for p in t.parents:
                tasks[p].children.append(t.index)
        live = LiveJob(
            id=job_id,
            owner=owner,
            name=job.name,
            priority=job.priority,
            status=J.PENDING,
            on_error=job.on_task_error,
            variables=dict(job.variables),
            tasks=tasks,
            static={
                "id": job_id,
                "owner": owner,
                "name": job.name,
                "project_name": job.project_name,
                "description": job.description,
                "variables": dict(job.variables),
                "generic_information": dict(job.generic_information),
                "submitted_time": submitted,
                "total_tasks": len(tasks),
            },
        )
        live.recount()
        return live

    def _go_live(self, live: LiveJob, job: Job) -> None:
        """A committed job joins the live ones; its tasks without parents are eligible."""
        self._jobs[live.id] = live
        log.info(
            "job %d submitted by %s: %s (%d tasks)", live.id, live.owner, job.name, len(job.tasks)
        )
        if job.warnings:
            log.info("job %d: ignored: %s", live.id, "; ".join(job.warnings))
        # Tasks without parents were stored PENDING (`first_task_status`): they need no
        # status write and no event of their own, only a place in the ready queue.
        for t in live.tasks:
            if t.status is T.PENDING:
                heapq.heappush(self._ready, (live.rank, live.id, t.index))

    # -- the state machine -----------------------------------------------------------

    def _set(self, job: LiveJob, task: LiveTask, new: TaskStatus) -> None:
        check_task(task.status, new)
        if task.held is not None and new is not T.PENDING and new is not T.RUNNING:
            self._cancel_held(task)  # paused or ended: it will not start soon
        LiveJob._count(job.counters, task.status, -1)
        LiveJob._count(job.counters, new, 1)
        # Routine steps at DEBUG (at INFO, three lines per task cost 4% of throughput);
        # anything else a task goes through (failures, retries, kills) at INFO.
        level = logging.DEBUG if new in _ROUTINE else logging.INFO
        if log.isEnabledFor(level):
            why = f" ({task.reason})" if task.reason and new not in _QUIET_REASON else ""
            log.log(level, "job %d task %s: %s -> %s%s", job.id, task.name, task.status, new, why)
        if self.events.active:
            snapshot = task.row(job.id)
            snapshot["status"] = new.value
            snapshot["name"] = task.name
            snapshot["spec_variables"] = task.spec.get("variables")
            self._pending_events.append(
                SchedulerEvent(
                    TASK_STATE_UPDATED,
                    task_event_name(task.status, new),
                    job.id,
                    job.owner,
                    job.static,
                    _NO_ROW,
                    snapshot,
                )
            )
        task.status = new
        self._mark(job, task)

    def _job_status(self, job: LiveJob, new: JobStatus) -> None:
        """The one place a job's status changes (ProActive's transitions, one event)."""
        check_job(job.status, new)
        log.info("job %d: %s -> %s", job.id, job.status, new)
        old, job.status = job.status, new
        self._dirty_jobs[job.id] = job
        self._flush_needed.set()
        if self.events.active:
            name = job_event_name(old, new, job.counters["faulty_tasks"])
            self._job_event(job, name)

    def _job_event(self, job: LiveJob, name: str) -> None:
        self._pending_events.append(
            SchedulerEvent(JOB_STATE_UPDATED, name, job.id, job.owner, job.static, job.row())
        )

    def _submitted_event(self, job: LiveJob) -> SchedulerEvent:
        rows = []
        for task in job.tasks:
            row = task.row(job.id)
            row["name"] = task.name
            row["spec"] = task.spec
            row["on_task_error"] = task.on_error
            rows.append(row)
        return SchedulerEvent(
            JOB_SUBMITTED, JOB_SUBMITTED, job.id, job.owner, job.static, job.row(), tasks=rows
        )

    def _mark(self, job: LiveJob, task: LiveTask) -> None:
        self._dirty_tasks[(job.id, task.index)] = (job, task)
        self._dirty_jobs[job.id] = job
        self._flush_needed.set()

    def _make_eligible(self, job: LiveJob, task: LiveTask) -> None:
        if job.paused:
            self._set(job, task, T.PAUSED)
        else:
            self._set(job, task, T.PENDING)
            heapq.heappush(self._ready, (job.rank, job.id, task.index))

    def _dispatch(self) -> None:
        """Start ready tasks while worker slots are free."""
        if not self._connected.is_set() or self._closing:
            return
        touched: set[LiveJob] = set()
        while self._running < self.nb_of_workers and self._ready:
            rank, job_id, index = heapq.heappop(self._ready)
            job = self._jobs.get(job_id)
            if job is None:
                continue
            task = job.tasks[index]
            if task.status is not T.PENDING or task.queued or rank != job.rank:
                continue  # stale entry (see change_priority), or already handed over
            if job.paused:
                self._set(job, task, T.PAUSED)
                continue
            task.attempts += 1
            task.exit_code = task.signal = task.pid = task.pid_start_time = None
            task.reason = None
            task.kill_reason = None
            task.scheduled_time = now_ms()
            if self._queues():
                # Into the engine's queue: PENDING until it starts there (`_started`),
                # holding its worker slot meanwhile.
                task.queued = True
                self._mark(job, task)
            else:
                self._set(job, task, T.RUNNING)
                if job.start_time is None:
                    job.start_time = task.scheduled_time
            self._running += 1
            self.max_running_seen = max(self.max_running_seen, self._running)
            self._spawn(job, task)
            if self.prespawn and task.children:
                # Next turn: the starts queued now go out first (one write for all).
                asyncio.get_running_loop().call_soon(self._prespawn_children, job, task)
            touched.add(job)
        for job in touched:
            self._update_job(job)

    def _prepare(self, job: LiveJob, task: LiveTask, attempt: int) -> TaskSpec | str:
        """The spec of an execution, its files written; or why it cannot start."""
        try:
            user = task_account(
                job.owner, bool(task.spec.get("run_as_me")), self.task_user, self.run_as_me_map
            )
        except NoAccount as exc:
            return f"could not start: {exc}"
        try:
            spec, files = build_spec(
                task_dir=self.files.directory(job.id, task.index, attempt),
                base_env=self._base_env,
                job_id=job.id,
                job_name=job.name,
                owner=job.owner,
                job_variables=job.variables,
                task_index=task.index,
                task_name=task.name,
                attempt=attempt,
                spec=task.spec,
                kill_grace=self.kill_grace,
                user=user,
            )
            self.files.prepare(spec.task_dir, files)
        except OSError as exc:
            return f"could not start: preparing the task: {exc}"
        return spec

    def _spawn(self, job: LiveJob, task: LiveTask) -> None:
        key = execution_key(job.id, task.index, task.attempts)
        self._by_key[key] = (job, task)
        backend = self._backend
        assert backend is not None
        start: Awaitable[object] | None = None
        if task.held == key:
            # Spawned ahead: all that is left is to let it run.
            task.held = None
            del self._held[key]
            start = backend.start(key)
        else:
            if task.held is not None:  # pragma: no cover - keys follow attempts
                self._cancel_held(task)
            spec = self._prepare(job, task, task.attempts)
            if isinstance(spec, str):
                self._execution_ended(key, None, spec)
                return
            stale = self._stale.get(key)
            if stale is None:
                start = backend.spawn(spec, start=True)
            else:
                self._respawning.add(key)
                start = self._spawn_after(backend, stale, spec)
        if not task.queued:
            self._arm_walltime(task, key)

        def spawned(fut: asyncio.Future[object]) -> None:
            exc = None if fut.cancelled() else fut.exception()
            if exc is None or isinstance(exc, Unreachable | OSError | EOFError):
                return  # it may have started: reconciliation after reconnecting decides
            if isinstance(exc, BackendError):  # refused: it never ran
                self._execution_ended(key, None, f"could not start: {exc}")
                self._settle({job})
            else:
                log.error("spawning %s failed", key, exc_info=exc)

        asyncio.ensure_future(start).add_done_callback(spawned)

    async def _spawn_after(
        self, backend: ExecutionBackend, stale: asyncio.Event, spec: TaskSpec
    ) -> object:
        """Spawn a key whose held execution was given up, once that one has exited (its
        monitor's report must not be taken for the new one's) and been released."""
        await stale.wait()
        await backend.release(spec.key)
        self._stale.pop(spec.key, None)
        self._respawning.discard(spec.key)
        return await backend.spawn(spec, start=True)

    async def _forget_stale(self, key: str) -> None:
        """A given-up held execution has exited: release it, then forget its key."""
        backend = self._backend
        if backend is not None:
            with contextlib.suppress(BackendError, OSError, ConnectionError, EOFError):
                await backend.release(key)
        if key not in self._respawning:
            self._stale.pop(key, None)

    def _prespawn_children(self, job: LiveJob, parent: LiveTask) -> None:
        """`parent` starts: spawn held the children it is the last one to wait for."""
        if parent.status is T.RUNNING:
            for index in parent.children:
                if len(self._held) >= self.prespawn:
                    return
                self._prespawn(job, job.tasks[index])

    def _prespawn(self, job: LiveJob, child: LiveTask) -> None:
        """Spawn `child` held if its one unfinished parent runs (the caller knows it)."""
        backend = self._backend
        if backend is None or self._closing or len(self._held) >= self.prespawn:
            return
        if child.held is not None or child.status is not T.SUBMITTED:
            return
        if child.waiting_parents != 1 or job.paused or job.status in JOB_TERMINAL:
            return
        key = execution_key(job.id, child.index, child.attempts + 1)
        if key in self._stale:
            return
        spec = self._prepare(job, child, child.attempts + 1)
        if isinstance(spec, str):
            return  # its own spawn will say why
        child.held = key
        self._held[key] = (job, child)

        def refused(fut: asyncio.Future[object]) -> None:
            exc = None if fut.cancelled() else fut.exception()
            if isinstance(exc, BackendError) and not isinstance(exc, Unreachable):
                entry = self._held.pop(key, None)
                if entry is not None:  # it will be spawned the usual way
                    entry[1].held = None

        asyncio.ensure_future(backend.spawn(spec, start=False)).add_done_callback(refused)

    def _cancel_held(self, task: LiveTask) -> None:
        """Give up a held execution: it exits without running its command."""
        key = task.held
        assert key is not None
        task.held = None
        self._held.pop(key, None)
        self._stale.setdefault(key, asyncio.Event())
        self._spawn_task(self._kill(key))

    def _arm_walltime(self, task: LiveTask, key: str) -> None:
        """The walltime counts from the task's start (a queued task's, once it starts)."""
        walltime = task.spec.get("walltime")
        if walltime:
            task.timer = asyncio.get_running_loop().call_later(
                float(walltime), self._walltime_expired, key
            )

    def _queues(self) -> bool:
        return self._backend is not None and self._backend.queues

    def _started(self, job: LiveJob, task: LiveTask, at: float) -> None:
        """A queued execution started in its engine: PENDING -> RUNNING, through the
        table like any change (committed, then published). A hold that came too late
        (it started anyway) takes it through PENDING first."""
        task.queued = False
        if task.status is T.PAUSED:
            self._set(job, task, T.PENDING)
        task.start_time = int(at * 1000)
        self._set(job, task, T.RUNNING)
        if job.start_time is None:
            job.start_time = task.start_time
        # Now, not at the caller's settle: a task whose start and end are seen together
        # takes its job through RUNNING first (PENDING -> STALLED is no transition).
        self._update_job(job)
        self._arm_walltime(task, execution_key(job.id, task.index, task.attempts))

    async def _hold(self, keys: list[str], hold: bool) -> None:
        """Hold (or let go) queued executions in the backend, in one call."""
        if self._backend is not None:
            with contextlib.suppress(BackendError, OSError, ConnectionError, EOFError):
                if hold:
                    await self._backend.hold(*keys)
                else:
                    await self._backend.unhold(*keys)

    def _spawn_task(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        task.add_done_callback(_log_failure)

    def _walltime_expired(self, key: str) -> None:
        entry = self._by_key.get(key)
        if entry is None:
            return
        job, task = entry
        task.timer = None
        if task.status is T.RUNNING and task.kill_reason is None:
            task.kill_reason = "walltime"
            log.info("job %d task %s: walltime exceeded, killing", job.id, task.name)
            self._spawn_task(self._kill(key))

    async def _kill(self, key: str) -> None:
        if self._backend is not None:
            with contextlib.suppress(BackendError, OSError, ConnectionError, EOFError):
                await self._backend.kill(key, self.kill_grace)

    # -- events --------------------------------------------------------------------------

    async def _consume_events(self) -> None:
        while not self._closing:
            backend = self._backend
            assert backend is not None
            try:
                async for event in backend.events():
                    self._on_event(event)
            except (OSError, EOFError, ConnectionError, BackendError) as exc:
                log.warning("lost the backend connection: %s", exc)
            if self._closing:
                return
            self._connected.clear()
            with contextlib.suppress(Exception):
                await backend.close()
            await self._connect()
            self._dispatch()

    def _on_event(self, event: Event) -> None:
        if not isinstance(event, Started):
            held = self._held.pop(event.key, None)
            if held is not None:
                # Ended before it was started (its monitor could not set it up, or
                # died): the task will be spawned the usual way, under this key.
                held[1].held = None
                self._stale.setdefault(event.key, asyncio.Event())
            stale = self._stale.get(event.key)
            if stale is not None and not stale.is_set():
                stale.set()  # gone: its key may be spawned again (released first)
                self._spawn_task(self._forget_stale(event.key))
                return
        if isinstance(event, Started):
            entry = self._by_key.get(event.key)
            if entry is not None:
                job, task = entry
                task.pid, task.pid_start_time = event.pid, event.pid_start_time
                if task.queued:
                    self._started(job, task, event.time)
                    self._settle({job})
                    return
                task.start_time = int(event.time * 1000)
                self._mark(job, task)
                log.debug("job %d task %s: started, pid %d", job.id, task.name, event.pid)
            return
        if isinstance(event, Exited):
            if event.pid is not None:  # it ended before its start was announced
                entry = self._by_key.get(event.key)
                if entry is not None:
                    _, task = entry
                    task.pid, task.pid_start_time = event.pid, event.pid_start_time
            touched = self._execution_ended(event.key, event.status, None)
        elif isinstance(event, Lost):
            touched = self._execution_ended(event.key, None, f"lost: {event.reason}", lost=True)
        else:  # pragma: no cover - exhaustive
            return
        if touched is not None:
            self._settle({touched})

    def _execution_ended(
        self, key: str, status: ExitStatus | None, reason: str | None, *, lost: bool = False
    ) -> LiveJob | None:
        """One execution is over: record it, then apply the error policy."""
        entry = self._by_key.pop(key, None)
        self._release_after_flush.append(key)
        self._flush_needed.set()
        if key in self._dying:  # recorded when killed: only its worker slot was left
            self._dying.discard(key)
            self._running -= 1
            return entry[0] if entry is not None else None
        if entry is None:
            return None
        job, task = entry
        if task.queued:  # it ended before its start was seen: it started first
            self._started(job, task, status.start_time if status else time.time())
        if task.status is not T.RUNNING:
            return None
        task.cancel_timer()
        self._running -= 1
        task.finished_time = now_ms()
        if status is not None:
            task.exit_code, task.signal = status.exit_code, status.signal
            task.start_time = task.start_time or int(status.start_time * 1000)
            task.finished_time = int(status.end_time * 1000)
        ok = status is not None and status.ok
        task.reason = reason or self._describe(job, task, status)
        kill_reason, task.kill_reason = task.kill_reason, None
        if kill_reason == "job" or job.status in JOB_TERMINAL:
            self._set(job, task, T.ABORTED)
        elif kill_reason == "task":
            task.reason = "killed by user" + _leftovers(status)
            self._fail(job, task, retry=False)
        elif kill_reason == "restart":
            task.reason = "restarted by user"
            self._fail(job, task, retry=True, delay=RESTART_DELAY_S)
        elif kill_reason == "walltime":
            task.reason = f"walltime of {task.spec.get('walltime')} s exceeded" + _leftovers(status)
            self._fail(job, task, retry=True)
        elif ok:
            self._set(job, task, T.FINISHED)
            self._release_children(job, task)
        else:
            self._fail(job, task, retry=True, lost=lost)
        if self._held and task.status not in TASK_WAITING_TO_RETRY:
            for index in task.children:
                child = job.tasks[index]
                if child.held is not None and child.status is T.SUBMITTED:
                    self._cancel_held(child)  # its parent failed and will not rerun
        return job

    def _describe(self, job: LiveJob, task: LiveTask, status: ExitStatus | None) -> str | None:
        if status is None:
            return None
        if status.error:
            return status.error
        left = _leftovers(status)
        if status.ok:
            return left[2:] or None
        if status.signal is None:
            how = f"exit code {status.exit_code}"
        else:
            core = " (core dumped)" if status.core_dumped else ""
            how = f"killed by signal {status.signal}{core}"
        if has_steps(task.spec):
            step = self.files.failed_step(job.id, task.index, task.attempts)
            if step:
                return f"{step} failed: {how}{left}"
        return how + left

    def _fail(
        self,
        job: LiveJob,
        task: LiveTask,
        *,
        retry: bool,
        lost: bool = False,
        delay: float | None = None,
    ) -> None:
        if retry and task.attempts < task.max_exec:
            self._set(job, task, T.WAITING_ON_FAILURE if lost else T.WAITING_ON_ERROR)
            if delay is None:
                configured = task.spec.get("task_retry_delay")
                delay = float(configured) if configured else proactive_retry_delay(task.attempts)
            self._schedule_retry(job, task, delay)
            return
        policy = task.on_error
        if policy == "cancelJob":
            self._set(job, task, T.FAULTY)
            self._end_job(job, J.CANCELED, f"aborted: job canceled (task {task.name} failed)")
        elif policy in ("suspendTask", "pauseJob"):
            self._set(job, task, T.IN_ERROR)
            task.in_error_time = job.in_error_time = now_ms()
            if policy == "pauseJob":
                self._pause(job)
        else:
            self._set(job, task, T.FAILED if lost else T.FAULTY)
            self._release_children(job, task)

    def _schedule_retry(self, job: LiveJob, task: LiveTask, delay: float) -> None:
        def retry() -> None:
            task.timer = None
            if task.status in TASK_WAITING_TO_RETRY:
                self._make_eligible(job, task)
                self._settle({job})

        task.cancel_timer()
        task.timer = asyncio.get_running_loop().call_later(delay, retry)

    def _release_children(self, job: LiveJob, task: LiveTask) -> None:
        for index in task.children:
            child = job.tasks[index]
            child.waiting_parents -= 1
            if child.waiting_parents == 0 and child.status is T.SUBMITTED:
                self._make_eligible(job, child)
            elif (
                child.waiting_parents == 1
                and self.prespawn
                and child.held is None
                and child.status is T.SUBMITTED
                and any(job.tasks[p].status is T.RUNNING for p in child.parents)
            ):
                # Its one parent left is already running (a join): spawn it ahead now.
                self._prespawn(job, child)

    def _end_job(self, job: LiveJob, final: JobStatus, why: str) -> None:
        """Kill, cancel: committed at once, in ProActive's order: the job's final status,
        then its running tasks ABORTED (their processes get TERM, the grace, KILL, and
        keep their worker slots until they are gone), then the others NOT_STARTED or
        NOT_RESTARTED."""
        job.finished_time = now_ms()
        self._job_status(job, final)
        self._ended(job)
        for task in job.tasks:
            task.cancel_timer()
        for task in job.tasks:
            if task.status is T.RUNNING:
                self._abandon(job, task, why)
                self._set(job, task, T.ABORTED)
            elif task.queued:  # never started: cancelled in the engine's queue
                key = execution_key(job.id, task.index, task.attempts)
                task.queued = False
                task.attempts -= 1  # that execution never happened
                self._dying.add(key)
                self._spawn_task(self._kill(key))
        for task in job.tasks:
            if task.status in TASK_ON_JOB_END:
                self._set(job, task, TASK_ON_JOB_END[task.status])

    def _abandon(self, job: LiveJob, task: LiveTask, why: str) -> None:
        """Record a running task as ended now (`why`) and kill its process meanwhile."""
        key = execution_key(job.id, task.index, task.attempts)
        task.cancel_timer()
        task.kill_reason = None
        task.reason = why
        task.finished_time = now_ms()
        self._dying.add(key)
        self._spawn_task(self._kill(key))

    def _pause(self, job: LiveJob) -> None:
        job.paused = True
        held = []
        for task in job.tasks:
            if task.status in TASK_PAUSABLE:
                task.cancel_timer()
                self._set(job, task, T.PAUSED)
                if task.queued:  # waiting in the engine's queue: held there
                    held.append(execution_key(job.id, task.index, task.attempts))
        if held:
            self._spawn_task(self._hold(held, True))

    def _update_job(self, job: LiveJob) -> None:
        """Derive the job's status from its counters (the rule is `states.job_status`)."""
        if job.status in JOB_TERMINAL:
            return
        new = job_status(
            job.counters, len(job.tasks), paused=job.paused, started=job.start_time is not None
        )
        if new is J.FINISHED:
            job.finished_time = now_ms()
        if new is not job.status:
            self._job_status(job, new)
            if new in JOB_TERMINAL:
                self._ended(job)

    def _ended(self, job: LiveJob) -> None:
        waiter = self._end_waiters.pop(job.id, None)
        if waiter is not None:
            waiter.set()

    def _settle(self, jobs: set[LiveJob]) -> None:
        self._dispatch()
        for job in jobs:
            self._update_job(job)

    # -- persistence -------------------------------------------------------------------

    async def _flusher(self) -> None:
        """Commit at once when idle; under load, one commit per commit's duration.

        No timer: a change waits only for the commit in flight (if any), and everything
        that changed meanwhile goes in the next one. A fixed 20 ms window used to make a
        one-task job's FINISHED reach readers ~10 ms late on average, idle or not.
        """
        while True:
            await self._flush_needed.wait()
            self._flush_needed.clear()
            try:
                await self._write()
            except Exception:
                log.exception("writing status changes failed; retrying")
                self._flush_needed.set()
                await asyncio.sleep(0.5)

    async def _write(self) -> None:
        self._writing = True
        try:
            await self._write_batch()
        finally:
            self._writing = False
        async with self._flushed:
            self._flush_generation += 1
            self._flushed.notify_all()

    async def _write_batch(self) -> None:
        tasks, self._dirty_tasks = self._dirty_tasks, {}
        jobs, self._dirty_jobs = self._dirty_jobs, {}
        release, self._release_after_flush = self._release_after_flush, []
        events, self._pending_events = self._pending_events, []
        try:
            if tasks or jobs:
                task_rows = [t.row(j.id) for j, t in tasks.values()]
                job_rows = [j.row() for j in jobs.values()]
                await jobstore.write_batch(self.store, task_rows, job_rows)
        except BaseException:
            # Keep them for the next try: nothing is lost, nothing released early.
            for k, v in tasks.items():
                self._dirty_tasks.setdefault(k, v)
            for jk, jv in jobs.items():
                self._dirty_jobs.setdefault(jk, jv)
            self._release_after_flush[:0] = release
            self._pending_events[:0] = events
            raise
        if events:  # committed: now it may be told
            self.events.publish(events)
        for job in jobs.values():
            # Forget a finished job only once its final rows are committed: changes made
            # while this batch was being written are still dirty, for the next one.
            if (
                job.status in JOB_TERMINAL
                and job.id not in self._dirty_jobs
                and not any(t.status is T.RUNNING for t in job.tasks)
            ):
                self._jobs.pop(job.id, None)
        if release and self._backend is not None:
            backend = self._backend

            async def release_all() -> None:
                with contextlib.suppress(BackendError, OSError, ConnectionError, EOFError):
                    await backend.release(*release)

            self._spawn_task(release_all())

    async def flush(self) -> None:
        """Wait until everything changed so far is committed."""
        dirty = bool(self._dirty_tasks or self._dirty_jobs or self._release_after_flush)
        if not dirty and not self._writing:
            return
        async with self._flushed:
            # A write in progress took its snapshot before our changes: wait for the next.
            target = self._flush_generation + (2 if self._writing and dirty else 1)
            self._flush_needed.set()
            await self._flushed.wait_for(lambda: self._flush_generation >= target)

    # -- operations ------------------------------------------------------------------

    def _live(self, job_id: int) -> LiveJob:
        job = self._jobs.get(job_id)
        if job is None or job.status in JOB_TERMINAL:
            raise JobAlreadyFinished(f"job {job_id} is not alive")
        return job

    def _task(self, job: LiveJob, name: str) -> LiveTask:
        for task in job.tasks:
            if task.name == name:
                return task
        raise UnknownTask(f"job {job.id} has no task named {name!r}")

    async def kill_job(self, job_id: int) -> bool:
        """False when the job had already ended (ProActive's answer)."""
        job = self._jobs.get(job_id)
        if job is None or job.status in JOB_TERMINAL:
            return False
        self._end_job(job, J.KILLED, "killed by user (job killed)")
        self._settle({job})
        await self.flush()
        return True

    async def pause_job(self, job_id: int) -> bool:
        job = self._live(job_id)
        self._pause(job)
        self._settle({job})
        await self.flush()
        return True

    async def resume_job(self, job_id: int) -> bool:
        job = self._live(job_id)
        if not job.paused:
            return False
        job.paused = False
        held = []
        for task in job.tasks:
            if task.status is T.PAUSED:
                if task.queued:
                    self._set(job, task, T.PENDING)
                    held.append(execution_key(job.id, task.index, task.attempts))
                elif task.waiting_parents == 0:
                    self._set(job, task, T.PENDING)
                    heapq.heappush(self._ready, (job.rank, job.id, task.index))
                else:
                    self._set(job, task, T.SUBMITTED)
        if held:
            self._spawn_task(self._hold(held, False))
        self._settle({job})
        await self.flush()
        return True

    async def change_priority(self, job_id: int, priority: str) -> None:
        """Give a live job another priority (ProActive's names, any case).

        Its PENDING tasks are pushed again with the new rank; the entries pushed before
        stay in the heap and are skipped by `_dispatch` when popped:
        - a task dispatched through its new entry is RUNNING (or later terminal) by the
          time the old one pops, so the status check skips it;
        - an old entry whose rank is no longer the job's is skipped by the rank check
          even while the task is still PENDING. Without it, lowering a priority would not
          work: the old, better-ranked entry would pop first and start the task early.
          Every PENDING task has an entry at the job's current rank (pushed here, or by
          `_make_eligible`/`resume_job`/`restart_in_error_task` after the change), so
          skipping the others loses nothing.
        If the rank goes A -> B -> A, two entries at rank A exist: the first starts the
        task, the second finds it no longer PENDING (or, after a retry, starts it at the
        same rank the fresh entry would have).
        """
        name = priority.lower()
        if name not in PRIORITY_RANK:
            raise ValueError(f"unknown priority {priority!r}")
        job = self._live(job_id)
        if name == job.priority:
            return
        log.info("job %d: priority %s -> %s", job.id, job.priority, name)
        job.priority = name
        self._dirty_jobs[job.id] = job
        self._flush_needed.set()
        if self.events.active:
            self._job_event(job, "JOB_CHANGE_PRIORITY")
        for task in job.tasks:
            if task.status is T.PENDING and not task.queued:
                heapq.heappush(self._ready, (job.rank, job.id, task.index))
        self._settle({job})
        await self.flush()

    async def kill_task(self, job_id: int, name: str) -> bool:
        job = self._live(job_id)
        task = self._task(job, name)
        if task.status is not T.RUNNING:
            raise StateConflict(f"task {name!r} is {task.status}, not RUNNING")
        # Recorded at once (no retry; the error policy applies), the process killed
        # meanwhile: the answer comes once the new state is committed.
        self._abandon(job, task, "killed by user")
        self._fail(job, task, retry=False)
        self._settle({job})
        await self.flush()
        return True

    async def restart_task(self, job_id: int, name: str) -> bool:
        """Kill a running task; true when it will run again, RESTART_DELAY_S later.

        ProActive's restartTask: the kill uses up the execution, so a task with none
        left is killed and not restarted (it ends through its error policy: FAULTY and
        its dependents run, IN_ERROR, or the job cancelled): false, as is a task that
        is not running (a no-op).
        """
        job = self._live(job_id)
        task = self._task(job, name)
        if task.status is not T.RUNNING:
            return False  # ProActive: a no-op when the task is not alive
        task.kill_reason = "restart"
        await self._kill(execution_key(job.id, task.index, task.attempts))
        return task.attempts < task.max_exec

    async def restart_in_error_task(self, job_id: int, name: str) -> bool:
        job = self._live(job_id)
        task = self._task(job, name)
        if task.status is not T.IN_ERROR:
            raise StateConflict(f"task {name!r} is {task.status}, not IN_ERROR")
        # A fresh budget of executions, as if the task had just been submitted.
        base = task.spec.get("base_max_number_of_execution") or task.max_exec
        task.spec["base_max_number_of_execution"] = base
        task.max_exec = task.attempts + int(base)
        task.in_error_time = None
        self._set(job, task, T.PENDING)
        heapq.heappush(self._ready, (job.rank, job.id, task.index))
        self._settle({job})
        await self.flush()
        return True

    async def finish_in_error_task(self, job_id: int, name: str) -> bool:
        job = self._live(job_id)
        task = self._task(job, name)
        if task.status is not T.IN_ERROR:
            raise StateConflict(f"task {name!r} is {task.status}, not IN_ERROR")
        self._set(job, task, T.FINISHED)
        self._release_children(job, task)
        self._settle({job})
        await self.flush()
        return True

    async def remove_job(self, job_id: int) -> bool:
        """Kill it first if alive (ProActive's behaviour), then delete rows and files."""
        job = self._jobs.get(job_id)
        if job is not None and job.status not in JOB_TERMINAL:
            self._end_job(job, J.KILLED, "killed by user (job removed)")
            self._settle({job})
        await self.flush()
        row = await jobstore.get_job(self.store, job_id)
        # Executions still dying keep their worker slots until their exits arrive (the
        # rows they would update are gone by then, harmlessly).
        self._jobs.pop(job_id, None)
        await jobstore.delete_job(self.store, job_id)
        await self.files.remove_job(job_id)
        if row is not None and self.events.active:
            self.events.publish(
                [
                    SchedulerEvent(
                        JOB_STATE_UPDATED,
                        "JOB_REMOVE_FINISHED",
                        job_id,
                        str(row["owner"]),
                        _static_columns(row),
                        dict(row),
                    )
                ]
            )
        self._dispatch()
        return True

    # -- introspection (tests, benchmarks, status endpoint) ---------------------------

    @property
    def running(self) -> int:
        return self._running

    @property
    def revision(self) -> int:
        """Grows with every committed batch of changes (ProActive's state revision)."""
        return self._flush_generation

    def is_live(self, job_id: int) -> bool:
        return job_id in self._jobs

    def _dying_of(self, job_id: int) -> bool:
        """Whether a killed execution of the job still has its process."""
        prefix = f"{job_id}."
        return any(key.startswith(prefix) for key in self._dying)

    async def wait_job(self, job_id: int, timeout: float = 60.0) -> str:
        """Wait until the job has ended, its final state is committed and its killed
        processes are gone; its status.

        (Tests and benchmarks.) The end is signalled, not polled for, so the time this
        returns at is the job's own; only a killed job whose processes are still dying
        (already recorded ABORTED) is polled.
        """
        deadline = time.monotonic() + timeout
        while True:
            job = self._jobs.get(job_id)
            if job is not None and job.status not in JOB_TERMINAL:
                waiter = self._end_waiters.setdefault(job_id, asyncio.Event())
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(waiter.wait(), max(0.0, deadline - time.monotonic()))
            await self.flush()
            row = await jobstore.get_job(self.store, job_id)
            if (
                row is not None
                and J(row["status"]) in JOB_TERMINAL
                and not self.is_live(job_id)
                and not self._dying_of(job_id)
            ):
                return str(row["status"])
            if time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} still {row and row['status']}")
            await asyncio.sleep(0.02)


#: A task event's job part: its static columns say all TaskInfoData needs.
_NO_ROW: Mapping[str, Any] = {}

_STATIC_COLUMNS = (
    "id",
    "owner",
    "name",
    "project_name",
    "description",
    "variables",
    "generic_information",
    "submitted_time",
    "total_tasks",
)


def _static_columns(row: Row) -> dict[str, Any]:
    static = {c: row[c] for c in _STATIC_COLUMNS}
    for name in ("variables", "generic_information"):  # decoded once, not per event
        if isinstance(static[name], str):
            static[name] = json.loads(static[name] or "{}")
    return static


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task


def _log_failure(task: asyncio.Future[Any]) -> None:
    if task.cancelled():
        return
    exc = task.exception()
    if exc is not None:
        log.error("scheduler background step failed", exc_info=exc)
