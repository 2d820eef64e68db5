"""Crash recovery with SIGKILL: the web process, the hypervisor, both, or one monitor.

After every crash, each task that was running is followed to its end with its real exit
status, and every task runs exactly once (each appends its name to a shared log). On both
store engines: the database is where a restarted scheduler learns what was running.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from harness import (
    TOKEN_VAR,
    Hypervisor,
    is_zombie,
    make_scheduler,
    wait_for,
    wait_for_async,
)
from pgserver import sync_query
from wfxml import job_xml

from simple_scheduler.execution.launcher import HypervisorArgs
from simple_scheduler.execution.taskdir import read_status
from simple_scheduler.store.db import Store

DRIVER = Path(__file__).with_name("sched_driver.py")


class Driver:
    """The scheduler in its own process, so a test can SIGKILL it."""

    def __init__(self, hv: Hypervisor, database_url: str, workers: int = 2) -> None:
        self.hv = hv
        self.db = database_url
        self.workers = workers
        self.log = hv.root / "driver.log"
        self.proc: subprocess.Popen[str] | None = None

    def start(self, workflow: Path | None = None) -> int | None:
        args = [sys.executable, str(DRIVER), self.db, self.hv.socket_path]
        args += [str(self.hv.process_directory), str(self.workers)]
        if workflow is not None:
            args.append(str(workflow))
        env = dict(os.environ, **{TOKEN_VAR: self.hv.token})
        with self.log.open("a") as log:
            self.proc = subprocess.Popen(
                args, cwd=self.hv.root, env=env, stdout=subprocess.PIPE, stderr=log, text=True
            )
        assert self.proc.stdout is not None
        job_id = None
        for line in self.proc.stdout:
            if line.startswith("job "):
                job_id = int(line.split()[1])
            if line.strip() == "ready":
                return job_id
        raise RuntimeError(f"driver exited with {self.proc.wait()}")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture
def driver(hypervisor: Hypervisor, database_url: str) -> Iterator[Driver]:
    d = Driver(hypervisor, database_url)
    try:
        yield d
    finally:
        d.kill()


def query(db: str, sql: str, *args: object) -> list[tuple[Any, ...]]:
    """`?`-style SQL on the driver's database, from outside the driver, on either engine."""
    return sync_query(db, sql, *args)


def job_status(db: str, job_id: int) -> str:
    return str(query(db, "SELECT status FROM jobs WHERE id = ?", job_id)[0][0])


def running_with_pid(db: str, job_id: int) -> int:
    rows = query(
        db,
        "SELECT COUNT(*) FROM tasks WHERE job_id = ? AND status = 'RUNNING' AND pid IS NOT NULL",
        job_id,
    )
    return int(rows[0][0])


def write_workflow(root: Path, n: int = 6, seconds: float = 1.5, last_exit: int = 0) -> Path:
    log = root / "runs.log"
    tasks: list[dict[str, Any]] = [
        {"name": f"t{i}", "bash": f"echo t{i} >> {log}; sleep {seconds}"} for i in range(n)
    ]
    tasks.append(
        {
            "name": "last",
            "bash": f"echo last >> {log}; sleep {seconds}; exit {last_exit}",
            "depends": [t["name"] for t in tasks],
        }
    )
    path = root / "wf.xml"
    path.write_bytes(job_xml(tasks))
    return path


def assert_ran_exactly_once(root: Path, names: list[str]) -> None:
    runs = Counter((root / "runs.log").read_text().split())
    assert runs == Counter(names), runs


def wait_finished(db: str, job_id: int, timeout: float = 90.0) -> None:
    ended = ("FINISHED", "CANCELED", "KILLED")
    wait_for(lambda: job_status(db, job_id) in ended, timeout, f"job {job_id} to end")


def wait_running(db: str, job_id: int, n: int) -> None:
    wait_for(lambda: running_with_pid(db, job_id) == n, 60, f"{n} tasks running")


def status_files(hv: Hypervisor, job_id: int) -> list[Path]:
    """The status files of the job's executions: one per execution that has ended."""
    return list(hv.process_directory.glob(f"{job_id}/*/*/status"))


def all_executions_ended(hv: Hypervisor, job_id: int) -> bool:
    dirs = [d for d in hv.process_directory.glob(f"{job_id}/*/*") if d.is_dir()]
    return bool(dirs) and all((d / "status").exists() for d in dirs)


NAMES = [f"t{i}" for i in range(6)] + ["last"]


def start_mid_run(hypervisor: Hypervisor, driver: Driver, last_exit: int = 0) -> int:
    """Submit the workflow through the driver; return once its first two tasks run."""
    workflow = write_workflow(hypervisor.root, last_exit=last_exit)
    job_id = driver.start(workflow)
    assert job_id is not None
    wait_running(driver.db, job_id, 2)
    return job_id


def assert_finished_once(hypervisor: Hypervisor, driver: Driver, job_id: int) -> None:
    """The job ended FINISHED and every task ran exactly once."""
    wait_finished(driver.db, job_id)
    assert job_status(driver.db, job_id) == "FINISHED"
    assert_ran_exactly_once(hypervisor.root, NAMES)


def test_web_process_killed_mid_run(hypervisor: Hypervisor, driver: Driver) -> None:
    job_id = start_mid_run(hypervisor, driver, last_exit=7)
    ended = len(status_files(hypervisor, job_id))
    driver.kill()
    wait_for(
        lambda: len(status_files(hypervisor, job_id)) > ended,
        30,
        "an execution to end while the web process is down",
    )
    driver.start()
    assert_finished_once(hypervisor, driver, job_id)
    rows = dict(query(driver.db, "SELECT name, exit_code FROM tasks WHERE job_id = ?", job_id))
    assert rows == {**dict.fromkeys(NAMES[:-1], 0), "last": 7}


def test_hypervisor_killed_mid_run(hypervisor: Hypervisor, driver: Driver) -> None:
    job_id = start_mid_run(hypervisor, driver)
    hypervisor.kill()
    wait_for(
        lambda: "lost the backend connection" in driver.log.read_text(),
        30,
        "the scheduler to notice the hypervisor is gone",
    )
    hypervisor.start()
    assert_finished_once(hypervisor, driver, job_id)
    statuses = {s for (s,) in query(driver.db, "SELECT status FROM tasks WHERE job_id = ?", job_id)}
    assert statuses == {"FINISHED"}


def test_both_killed_mid_run(hypervisor: Hypervisor, driver: Driver) -> None:
    job_id = start_mid_run(hypervisor, driver)
    driver.kill()
    hypervisor.kill()
    wait_for(
        lambda: all_executions_ended(hypervisor, job_id),
        30,
        "the running tasks to end while nobody is watching",
    )
    hypervisor.start()
    driver.start()
    assert_finished_once(hypervisor, driver, job_id)
    codes = {c for (c,) in query(driver.db, "SELECT exit_code FROM tasks WHERE job_id = ?", job_id)}
    assert codes == {0}


def find_monitor(job_id: int, task: str) -> psutil.Process:
    title = f"simple-scheduler: monitor job {job_id} task {task}"
    for proc in psutil.process_iter(["pid"]):
        try:
            if " ".join(proc.cmdline()).strip() == title:
                return proc
        except psutil.Error:
            continue
    raise LookupError(title)


def test_monitor_killed_is_lost_and_handled_by_policy(
    hypervisor: Hypervisor, driver: Driver
) -> None:
    path = hypervisor.root / "wf.xml"
    path.write_bytes(job_xml([{"name": "victim", "native": ["sleep", "600"]}]))
    job_id = driver.start(path)
    assert job_id is not None
    wait_running(driver.db, job_id, 1)
    task_pid = int(query(driver.db, "SELECT pid FROM tasks WHERE job_id = ?", job_id)[0][0])
    find_monitor(job_id, "victim").send_signal(signal.SIGKILL)
    wait_finished(driver.db, job_id, timeout=30)
    status, reason = query(driver.db, "SELECT status, reason FROM tasks WHERE job_id = ?", job_id)[
        0
    ]
    assert status == "FAILED"
    assert "lost" in str(reason)
    # The orphaned task must not keep running: it would run twice on a retry.
    wait_for(lambda: is_zombie(task_pid), 15, "the orphaned task to be killed")


def test_a_second_hypervisor_on_the_same_socket_refuses_to_start(hypervisor: Hypervisor) -> None:
    second = subprocess.run(
        HypervisorArgs(hypervisor.socket_path, str(hypervisor.process_directory)).command(),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert second.returncode == 3
    assert "another hypervisor already serves" in second.stderr
    assert hypervisor.proc is not None and hypervisor.proc.poll() is None
    import socket as socket_module

    with socket_module.socket(socket_module.AF_UNIX) as s:
        s.connect(hypervisor.socket_path)  # the first one still serves


async def test_server_scheduler_relaunches_a_dead_hypervisor(
    store: Store, hypervisor: Hypervisor
) -> None:
    """Nobody restarts the hypervisor here: the scheduler (relaunch=True) must."""
    from simple_scheduler.store import jobstore
    from simple_scheduler.workflow import parse_workflow

    s = make_scheduler(store, hypervisor, workers=2, grace=1.0, relaunch=True)
    await s.start()
    try:
        xml = write_workflow(hypervisor.root, n=4, seconds=1.0).read_bytes()
        job_id = await s.submit(parse_workflow(xml), "alice", xml.decode())

        async def both_running() -> bool:
            # As recorded: the store lags the scheduler a little.
            rows = await jobstore.list_tasks(s.store, job_id, 0, 10)
            return sum(1 for r in rows if r["status"] == "RUNNING" and r["pid"]) >= 2

        await wait_for_async(both_running, 30, "both first tasks running")
        hypervisor.kill()
        assert await s.wait_job(job_id, timeout=60) == "FINISHED"
        rows = await jobstore.list_tasks(s.store, job_id, 0, 10)
        outcome = {r["name"]: (r["status"], r["exit_code"], r["reason"]) for r in rows}
        assert outcome == {r["name"]: ("FINISHED", 0, None) for r in rows}, outcome
    finally:
        await s.stop()
    assert_ran_exactly_once(hypervisor.root, [f"t{i}" for i in range(4)] + ["last"])


async def test_monitor_dead_while_hypervisor_down_is_lost_and_its_task_killed(
    hypervisor: Hypervisor,
) -> None:
    from simple_scheduler.execution.backend import TaskRecord, TaskSpec
    from simple_scheduler.execution.client import HypervisorClient

    client = await HypervisorClient.connect(hypervisor.socket_path)
    task_dir = str(hypervisor.process_directory / "9" / "0" / "1")
    spec = TaskSpec("9.0.1", 9, "orphan", ["sleep", "600"], {"PATH": os.environ["PATH"]}, task_dir)
    await client.spawn(spec)

    async def started() -> list[TaskRecord]:
        return [r for r in await client.list() if r.pid]

    records = await wait_for_async(started, 15, "the task to start")
    task_pid = records[0].pid
    monitor_pid = int(records[0].extra["monitor_pid"])
    await client.close()
    hypervisor.kill()
    os.kill(monitor_pid, signal.SIGKILL)
    hypervisor.start()
    client = await HypervisorClient.connect(hypervisor.socket_path)
    try:
        (record,) = await client.list()
        assert record.key == "9.0.1" and record.state == "lost"
        assert record.reason is not None and "its task was killed" in record.reason
        assert task_pid is not None
        wait_for(lambda: is_zombie(task_pid), 10, "the orphaned task to be killed")
    finally:
        await client.close()


def write_chain(root: Path, parent_exit: int = 0) -> Path:
    """A -> B, each appending its name to the run log; B is spawned ahead (held) while A
    runs, and may run only once A has ended well (cancelJob otherwise)."""
    log = root / "runs.log"
    tasks: list[dict[str, Any]] = [
        {"name": "A", "bash": f"echo A >> {log}; sleep 1.5; exit {parent_exit}"},
        {"name": "B", "bash": f"echo B >> {log}", "depends": ["A"]},
    ]
    path = root / "chain.xml"
    path.write_bytes(job_xml(tasks, on_error="cancelJob"))
    return path


def start_with_held_child(hypervisor: Hypervisor, driver: Driver, parent_exit: int = 0) -> int:
    job_id = driver.start(write_chain(hypervisor.root, parent_exit))
    assert job_id is not None
    wait_running(driver.db, job_id, 1)
    held = hypervisor.process_directory / str(job_id) / "1" / "1" / "stdout"
    wait_for(held.exists, 30, "B to be spawned ahead")
    return job_id


def wait_parent_ended(hypervisor: Hypervisor, job_id: int) -> None:
    status = hypervisor.process_directory / str(job_id) / "0" / "1" / "status"
    wait_for(status.exists, 30, "A to end")


@pytest.mark.parametrize("crash", ["web", "hypervisor", "both"])
def test_held_child_across_a_crash_runs_once_after_its_parent(
    hypervisor: Hypervisor, driver: Driver, crash: str
) -> None:
    job_id = start_with_held_child(hypervisor, driver)
    if crash in ("web", "both"):
        driver.kill()
    if crash in ("hypervisor", "both"):
        hypervisor.kill()
    wait_parent_ended(hypervisor, job_id)
    # Nobody could start B meanwhile, and its held process did not run on its own.
    assert_ran_exactly_once(hypervisor.root, ["A"])
    if crash in ("hypervisor", "both"):
        hypervisor.start()
    if crash in ("web", "both"):
        driver.start()
    wait_finished(driver.db, job_id)
    assert job_status(driver.db, job_id) == "FINISHED"
    assert_ran_exactly_once(hypervisor.root, ["A", "B"])
    a = read_status(str(hypervisor.process_directory / str(job_id) / "0" / "1"))
    b = read_status(str(hypervisor.process_directory / str(job_id) / "1" / "1"))
    assert a is not None and b is not None and b.ok
    assert b.start_time >= a.end_time


def test_held_child_never_runs_when_its_parent_failed_while_the_web_process_was_down(
    hypervisor: Hypervisor, driver: Driver
) -> None:
    job_id = start_with_held_child(hypervisor, driver, parent_exit=3)
    driver.kill()
    wait_parent_ended(hypervisor, job_id)
    driver.start()
    wait_finished(driver.db, job_id)
    assert job_status(driver.db, job_id) == "CANCELED"
    rows = dict(query(driver.db, "SELECT name, status FROM tasks WHERE job_id = ?", job_id))
    assert rows == {"A": "FAULTY", "B": "NOT_STARTED"}
    b_dir = str(hypervisor.process_directory / str(job_id) / "1" / "1")
    wait_for(lambda: read_status(b_dir) is not None, 30, "the held B to be cancelled")
    status = read_status(b_dir)
    assert status is not None and status.error == "could not start: cancelled before start"
    assert_ran_exactly_once(hypervisor.root, ["A"])
