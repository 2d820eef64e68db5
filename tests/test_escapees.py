"""Issue 14 item 7: a task's processes end with it, wherever they tried to go.

Each escape (a new session with `setsid`, `setsid -f`, a double-fork daemon, a job of
its own with `set -m`) through each way a task ends (job kill, task kill, walltime, its
main process ending by itself): afterwards no process carrying the test's marker is
left. The monitor is a child subreaper, so escapees stay below it and are ended with
the task.
"""

from __future__ import annotations

import asyncio
import sys
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from harness import Hypervisor, make_scheduler, with_env
from wfxml import job_xml

from simple_scheduler.scheduler.core import Scheduler
from simple_scheduler.store import jobstore
from simple_scheduler.workflow import parse_workflow

DAEMON = (
    f"{sys.executable} -c 'import os; os.fork() and os._exit(0); os.setsid(); "
    "os.fork() and os._exit(0); os.execvp(\"sleep\", [\"sleep\", \"600\"])'"
)
ESCAPES = {
    "setsid": "setsid sleep 600 &",
    "setsid -f": "setsid -f sleep 600",
    "double fork": DAEMON,
    "set -m": "set -m; sleep 600 &",
}
PATHS = ("job kill", "task kill", "walltime", "main ends")


def marked(marker: str) -> list[int]:
    """Live processes whose environment carries `marker` (every descendant inherits it)."""
    return with_env(f"variables_MARK={marker}")


def sleeping(marker: str) -> int:
    """How many of them run `sleep`: an escapee has escaped once it exec'd sleep."""
    count = 0
    for pid in marked(marker):
        try:
            with open(f"/proc/{pid}/comm") as f:
                count += f.read().strip() == "sleep"
        except OSError:
            continue
    return count


async def until(predicate: Any, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not reached")
        await asyncio.sleep(0.02)


@pytest.fixture
async def sched(store: Any, hypervisor: Hypervisor) -> AsyncIterator[Scheduler]:
    s = make_scheduler(store, hypervisor, workers=2, grace=1.0)
    assert isinstance(s, Scheduler)
    await s.start()
    try:
        yield s
    finally:
        await s.stop()


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("escape", sorted(ESCAPES))
async def test_no_process_outlives_its_task(sched: Scheduler, escape: str, path: str) -> None:
    marker = uuid.uuid4().hex
    # The escapee announces itself (the marker is in its environment) before the main
    # process goes on: sleep for the kill paths, exit for "main ends".
    script = ESCAPES[escape] + "\n" + ("exit 0" if path == "main ends" else "sleep 600")
    task: dict[str, Any] = {"name": "t", "bash": script}
    if path == "walltime":
        task["walltime"] = "2"
    xml = job_xml([task], variables={"MARK": marker})
    job_id = await sched.submit(parse_workflow(xml), "alice", xml.decode())
    if path in ("job kill", "task kill"):
        # the escapee's sleep and the main process's
        await until(lambda: sleeping(marker) >= 2, "the escape")
        if path == "job kill":
            assert await sched.kill_job(job_id)
        else:
            assert await sched.kill_task(job_id, "t")
    await sched.wait_job(job_id, timeout=60)
    await until(lambda: marked(marker) == [], f"every process of the task ended ({escape})")
    [row] = await jobstore.list_tasks(sched.store, job_id, 0, 10)
    if path == "main ends":
        assert row["status"] == "FINISHED"
    if path not in ("job kill", "task kill"):
        # A kill is recorded (with its reason) when it is asked for, before the process
        # ends: the reason is the kill's, and the leftovers show in the other paths.
        assert "left behind were ended" in (row["reason"] or ""), row["reason"]
