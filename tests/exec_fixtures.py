"""Fixtures for the executor tests: a real hypervisor in a short temp dir, and cleanup.

Every process a test starts has its working directory under the test's temp dir (the
hypervisor runs in its process directory, monitors inherit it, tasks run in their task
directories), so teardown SIGKILLs every process whose cwd is inside it, whatever
happened in the test.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import pytest

from simple_scheduler.execution.backend import Event, Exited, Lost, TaskSpec
from simple_scheduler.execution.client import HypervisorClient
from simple_scheduler.execution.launcher import spawn_hypervisor

T = TypeVar("T")
BIN_PATH = "/usr/local/bin:/usr/bin:/bin"


def processes_under(root: str) -> list[int]:
    """Pids whose working directory is inside `root`."""
    found = []
    me = os.getpid()
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == me:
            continue
        try:
            cwd = os.readlink(f"/proc/{name}/cwd")
        except OSError:
            continue
        if cwd == root or cwd.startswith(root + "/"):
            found.append(int(name))
    return found


def kill_under(root: str) -> None:
    for _ in range(20):
        pids = processes_under(root)
        if not pids:
            return
        for pid in pids:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.05)


def children_zombies(ppids: set[int]) -> list[int]:
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] == "Z" and int(fields[1]) in ppids:
            out.append(int(name))
    return out


class HV:
    """A hypervisor process under test, with helpers to drive it."""

    def __init__(self, root: str) -> None:
        self.root = root
        self.socket_path = os.path.join(root, "h.sock")
        self.process_directory = os.path.join(root, "pd")
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = os.path.join(root, "hypervisor.log")

    def start(self) -> None:
        with open(self.log_path, "ab") as log:
            self.proc = spawn_hypervisor(
                self.socket_path, self.process_directory, stderr=log.fileno()
            )

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def fork_server_pid(self) -> int:
        assert self.proc is not None
        with open(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children") as f:
            return int(f.read().split()[0])

    def spec(self, key: str, argv: list[str], env: dict[str, str] | None = None,
             cwd: str | None = None, job_id: int = 1, task: str | None = None) -> TaskSpec:
        return TaskSpec(
            key=key,
            job_id=job_id,
            task_name=task or key,
            argv=argv,
            env={"PATH": BIN_PATH} if env is None else env,
            task_dir=os.path.join(self.process_directory, str(job_id), key, "0"),
            cwd=cwd,
        )

    def run(self, fn: Callable[[HypervisorClient], Awaitable[T]], timeout: float = 60) -> T:
        async def main() -> T:
            client = await HypervisorClient.connect(self.socket_path)
            try:
                return await asyncio.wait_for(fn(client), timeout)
            finally:
                await client.close()

        return asyncio.run(main())

    def run_tasks(self, specs: list[TaskSpec], timeout: float = 60) -> dict[str, Event]:
        """Spawn and start `specs`, return the final event (Exited or Lost) of each."""

        async def go(client: HypervisorClient) -> dict[str, Event]:
            for spec in specs:
                await client.spawn(spec)
            done = await wait_final(client, {s.key for s in specs})
            for spec in specs:
                await client.release(spec.key)
            return done

        return self.run(go, timeout)


async def wait_final(client: HypervisorClient, keys: set[str]) -> dict[str, Event]:
    done: dict[str, Event] = {}
    async for event in client.events():
        if event.key in keys and isinstance(event, Exited | Lost):
            done[event.key] = event
            if len(done) == len(keys):
                break
    return done


async def wait_started(client: HypervisorClient, keys: set[str]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    async for event in client.events():
        if event.key in keys and event.kind == "started":
            seen[event.key] = event
            if len(seen) == len(keys):
                break
    return seen


@pytest.fixture
def short_tmp() -> Iterator[str]:
    """A temp dir with a short path (AF_UNIX paths are limited to 108 bytes)."""
    root = os.path.realpath(tempfile.mkdtemp(prefix="ss-", dir="/tmp"))
    try:
        yield root
    finally:
        kill_under(root)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def hv(short_tmp: str) -> Iterator[HV]:
    """A running hypervisor; everything under its temp dir is killed at teardown."""
    h = HV(short_tmp)
    h.start()
    try:
        yield h
    finally:
        h.stop()
        kill_under(short_tmp)
