"""Issue 14 item 7, the cgroup half: a task's processes end even when its monitor died.

With its monitor (the subreaper) SIGKILLed, what the task started re-parents to init,
out of any tree; its cgroup still holds it, and the hypervisor kills the cgroup when it
finds the execution lost. Skipped where no writable cgroup v2 hierarchy exists.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from harness import Hypervisor, with_env

from simple_scheduler.execution.backend import Exited, Lost
from simple_scheduler.execution.client import HypervisorClient
from simple_scheduler.hypervisor import cgroups

pytestmark = pytest.mark.skipif(
    not cgroups.task_cgroup_prefix("/probe"), reason="no writable cgroup v2 hierarchy"
)


def marked(marker: str) -> list[int]:
    """Live processes whose environment carries `marker` (every descendant inherits it)."""
    return with_env(f"SS_MARK={marker}")


async def until(predicate: object, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"{what}: not reached"
        await asyncio.sleep(0.02)


@pytest.fixture
def hv(short_tmp: Path, run_token: str) -> Iterator[Hypervisor]:
    """A hypervisor with --task-cgroups (what the server starts)."""
    h = Hypervisor(short_tmp, run_token)
    h.start(task_cgroups=True)
    try:
        yield h
    finally:
        h.kill()


def test_escapee_of_a_killed_monitor_dies_with_its_cgroup(hv: Hypervisor) -> None:
    marker = uuid.uuid4().hex
    env = {"PATH": "/usr/bin:/bin", "SS_MARK": marker}
    spec = hv.spec("esc", ["bash", "-c", "setsid -f sleep 600; exec sleep 600"], env=env)

    async def go(client: HypervisorClient) -> str:
        reply = await client.spawn(spec)
        assert isinstance(reply, dict)
        await until(lambda: len(marked(marker)) >= 2, "task and escapee running")
        os.kill(reply["monitor_pid"], signal.SIGKILL)
        async for event in client.events():
            if event.key == "esc" and isinstance(event, Lost):
                await until(lambda: marked(marker) == [], "every process of the task ended")
                await client.release("esc")  # and its cgroup folder goes
                return event.reason
        raise AssertionError("no Lost event")

    reason = hv.run(go)
    assert "cgroup was killed" in reason or "task was killed" in reason


def test_task_runs_in_its_own_cgroup_which_goes_with_it(hv: Hypervisor) -> None:
    spec = hv.spec("own", ["cat", "/proc/self/cgroup"])
    [event] = hv.run_tasks([spec]).values()
    assert isinstance(event, Exited) and event.status.ok
    with open(os.path.join(spec.task_dir, "stdout")) as f:
        line = next(x for x in f if x.startswith("0::"))
    prefix = cgroups.task_cgroup_prefix(os.path.abspath(hv.process_directory))
    assert line.strip().endswith("/" + os.path.basename(prefix) + ".own")
    assert not os.path.exists(prefix + ".own")  # removed by its monitor
