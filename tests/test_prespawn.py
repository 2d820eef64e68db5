"""Children spawned ahead (issue 13): when a task's last parent starts, the child's
execution is spawned held (monitor forked, files open, the command blocked before exec)
and only started when the parent has ended well; otherwise it is cancelled and its
command never runs. Real scheduler, real hypervisor, real processes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import psutil
import pytest
from harness import Hypervisor, make_scheduler, wait_for_async
from wfxml import job_xml

from simple_scheduler.execution.taskdir import read_status
from simple_scheduler.scheduler.core import Scheduler
from simple_scheduler.store import jobstore
from simple_scheduler.store.db import Store
from simple_scheduler.workflow import parse_workflow


@pytest.fixture
async def sched(store: Store, hypervisor: Hypervisor) -> AsyncIterator[Scheduler]:
    s = make_scheduler(store, hypervisor, workers=4)
    await s.start()
    try:
        yield s
    finally:
        await s.stop()


async def submit(s: Scheduler, xml: bytes) -> int:
    return await s.submit(parse_workflow(xml), "alice", xml.decode())


async def statuses(s: Scheduler, job_id: int) -> dict[str, str]:
    rows = await jobstore.list_tasks(s.store, job_id, 0, 100)
    return {str(r["name"]): str(r["status"]) for r in rows}


def monitors_of(job_id: int, task: str) -> list[psutil.Process]:
    title = f"simple-scheduler: monitor job {job_id} task {task}"
    found = []
    for proc in psutil.process_iter(["pid"]):
        try:
            if " ".join(proc.cmdline()).strip() == title:
                found.append(proc)
        except psutil.Error:
            continue
    return found


async def wait_held(s: Scheduler, job_id: int, index: int) -> None:
    """The child's first execution is spawned (its monitor opened its output files)."""
    stdout = Path(s.files.output_path(job_id, index, 1, "stdout"))

    async def held() -> bool:
        return stdout.exists()

    await wait_for_async(held, 30, "the child to be spawned ahead")


async def test_a_held_child_starts_when_its_parent_has_ended(sched: Scheduler) -> None:
    xml = job_xml(
        [
            {"name": "parent", "bash": "sleep 1"},
            {"name": "child", "bash": "echo child", "depends": ["parent"]},
        ]
    )
    job_id = await submit(sched, xml)
    await wait_held(sched, job_id, 1)
    # Spawned, yet in no status of its own: it waits for its parent like any task.
    assert (await statuses(sched, job_id))["child"] == "SUBMITTED"
    assert monitors_of(job_id, "child")
    assert await sched.wait_job(job_id) == "FINISHED"
    parent = read_status(sched.files.directory(job_id, 0, 1))
    child = read_status(sched.files.directory(job_id, 1, 1))
    assert parent is not None and child is not None and child.ok
    # Its start is when it was let go, not when its monitor was forked.
    assert child.start_time >= parent.end_time
    assert Path(sched.files.output_path(job_id, 1, 1, "stdout")).read_text() == "child\n"


@pytest.mark.parametrize("how", ["parent fails", "job killed"])
async def test_a_held_child_never_runs_when_it_is_not_released(
    sched: Scheduler, short_tmp: Path, how: str
) -> None:
    marker = short_tmp / "child-ran"
    xml = job_xml(
        [
            {"name": "parent", "bash": "sleep 1; exit 3" if how == "parent fails" else "sleep 60"},
            {"name": "child", "bash": f"touch {marker}", "depends": ["parent"]},
        ],
        on_error="cancelJob",
    )
    job_id = await submit(sched, xml)
    await wait_held(sched, job_id, 1)
    if how == "job killed":
        assert await sched.kill_job(job_id)
    final = await sched.wait_job(job_id)
    assert final == ("CANCELED" if how == "parent fails" else "KILLED")
    assert (await statuses(sched, job_id))["child"] == "NOT_STARTED"

    async def cancelled() -> bool:
        status = read_status(sched.files.directory(job_id, 1, 1))
        return status is not None and not monitors_of(job_id, "child")

    await wait_for_async(cancelled, 30, "the held child's monitor to end")
    status = read_status(sched.files.directory(job_id, 1, 1))
    assert status is not None and status.error == "could not start: cancelled before start"
    assert not marker.exists()


async def test_a_held_child_that_cannot_start_is_spawned_again_when_due(
    sched: Scheduler, short_tmp: Path
) -> None:
    """Its folder appears only when its parent has run: the held execution fails its
    chdir and ends unstarted; when due, the child is spawned afresh and runs there."""
    folder = short_tmp / "made-by-parent"
    xml = job_xml(
        [
            {"name": "parent", "bash": f"sleep 1; mkdir {folder}"},
            {"name": "child", "bash": "pwd", "depends": ["parent"]},
        ]
    ).replace(b"</depends>", f'</depends><forkEnvironment workingDir="{folder}"/>'.encode())
    job_id = await submit(sched, xml)
    assert await sched.wait_job(job_id) == "FINISHED"
    assert (await statuses(sched, job_id)) == {"parent": "FINISHED", "child": "FINISHED"}
    out = Path(sched.files.output_path(job_id, 1, 1, "stdout")).read_text()
    assert out == f"{folder}\n"


async def test_a_join_is_spawned_ahead_once_its_last_parent_left_runs(sched: Scheduler) -> None:
    """C waits for A and B; A ends first while B runs: C is spawned held then, and
    started once B has ended."""
    xml = job_xml(
        [
            {"name": "A", "bash": "true"},
            {"name": "B", "bash": "sleep 1.5"},
            {"name": "C", "bash": "echo joined", "depends": ["A", "B"]},
        ]
    )
    job_id = await submit(sched, xml)
    await wait_held(sched, job_id, 2)
    assert read_status(sched.files.directory(job_id, 1, 1)) is None  # B still runs
    assert (await statuses(sched, job_id))["C"] == "SUBMITTED"
    assert await sched.wait_job(job_id) == "FINISHED"
    b = read_status(sched.files.directory(job_id, 1, 1))
    c = read_status(sched.files.directory(job_id, 2, 1))
    assert b is not None and c is not None and c.ok
    assert c.start_time >= b.end_time
