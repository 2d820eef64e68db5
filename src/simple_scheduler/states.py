"""Job and task statuses, with ProActive's names, and the one table of legal transitions.

This module depends on nothing else in the package (supervisor's `states.py` rule), so
everything may import it. An illegal transition is a bug in the caller: it raises.
"""

from __future__ import annotations

from enum import StrEnum


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

#: ProActive's predefined sets (TaskStatus.java).
TASK_TERMINAL = frozenset(s for s, targets in TASK_TRANSITIONS.items() if not targets)
TASK_PENDING = frozenset({T.SUBMITTED, T.PENDING, T.PAUSED})
TASK_ERROR = frozenset({T.IN_ERROR, T.WAITING_ON_ERROR, T.WAITING_ON_FAILURE, T.FAILED, T.FAULTY})
#: A parent in one of these lets its children run (continueJobExecution semantics).
TASK_RELEASES_CHILDREN = frozenset({T.FINISHED, T.FAULTY, T.FAILED})
JOB_TERMINAL = frozenset(s for s, targets in JOB_TRANSITIONS.items() if not targets)


class IllegalTransition(RuntimeError):
    """A component tried a transition the table does not allow: a bug, never user input."""


def check_task(old: TaskStatus, new: TaskStatus) -> None:
    if new not in TASK_TRANSITIONS[old]:
        raise IllegalTransition(f"task status {old} -> {new} is not allowed")


def check_job(old: JobStatus, new: JobStatus) -> None:
    if new not in JOB_TRANSITIONS[old]:
        raise IllegalTransition(f"job status {old} -> {new} is not allowed")
