"""The state tables themselves: every allowed transition passes, every other one raises,
the groups and counters agree with the tables, and the job-status rule on task mixes."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping
from typing import TypeVar

import pytest

from simple_scheduler.hypervisor.records import Execution
from simple_scheduler.states import (
    EXECUTION_ALIVE,
    EXECUTION_TRANSITIONS,
    JOB_COUNTERS,
    JOB_TERMINAL,
    JOB_TRANSITIONS,
    ROLE_TRANSITIONS,
    TASK_COUNTERS,
    TASK_ON_JOB_END,
    TASK_PAUSABLE,
    TASK_PENDING,
    TASK_RELEASES_CHILDREN,
    TASK_TERMINAL,
    TASK_TRANSITIONS,
    TASK_WAITING_TO_RETRY,
    ExecutionState,
    IllegalTransition,
    JobStatus,
    ServerRole,
    TaskStatus,
    check_execution,
    check_job,
    check_role,
    check_task,
    count_tasks,
    job_status,
)

T = TaskStatus
J = JobStatus
S = TypeVar("S")


def _check_table(
    table: Mapping[S, frozenset[S]], states: list[S], check: Callable[[S, S], None]
) -> None:
    """Each pair of states: allowed by `check` exactly when the table lists it."""
    assert set(table) == set(states), "every state has a row"
    for old, new in itertools.product(states, repeat=2):
        if new in table[old]:
            check(old, new)
        else:
            with pytest.raises(IllegalTransition):
                check(old, new)


def test_task_transitions() -> None:
    _check_table(TASK_TRANSITIONS, list(TaskStatus), check_task)


def test_job_transitions() -> None:
    _check_table(JOB_TRANSITIONS, list(JobStatus), check_job)


def test_execution_transitions() -> None:
    states: list[ExecutionState] = ["spawned", "running", "exited", "lost"]
    _check_table(EXECUTION_TRANSITIONS, states, check_execution)
    assert frozenset({"spawned", "running"}) == EXECUTION_ALIVE


def test_server_role_transitions() -> None:
    roles: list[ServerRole] = ["standby", "taking-over", "leader", "fenced"]
    _check_table(ROLE_TRANSITIONS, roles, check_role)


def test_the_hypervisor_record_moves_through_the_table() -> None:
    ex = Execution("1.0.1", "/nonexistent")
    assert ex.record().state == "spawned"
    ex.move("running")
    ex.move("exited")
    with pytest.raises(IllegalTransition):
        ex.move("running")
    with pytest.raises(IllegalTransition):
        ex.move("lost")
    assert ex.state == "exited"
    short = Execution("1.0.2", "/nonexistent")
    short.move("exited")  # ended before its start was reported
    lost = Execution("1.0.3", "/nonexistent")
    lost.move("lost")
    with pytest.raises(IllegalTransition):
        lost.move("exited")


def test_terminal_groups_are_the_rows_without_exits() -> None:
    assert {T.FINISHED, T.FAULTY, T.FAILED, T.ABORTED, T.NOT_STARTED} <= TASK_TERMINAL
    assert {T.NOT_RESTARTED, T.SKIPPED} <= TASK_TERMINAL
    assert not TASK_TERMINAL & {T.RUNNING, T.IN_ERROR, *TASK_PENDING, *TASK_WAITING_TO_RETRY}
    assert {J.FINISHED, J.CANCELED, J.FAILED, J.KILLED} == JOB_TERMINAL
    assert TASK_RELEASES_CHILDREN <= TASK_TERMINAL


def test_group_moves_are_legal_transitions() -> None:
    """What the scheduler does with each group is allowed by the table."""
    for status, target in TASK_ON_JOB_END.items():
        check_task(status, target)
    assert set(TASK_ON_JOB_END) | {T.RUNNING} | TASK_TERMINAL == set(TaskStatus)
    for status in TASK_PAUSABLE:
        check_task(status, T.PAUSED)
    for status in TASK_WAITING_TO_RETRY:
        check_task(status, T.PENDING)
    assert T.RUNNING not in TASK_PAUSABLE and T.IN_ERROR not in TASK_PAUSABLE


def test_every_task_counts_in_exactly_one_of_the_main_counters() -> None:
    main = ("pending_tasks", "running_tasks", "in_error_tasks", "finished_tasks")
    assert set(TASK_COUNTERS) == set(TaskStatus)
    for status, names in TASK_COUNTERS.items():
        assert set(names) <= set(JOB_COUNTERS)
        assert sum(name in names for name in main) == 1, status
        assert ("finished_tasks" in names) == (status in TASK_TERMINAL), status
    assert TASK_COUNTERS[T.FAULTY] == ("finished_tasks", "faulty_tasks")
    assert TASK_COUNTERS[T.FAILED] == ("finished_tasks", "failed_tasks")
    assert TASK_COUNTERS[T.WAITING_ON_FAILURE] == ("pending_tasks",)


def test_count_tasks() -> None:
    counts = count_tasks([T.SUBMITTED, T.RUNNING, T.FAULTY, T.FAILED, T.IN_ERROR, T.PAUSED])
    assert counts == {
        "pending_tasks": 2,
        "running_tasks": 1,
        "finished_tasks": 2,
        "faulty_tasks": 1,
        "failed_tasks": 1,
        "in_error_tasks": 1,
    }


@pytest.mark.parametrize(
    ("tasks", "paused", "started", "expected"),
    [
        ([T.SUBMITTED, T.SUBMITTED], False, False, J.PENDING),
        ([T.PENDING, T.SUBMITTED], False, False, J.PENDING),
        ([T.RUNNING, T.SUBMITTED], False, True, J.RUNNING),
        ([T.FINISHED, T.PENDING], False, True, J.STALLED),
        ([T.FINISHED, T.WAITING_ON_ERROR], False, True, J.STALLED),
        ([T.IN_ERROR, T.RUNNING], False, True, J.IN_ERROR),
        ([T.IN_ERROR, T.PAUSED], True, True, J.PAUSED),
        ([T.RUNNING, T.PAUSED], True, True, J.PAUSED),
        ([T.FINISHED, T.FAULTY, T.SKIPPED], False, True, J.FINISHED),
        # Every task ended: finished even when paused (pauseJob on the last task).
        ([T.FINISHED, T.NOT_RESTARTED], True, True, J.FINISHED),
    ],
)
def test_job_status_from_task_mixes(
    tasks: list[TaskStatus], paused: bool, started: bool, expected: JobStatus
) -> None:
    assert job_status(count_tasks(tasks), len(tasks), paused=paused, started=started) is expected
