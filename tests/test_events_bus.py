"""The event bus inside the scheduler: one event per change, published after commit,
routed by owner, bounded per subscriber. Real scheduler, hypervisor and SQLite file."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from harness import Hypervisor, make_scheduler
from wfxml import job_xml

from simple_scheduler.scheduler.core import Scheduler
from simple_scheduler.scheduler.events import EventBus, SchedulerEvent, Subscription
from simple_scheduler.states import JOB_TERMINAL
from simple_scheduler.store import jobstore
from simple_scheduler.workflow import parse_workflow


@pytest.fixture
async def sched(store: Any, hypervisor: Hypervisor) -> AsyncIterator[Scheduler]:
    s = make_scheduler(store, hypervisor, workers=2)
    assert isinstance(s, Scheduler)
    await s.start()
    try:
        yield s
    finally:
        await s.stop()


async def until_job_ends(sub: Subscription, job_id: int, check: Any) -> list[SchedulerEvent]:
    """Events of `job_id` until its end, calling `check(event)` as each arrives."""
    seen: list[SchedulerEvent] = []
    while True:
        assert await sub.wait(30), "no event within 30 s"
        for event in sub.take():
            if event.job_id != job_id:
                continue
            await check(event)
            seen.append(event)
            if event.task is None and event.job.get("status") in JOB_TERMINAL:
                return seen


async def test_events_follow_commits_one_per_change(sched: Scheduler) -> None:
    sub = sched.events.subscribe("alice")
    xml = job_xml([{"name": "a", "bash": "true"}, {"name": "b", "depends": ["a"]}])
    job_id = await sched.submit(parse_workflow(xml), "alice", xml.decode())

    async def committed(event: SchedulerEvent) -> None:
        # Published after its batch committed: the database already says at least this.
        if event.task is not None:
            row = await jobstore.get_task_by_index(sched.store, job_id, event.task["task_index"])
            assert row is not None
            if event.task["status"] == "FINISHED":
                assert row["status"] == "FINISHED"
        elif event.action == "JOB_STATE_UPDATED" and event.job["status"] in JOB_TERMINAL:
            row = await jobstore.get_job(sched.store, job_id)
            assert row is not None and row["status"] == event.job["status"]

    events = await until_job_ends(sub, job_id, committed)
    assert events[0].action == "JOB_SUBMITTED"
    # a's first status (PENDING) is in the submission's event, not one of its own.
    assert events[0].tasks is not None
    assert [(t["name"], t["status"]) for t in events[0].tasks] == [
        ("a", "PENDING"),
        ("b", "SUBMITTED"),
    ]
    statuses = [(e.task["name"], e.task["status"]) for e in events if e.task is not None]
    assert statuses == [
        ("a", "RUNNING"),
        ("a", "FINISHED"),
        ("b", "PENDING"),
        ("b", "RUNNING"),
        ("b", "FINISHED"),
    ]
    # Nobody else's subscription heard of it.
    other = sched.events.subscribe("bob")
    xml2 = job_xml([{"name": "c", "bash": "true"}])
    second = await sched.submit(parse_workflow(xml2), "alice", xml2.decode())
    await until_job_ends(sub, second, lambda e: _noop())
    assert other.take() == []


async def _noop() -> None:
    return None


def _event(owner: str, name: str = "TASK_PROGRESS") -> SchedulerEvent:
    return SchedulerEvent("TASK_STATE_UPDATED", name, 1, owner, {}, {}, {})


def test_bus_routes_by_owner_filters_names_and_bounds_queues() -> None:
    bus = EventBus(max_queued=3)
    alice = bus.subscribe("alice")
    admin = bus.subscribe(None, ["TASK_PENDING_TO_RUNNING"])
    assert bus.active and bus.subscribers == 2
    bus.publish([_event("alice"), _event("bob", "TASK_PENDING_TO_RUNNING")])
    assert [e.owner for e in alice.take()] == ["alice"]
    assert [e.owner for e in admin.take()] == ["bob"]
    # A subscriber that does not keep up is closed, its queue dropped, the others served.
    bus.publish([_event("alice") for _ in range(4)])
    assert alice.closed and "too slow" in (alice.closed_because or "")
    assert alice.take() == [] and bus.subscribers == 1
    quiet = bus.subscribe("alice", session="s1")
    assert bus.close_session("s1", "logged out") == 1 and quiet.closed
    bus.close_all("server stopping")
    assert admin.closed and not bus.active
