"""Every state machine of the scheduler, each as one table (h11's `_state.py` style).

- Job and task statuses, with ProActive's names, and their legal transitions.
- The named groups of statuses the code asks about (never an inline list elsewhere).
- The job counters a task counts in, and the rule deriving a job's status from them.
- An execution's states as the hypervisor (or any backend) tracks them.
- A server's role on a shared PostgreSQL store (leader, standby).

This module depends on nothing else in the package (supervisor's `states.py` rule), so
everything may import it. An illegal transition is a bug in the caller: it raises.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from enum import StrEnum
from typing import Literal


class TaskStatus(StrEnum):
    #: created; dependencies not yet satisfied
    SUBMITTED = "SUBMITTED"
    #: eligible, waiting for a worker slot
    PENDING = "PENDING"
    #: the job is paused
    PAUSED = "PAUSED"
    RUNNING = "RUNNING"
    #: failed with executions left; waiting for the retry delay
    WAITING_ON_ERROR = "WAITING_ON_ERROR"
    #: its execution was lost (the monitor vanished); it will be retried
    WAITING_ON_FAILURE = "WAITING_ON_FAILURE"
    #: suspended after an error (suspendTask / pauseJob): needs restart or finish
    IN_ERROR = "IN_ERROR"
    FINISHED = "FINISHED"
    #: failed with no executions left
    FAULTY = "FAULTY"
    #: lost with no executions left
    FAILED = "FAILED"
    #: was running when the job was killed or cancelled
    ABORTED = "ABORTED"
    #: never started because the job ended
    NOT_STARTED = "NOT_STARTED"
    #: was waiting to retry when the job ended
    NOT_RESTARTED = "NOT_RESTARTED"
    SKIPPED = "SKIPPED"


class JobStatus(StrEnum):
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    #: started, but no task is running right now
    STALLED = "STALLED"
    PAUSED = "PAUSED"
    IN_ERROR = "IN_ERROR"
    FINISHED = "FINISHED"
    CANCELED = "CANCELED"
    FAILED = "FAILED"
    KILLED = "KILLED"


T = TaskStatus
J = JobStatus

#: The transitions, one row per status. ProActive's SUBMITTED step after a retry delay or
#: a restart is folded into PENDING/SUBMITTED directly, depending on the dependencies.
TASK_TRANSITIONS: dict[TaskStatus, frozenset[TaskStatus]] = {
    T.SUBMITTED: frozenset({T.PENDING, T.PAUSED, T.NOT_STARTED, T.SKIPPED}),
    T.PENDING: frozenset({T.RUNNING, T.PAUSED, T.NOT_STARTED}),
    T.PAUSED: frozenset({T.SUBMITTED, T.PENDING, T.NOT_STARTED}),
    T.RUNNING: frozenset(
        {
            T.FINISHED,
            T.FAULTY,
            T.FAILED,
            T.WAITING_ON_ERROR,
            T.WAITING_ON_FAILURE,
            T.IN_ERROR,
            T.ABORTED,
        }
    ),
    T.WAITING_ON_ERROR: frozenset({T.PENDING, T.PAUSED, T.NOT_RESTARTED}),
    T.WAITING_ON_FAILURE: frozenset({T.PENDING, T.PAUSED, T.NOT_RESTARTED}),
    T.IN_ERROR: frozenset({T.PENDING, T.FINISHED, T.NOT_RESTARTED}),
    T.FINISHED: frozenset(),
    T.FAULTY: frozenset(),
    T.FAILED: frozenset(),
    T.ABORTED: frozenset(),
    T.NOT_STARTED: frozenset(),
    T.NOT_RESTARTED: frozenset(),
    T.SKIPPED: frozenset(),
}

_ALIVE_JOB_TARGETS = frozenset({J.CANCELED, J.FAILED, J.KILLED, J.FINISHED})

JOB_TRANSITIONS: dict[JobStatus, frozenset[JobStatus]] = {
    J.PENDING: frozenset({J.RUNNING, J.PAUSED, J.IN_ERROR}) | _ALIVE_JOB_TARGETS,
    J.RUNNING: frozenset({J.STALLED, J.PAUSED, J.IN_ERROR}) | _ALIVE_JOB_TARGETS,
    J.STALLED: frozenset({J.RUNNING, J.PAUSED, J.IN_ERROR}) | _ALIVE_JOB_TARGETS,
    J.PAUSED: frozenset({J.PENDING, J.RUNNING, J.STALLED, J.IN_ERROR}) | _ALIVE_JOB_TARGETS,
    J.IN_ERROR: frozenset({J.RUNNING, J.STALLED, J.PAUSED}) | _ALIVE_JOB_TARGETS,
    J.FINISHED: frozenset(),
    J.CANCELED: frozenset(),
    J.FAILED: frozenset(),
    J.KILLED: frozenset(),
}


def first_task_status(has_parents: bool) -> TaskStatus:
    """A new task's status, as submit stores it: PENDING (eligible) without parents.

    Stored so in the submission's own transaction: a 10,000-task job's first statuses
    cost no second write of 10,000 rows, and its JOB_SUBMITTED event carries them."""
    return T.SUBMITTED if has_parents else T.PENDING


#: ProActive's predefined sets (TaskStatus.java).
TASK_TERMINAL = frozenset(s for s, targets in TASK_TRANSITIONS.items() if not targets)
TASK_PENDING = frozenset({T.SUBMITTED, T.PENDING, T.PAUSED})
TASK_ERROR = frozenset({T.IN_ERROR, T.WAITING_ON_ERROR, T.WAITING_ON_FAILURE, T.FAILED, T.FAULTY})
#: A parent in one of these lets its children run (continueJobExecution semantics).
TASK_RELEASES_CHILDREN = frozenset({T.FINISHED, T.FAULTY, T.FAILED})
#: Failed with executions left: a timer makes it PENDING again after the retry delay.
TASK_WAITING_TO_RETRY = frozenset({T.WAITING_ON_ERROR, T.WAITING_ON_FAILURE})
#: What pausing a job moves to PAUSED: RUNNING tasks run on, IN_ERROR ones stay.
TASK_PAUSABLE = frozenset({T.SUBMITTED, T.PENDING}) | TASK_WAITING_TO_RETRY
#: Where a task that is neither running nor ended goes when its job is killed or
#: cancelled. A RUNNING task is killed instead, and becomes ABORTED when it has exited.
TASK_ON_JOB_END: dict[TaskStatus, TaskStatus] = {
    T.SUBMITTED: T.NOT_STARTED,
    T.PENDING: T.NOT_STARTED,
    T.PAUSED: T.NOT_STARTED,
    T.WAITING_ON_ERROR: T.NOT_RESTARTED,
    T.WAITING_ON_FAILURE: T.NOT_RESTARTED,
    T.IN_ERROR: T.NOT_RESTARTED,
}
JOB_TERMINAL = frozenset(s for s, targets in JOB_TRANSITIONS.items() if not targets)

#: The job's task counters (ProActive's JobInfo numbers), kept exact by the scheduler and
#: stored as columns of `jobs`.
JOB_COUNTERS = (
    "pending_tasks",
    "running_tasks",
    "finished_tasks",
    "faulty_tasks",
    "failed_tasks",
    "in_error_tasks",
)

#: The counters a task in each status counts in, one row per status: a status change
#: moves the task out of its old row's counters and into its new row's.
TASK_COUNTERS: dict[TaskStatus, tuple[str, ...]] = {
    T.SUBMITTED: ("pending_tasks",),
    T.PENDING: ("pending_tasks",),
    T.PAUSED: ("pending_tasks",),
    T.RUNNING: ("running_tasks",),
    T.WAITING_ON_ERROR: ("pending_tasks",),
    T.WAITING_ON_FAILURE: ("pending_tasks",),
    T.IN_ERROR: ("in_error_tasks",),
    T.FINISHED: ("finished_tasks",),
    T.FAULTY: ("finished_tasks", "faulty_tasks"),
    T.FAILED: ("finished_tasks", "failed_tasks"),
    T.ABORTED: ("finished_tasks",),
    T.NOT_STARTED: ("finished_tasks",),
    T.NOT_RESTARTED: ("finished_tasks",),
    T.SKIPPED: ("finished_tasks",),
}


def count_tasks(statuses: Iterable[TaskStatus]) -> dict[str, int]:
    """The job counters of tasks in `statuses` (a full recount; changes use the table)."""
    counts = dict.fromkeys(JOB_COUNTERS, 0)
    for status in statuses:
        for name in TASK_COUNTERS[status]:
            counts[name] += 1
    return counts


def job_status(
    counters: Mapping[str, int], total: int, *, paused: bool, started: bool
) -> JobStatus:
    """ProActive's rule: a live job's status from its task counters.

    `total` is its number of tasks, `paused` whether a user (or pauseJob) paused it,
    `started` whether any of its tasks was ever dispatched. The first rule that holds wins.
    Kill and cancel are decisions, not derived: they are set directly (`check_job`).
    """
    if counters["finished_tasks"] == total:
        return J.FINISHED
    if paused:
        return J.PAUSED
    if counters["in_error_tasks"] > 0:
        return J.IN_ERROR
    if counters["running_tasks"] > 0:
        return J.RUNNING
    if started:
        return J.STALLED
    return J.PENDING


#: An execution (one attempt of one task) as its backend tracks it: spawned (prepared,
#: maybe waiting to be released), running (its pid is known), exited (its status is
#: known), lost (its monitor vanished without one). The strings travel on the wire.
ExecutionState = Literal["spawned", "running", "exited", "lost"]

EXECUTION_TRANSITIONS: dict[ExecutionState, frozenset[ExecutionState]] = {
    # A short task may exit before its start is reported; a monitor may vanish any time.
    "spawned": frozenset({"running", "exited", "lost"}),
    "running": frozenset({"exited", "lost"}),
    "exited": frozenset(),
    "lost": frozenset(),
}
#: Not yet ended: a kill still has something to do.
EXECUTION_ALIVE: frozenset[ExecutionState] = frozenset(
    s for s, targets in EXECUTION_TRANSITIONS.items() if targets
)


#: A server's role on a shared PostgreSQL store (`leadership.py`). A standby serves reads
#: and waits for the leader lock; holding it, it recovers what the last leader left
#: (taking-over), then schedules (leader). Whoever holds the lock and loses it is fenced:
#: it exits, never to schedule beside a new leader. On SQLite a server leads from its start.
ServerRole = Literal["standby", "taking-over", "leader", "fenced"]

ROLE_TRANSITIONS: dict[ServerRole, frozenset[ServerRole]] = {
    "standby": frozenset({"taking-over"}),
    "taking-over": frozenset({"leader", "fenced"}),
    "leader": frozenset({"fenced"}),
    "fenced": frozenset(),
}


class IllegalTransition(RuntimeError):
    """A component tried a transition the table does not allow: a bug, never user input."""


def check_task(old: TaskStatus, new: TaskStatus) -> None:
    if new not in TASK_TRANSITIONS[old]:
        raise IllegalTransition(f"task status {old} -> {new} is not allowed")


def check_job(old: JobStatus, new: JobStatus) -> None:
    if new not in JOB_TRANSITIONS[old]:
        raise IllegalTransition(f"job status {old} -> {new} is not allowed")


def check_execution(old: ExecutionState, new: ExecutionState) -> None:
    if new not in EXECUTION_TRANSITIONS[old]:
        raise IllegalTransition(f"execution state {old} -> {new} is not allowed")


def check_role(old: ServerRole, new: ServerRole) -> None:
    if new not in ROLE_TRANSITIONS[old]:
        raise IllegalTransition(f"server role {old} -> {new} is not allowed")
