"""The scheduler against a real hypervisor, real processes and a real SQLite file."""

from __future__ import annotations

import asyncio
import itertools
import os
import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from harness import Hypervisor, make_scheduler, wait_for_async
from wfxml import job_xml

from simple_scheduler.errors import StateConflict
from simple_scheduler.execution.taskdir import read_status
from simple_scheduler.scheduler.core import Scheduler
from simple_scheduler.store import jobstore
from simple_scheduler.store.db import Store
from simple_scheduler.store.dbengine import DATABASE_ERRORS
from simple_scheduler.workflow import parse_workflow


@pytest.fixture
async def sched(store: Store, hypervisor: Hypervisor) -> AsyncIterator[Scheduler]:
    s = make_scheduler(store, hypervisor, workers=4)
    assert isinstance(s, Scheduler)
    await s.start()
    try:
        yield s
    finally:
        await s.stop()


async def submit(s: Scheduler, xml: bytes, owner: str = "alice") -> int:
    return await s.submit(parse_workflow(xml), owner, xml.decode())


async def tasks_by_name(s: Scheduler, job_id: int) -> dict[str, Any]:
    rows = await jobstore.list_tasks(s.store, job_id, 0, 100_000)
    return {r["name"]: r for r in rows}


def status_file(s: Scheduler, job_id: int, index: int, attempt: int = 1) -> dict[str, Any]:
    """The monitor's own record of the execution: start and end times, exit status."""
    status = read_status(s.files.directory(job_id, index, attempt))
    assert status is not None
    return {"start": status.start_time, "end": status.end_time, "exit_code": status.exit_code}


def stdout(s: Scheduler, job_id: int, index: int, attempt: int = 1) -> str:
    path = Path(s.files.output_path(job_id, index, attempt, "stdout"))
    return path.read_text()


async def test_diamond_runs_in_dependency_order(sched: Scheduler) -> None:
    xml = job_xml(
        [
            {"name": "A", "bash": "echo a; sleep 0.2"},
            {"name": "B", "bash": "echo b", "depends": ["A"]},
            {"name": "C", "bash": "echo c", "depends": ["A"]},
            {"name": "D", "bash": "echo d", "depends": ["B", "C"]},
        ]
    )
    job_id = await submit(sched, xml)
    assert await sched.wait_job(job_id) == "FINISHED"
    tasks = await tasks_by_name(sched, job_id)
    assert {n: t["status"] for n, t in tasks.items()} == dict.fromkeys("ABCD", "FINISHED")
    starts = {n: status_file(sched, job_id, t["task_index"])["start"] for n, t in tasks.items()}
    ends = {n: status_file(sched, job_id, t["task_index"])["end"] for n, t in tasks.items()}
    assert starts["B"] >= ends["A"] and starts["C"] >= ends["A"]
    assert starts["D"] >= max(ends["B"], ends["C"])
    assert stdout(sched, job_id, 3) == "d\n"
    job = await jobstore.get_job(sched.store, job_id)
    assert job is not None
    assert (job["total_tasks"], job["finished_tasks"], job["running_tasks"]) == (4, 4, 0)
    assert (job["pending_tasks"], job["faulty_tasks"]) == (0, 0)


async def test_fan_out_fan_in_of_1000_tasks(sched: Scheduler) -> None:
    middle = [{"name": f"m{i}", "native": ["/bin/true"], "depends": ["root"]} for i in range(1000)]
    xml = job_xml(
        [
            {"name": "root", "native": ["/bin/true"]},
            *middle,
            {"name": "join", "native": ["/bin/true"], "depends": [m["name"] for m in middle]},
        ]
    )
    job_id = await submit(sched, xml)
    assert await sched.wait_job(job_id, timeout=120) == "FINISHED"
    rows = await jobstore.list_tasks(sched.store, job_id, 0, 2000)
    assert len(rows) == 1002
    assert all(r["status"] == "FINISHED" for r in rows)
    join = rows[-1]
    assert join["start_time"] >= max(r["finished_time"] for r in rows[1:-1])
    assert sched.max_running_seen <= 4


async def test_worker_limit_is_never_exceeded(store: Store, hypervisor: Hypervisor) -> None:
    s = make_scheduler(store, hypervisor, workers=3)
    assert isinstance(s, Scheduler)
    await s.start()
    try:
        xml = job_xml([{"name": f"t{i}", "native": ["sleep", "0.2"]} for i in range(12)])
        job_id = await submit(s, xml)
        assert await s.wait_job(job_id) == "FINISHED"
        intervals = [
            (status_file(s, job_id, i)["start"], status_file(s, job_id, i)["end"])
            for i in range(12)
        ]
        # The largest number of task processes alive at one instant, from their own times.
        points = sorted([(a, 1) for a, _ in intervals] + [(b, -1) for _, b in intervals])
        alive = peak = 0
        for _, delta in points:
            alive += delta
            peak = max(peak, alive)
        assert peak <= 3
        assert s.max_running_seen == 3
    finally:
        await s.stop()


FAILING = {"name": "bad", "bash": "echo oops >&2; exit 3"}
CHILD = {"name": "child", "bash": "echo child", "depends": ["bad"]}
SLOW = {"name": "slow", "native": ["sleep", "1"]}


async def test_continue_job_execution_runs_dependents_and_finishes(sched: Scheduler) -> None:
    job_id = await submit(sched, job_xml([FAILING, CHILD, SLOW]))
    assert await sched.wait_job(job_id) == "FINISHED"
    tasks = await tasks_by_name(sched, job_id)
    assert tasks["bad"]["status"] == "FAULTY"
    assert tasks["bad"]["exit_code"] == 3
    assert tasks["bad"]["reason"] == "exit code 3"
    assert tasks["child"]["status"] == "FINISHED"
    job = await jobstore.get_job(sched.store, job_id)
    assert job is not None
    assert (job["faulty_tasks"], job["finished_tasks"]) == (1, 3)


async def test_cancel_job_policy(sched: Scheduler) -> None:
    job_id = await submit(sched, job_xml([FAILING, CHILD, SLOW], on_error="cancelJob"))
    assert await sched.wait_job(job_id) == "CANCELED"
    tasks = await tasks_by_name(sched, job_id)
    assert tasks["bad"]["status"] == "FAULTY"
    assert tasks["child"]["status"] == "NOT_STARTED"
    assert tasks["slow"]["status"] == "ABORTED"


async def test_suspend_task_policy_and_in_error_operations(sched: Scheduler) -> None:
    job_id = await submit(sched, job_xml([FAILING, CHILD], on_error="suspendTask"))

    async def in_error() -> bool:
        job = await jobstore.get_job(sched.store, job_id)
        return job is not None and job["status"] == "IN_ERROR"

    await wait_for_async(in_error, 30, "in error")
    tasks = await tasks_by_name(sched, job_id)
    assert tasks["bad"]["status"] == "IN_ERROR"
    assert tasks["child"]["status"] == "SUBMITTED"
    with pytest.raises(StateConflict):
        await sched.finish_in_error_task(job_id, "child")
    # Restart: it fails again and is IN_ERROR again, with one more attempt recorded.
    assert await sched.restart_in_error_task(job_id, "bad")

    async def attempts_two() -> bool:
        t = (await tasks_by_name(sched, job_id))["bad"]
        return bool(t["attempts"] == 2 and t["status"] == "IN_ERROR")

    await wait_for_async(attempts_two, 30, "attempts two")
    assert await sched.finish_in_error_task(job_id, "bad")
    assert await sched.wait_job(job_id) == "FINISHED"
    tasks = await tasks_by_name(sched, job_id)
    assert tasks["bad"]["status"] == "FINISHED"
    assert tasks["child"]["status"] == "FINISHED"


async def test_pause_job_policy(sched: Scheduler) -> None:
    later = {"name": "later", "bash": "echo later", "depends": ["slow"]}
    job_id = await submit(sched, job_xml([FAILING, SLOW, later], on_error="pauseJob"))

    async def paused() -> bool:
        tasks = await tasks_by_name(sched, job_id)
        return bool(tasks["later"]["status"] == "PAUSED")

    await wait_for_async(paused, 30, "paused")
    job = await jobstore.get_job(sched.store, job_id)
    assert job is not None and job["status"] == "PAUSED"
    tasks = await tasks_by_name(sched, job_id)
    assert tasks["bad"]["status"] == "IN_ERROR"
    assert await sched.resume_job(job_id)

    async def in_error_job() -> bool:
        job = await jobstore.get_job(sched.store, job_id)
        tasks = await tasks_by_name(sched, job_id)
        return bool(
            job is not None
            and job["status"] == "IN_ERROR"
            and tasks["later"]["status"] == "FINISHED"
        )

    await wait_for_async(in_error_job, 30, "in error job")
    assert await sched.finish_in_error_task(job_id, "bad")
    assert await sched.wait_job(job_id) == "FINISHED"


async def test_retries_count_and_delay(sched: Scheduler) -> None:
    flaky = {"name": "flaky", "bash": "exit 1", "max_exec": 3, "retry_delay": "1"}
    job_id = await submit(sched, job_xml([flaky]))
    assert await sched.wait_job(job_id) == "FINISHED"
    task = (await tasks_by_name(sched, job_id))["flaky"]
    assert task["status"] == "FAULTY"
    assert task["attempts"] == 3
    runs = [status_file(sched, job_id, 0, attempt) for attempt in (1, 2, 3)]
    for previous, following in itertools.pairwise(runs):
        assert following["start"] - previous["end"] >= 0.9  # taskRetryDelay="1"


async def test_retry_succeeds_on_second_attempt(sched: Scheduler, short_tmp: Path) -> None:
    marker = short_tmp / "marker"
    code = f"if [ -e {marker} ]; then echo ok; else touch {marker}; exit 1; fi"
    job_id = await submit(
        sched, job_xml([{"name": "t", "bash": code, "max_exec": 2, "retry_delay": "0"}])
    )
    assert await sched.wait_job(job_id) == "FINISHED"
    task = (await tasks_by_name(sched, job_id))["t"]
    assert (task["status"], task["attempts"]) == ("FINISHED", 2)


async def test_walltime_kills_and_counts_as_error(sched: Scheduler) -> None:
    job_id = await submit(
        sched, job_xml([{"name": "long", "native": ["sleep", "60"], "walltime": "1"}])
    )
    assert await sched.wait_job(job_id, timeout=30) == "FINISHED"
    task = (await tasks_by_name(sched, job_id))["long"]
    assert task["status"] == "FAULTY"
    assert "walltime" in task["reason"]
    assert task["signal"] is not None


def with_steps(pre: str) -> dict[str, str]:
    """Task `t` with every step, each echoing its name; `pre` as given."""
    return {
        "name": "t",
        "pre": pre,
        "bash": "echo main",
        "post": "echo post",
        "cleaning": "echo cleaning",
    }


async def test_pre_post_cleaning_order_on_success(sched: Scheduler) -> None:
    job_id = await submit(sched, job_xml([with_steps("echo pre")]))
    assert await sched.wait_job(job_id) == "FINISHED"
    assert stdout(sched, job_id, 0) == "pre\nmain\npost\ncleaning\n"
    assert (await tasks_by_name(sched, job_id))["t"]["status"] == "FINISHED"


async def test_pre_failure_skips_executable_and_post_but_runs_cleaning(sched: Scheduler) -> None:
    job_id = await submit(sched, job_xml([with_steps("echo pre; exit 4")]))
    assert await sched.wait_job(job_id) == "FINISHED"
    assert stdout(sched, job_id, 0) == "pre\ncleaning\n"
    task = (await tasks_by_name(sched, job_id))["t"]
    assert task["status"] == "FAULTY"
    assert task["reason"] == "pre failed: exit code 4"


async def test_failing_executable_skips_post(sched: Scheduler) -> None:
    spec = {"name": "t", "bash": "echo main; exit 2", "post": "echo post", "cleaning": "echo c"}
    job_id = await submit(sched, job_xml([spec]))
    assert await sched.wait_job(job_id) == "FINISHED"
    assert stdout(sched, job_id, 0) == "main\nc\n"
    assert (await tasks_by_name(sched, job_id))["t"]["reason"] == "executable failed: exit code 2"


async def test_environment_carries_variables_and_system_variables(sched: Scheduler) -> None:
    code = (
        'echo "$variables_GREETING $PA_JOB_ID $PA_TASK_NAME $PA_USER $PA_TASK_ID"; '
        'echo "$variables_PA_JOB_ID $PA_TASK_ITERATION $PA_TASK_REPLICATION"'
    )
    xml = job_xml(
        [
            {"name": "t", "bash": code},
            {"name": "n", "native": ["echo", "${GREETING}", "${PA_JOB_ID}"]},
        ],
        variables={"GREETING": "hello world"},
    )
    job_id = await submit(sched, xml, owner="bob")
    assert await sched.wait_job(job_id) == "FINISHED"
    assert stdout(sched, job_id, 0) == f"hello world {job_id} t bob {job_id}t0\n{job_id} 0 0\n"
    assert stdout(sched, job_id, 1) == f"hello world {job_id}\n"


def _processes_of(root: Path) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["pid"]):
        try:
            if proc.cwd().startswith(str(root)) and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc)
        except psutil.Error:
            continue
    return found


async def test_kill_job_with_running_and_pending_tasks(sched: Scheduler) -> None:
    tasks: list[dict[str, Any]] = [
        {"name": f"r{i}", "bash": "sleep 600 & sleep 600"} for i in range(3)
    ]
    tasks.append({"name": "after", "bash": "echo never", "depends": ["r0"]})
    tasks += [{"name": f"q{i}", "native": ["sleep", "600"]} for i in range(3)]
    job_id = await submit(sched, job_xml(tasks))

    async def three_running() -> bool:
        rows = await tasks_by_name(sched, job_id)
        return sum(1 for r in rows.values() if r["status"] == "RUNNING" and r["pid"]) >= 4

    await wait_for_async(three_running, 30, "three running")
    assert await sched.kill_job(job_id)
    assert await sched.wait_job(job_id) == "KILLED"
    rows = await tasks_by_name(sched, job_id)
    statuses = {n: r["status"] for n, r in rows.items()}
    assert statuses["after"] == "NOT_STARTED"
    assert sorted(statuses.values()).count("ABORTED") == 4
    assert sorted(statuses.values()).count("NOT_STARTED") == 3
    job_dir = Path(sched.files.directory(job_id, 0, 1)).parent.parent
    assert _processes_of(job_dir) == []
    assert await sched.kill_job(job_id) is False


async def test_pause_and_resume(sched: Scheduler) -> None:
    xml = job_xml(
        [
            {"name": "first", "native": ["sleep", "0.5"]},
            {"name": "second", "bash": "echo second", "depends": ["first"]},
        ]
    )
    job_id = await submit(sched, xml)
    assert await sched.pause_job(job_id)
    job = await jobstore.get_job(sched.store, job_id)
    assert job is not None and job["status"] == "PAUSED"

    async def first_done() -> bool:
        return bool((await tasks_by_name(sched, job_id))["first"]["status"] == "FINISHED")

    await wait_for_async(first_done, 30, "first to finish")
    await sched.flush()  # everything its end caused is committed
    rows = await tasks_by_name(sched, job_id)
    assert rows["second"]["status"] == "PAUSED"  # released by its parent, held by the pause
    assert await sched.resume_job(job_id)
    assert await sched.wait_job(job_id) == "FINISHED"
    assert stdout(sched, job_id, 1) == "second\n"


async def test_remove_job_deletes_rows_and_files(sched: Scheduler) -> None:
    job_id = await submit(sched, job_xml([{"name": "t", "bash": "echo hi"}]))
    assert await sched.wait_job(job_id) == "FINISHED"
    assert (Path(sched.files.directory(job_id, 0, 1)).parent.parent).exists()
    await sched.remove_job(job_id)
    assert await jobstore.get_job(sched.store, job_id) is None
    assert await jobstore.list_tasks(sched.store, job_id, 0, 10) == []
    assert not (Path(sched.files.directory(job_id, 0, 1)).parent.parent).exists()


async def test_priority_orders_the_ready_queue(store: Store, hypervisor: Hypervisor) -> None:
    s = make_scheduler(store, hypervisor, workers=1)
    assert isinstance(s, Scheduler)
    await s.start()
    try:
        blocker = await submit(s, job_xml([{"name": "b", "native": ["sleep", "0.5"]}]))
        low = await submit(s, job_xml([{"name": "l", "native": ["true"]}], priority="low"))
        high = await submit(s, job_xml([{"name": "h", "native": ["true"]}], priority="high"))
        for job_id in (blocker, low, high):
            assert await s.wait_job(job_id) == "FINISHED"
        start_low = (await tasks_by_name(s, low))["l"]["start_time"]
        start_high = (await tasks_by_name(s, high))["h"]["start_time"]
        assert start_high <= start_low
    finally:
        await s.stop()


async def test_removing_a_running_job_keeps_its_slot_until_the_process_is_gone(
    store: Store, hypervisor: Hypervisor
) -> None:
    s = make_scheduler(store, hypervisor, workers=1, grace=1.0)
    assert isinstance(s, Scheduler)
    await s.start()
    try:
        # Ignores SIGTERM (inherited by sleep): only the SIGKILL after the grace ends it. The
        # sleep's duration is unique to this run, so that the probe below finds only ours
        # when other test runs share the machine.
        marker = f"600.{os.getpid()}{secrets.randbelow(10**6)}"
        stubborn = job_xml([{"name": "s", "bash": f"trap '' TERM; sleep {marker} & wait"}])
        first = await submit(s, stubborn)

        async def started() -> bool:
            return bool((await tasks_by_name(s, first))["s"]["pid"])

        await wait_for_async(started, 30, "started")
        await s.remove_job(first)
        probe = f"pgrep -f 'sleep {marker}' >/dev/null && echo alive || echo gone"
        second = await submit(s, job_xml([{"name": "p", "bash": probe}]))
        assert await s.wait_job(second) == "FINISHED"
        assert stdout(s, second, 0) == "gone\n"
        assert s.max_running_seen == 1
    finally:
        await s.stop()


async def test_concurrent_submits_share_one_transaction(
    sched: Scheduler, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 14.11: 32 submits that arrive while a write is in progress are committed
    together (group commit), not queued one transaction each behind the single writer;
    a job the store refuses fails alone. (With the writer free, a small submit on SQLite
    is committed at once in its own task: test_store.py.)"""
    import asyncio

    opened = 0  # transactions that write submitted jobs
    sizes: list[int] = []  # jobs in each

    def counted(real: Any) -> Any:
        async def write(*args: Any) -> Any:
            nonlocal opened
            opened += 1
            sizes.append(len(args[1]))
            return await real(*args)

        return write

    # The scheduler's one way to store submits (on PostgreSQL it calls insert_jobs inside
    # its transaction: counting both would count one group twice).
    monkeypatch.setattr(jobstore, "commit_jobs", counted(jobstore.commit_jobs))
    xml = job_xml([{"name": "A", "bash": "echo A"}])
    job = parse_workflow(xml)
    writing, release = asyncio.Event(), asyncio.Event()

    async def a_write_in_progress() -> None:
        async with sched.store.transaction():
            writing.set()
            await release.wait()

    writer = asyncio.ensure_future(a_write_in_progress())
    await writing.wait()
    submits = asyncio.gather(*(sched.submit(job, "alice", xml.decode()) for _ in range(32)))
    async def grouped() -> bool:
        return opened > 0

    await wait_for_async(grouped, 30, "the submits' group waiting for the writer")
    release.set()
    await writer
    ids = await submits
    assert opened == 1 and sizes == [32]
    assert sorted(ids) == list(range(ids[0], ids[0] + 32)) and ids == sorted(ids)
    for job_id in ids:
        assert await sched.wait_job(job_id) == "FINISHED"
    # Text SQLite cannot encode fails that job only (retried alone), not its group.
    outcomes = await asyncio.gather(
        *(sched.submit(job, "alice", xml.decode() if i != 2 else "\udcff") for i in range(4)),
        return_exceptions=True,
    )
    # SQLite's driver cannot encode it, PostgreSQL's refuses it: either way that job fails.
    assert isinstance(outcomes[2], (UnicodeEncodeError, *DATABASE_ERRORS))
    for outcome in (o for i, o in enumerate(outcomes) if i != 2):
        assert isinstance(outcome, int) and await sched.wait_job(outcome) == "FINISHED"


async def test_status_commits_at_once_when_idle_and_in_groups_under_load(
    sched: Scheduler, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Adaptive group commit: a change waits for no timer when nothing is being
    committed; changes made while a commit is in flight all go in the next one."""
    long = [{"name": "t", "native": ["sleep", "60"]}]
    first, second = await submit(sched, job_xml(long)), await submit(sched, job_xml(long))
    await sched.flush()
    gate = asyncio.Event()
    commits: list[list[int]] = []  #: the job ids of each commit, as it starts
    write = sched.store.write_batches

    async def gated(batches: Any) -> None:
        commits.append(sorted(int(row["id"]) for query, rows in batches for row in rows
                              if "UPDATE jobs" in query))
        await gate.wait()
        await write(batches)

    monkeypatch.setattr(sched.store, "write_batches", gated)
    in_flight = asyncio.create_task(sched.change_priority(first, "low"))
    await wait_for_async(lambda: _true(len(commits) == 1), 10, "the first commit")
    waiting = [
        asyncio.create_task(sched.change_priority(second, "low")),
        asyncio.create_task(sched.change_priority(first, "lowest")),
    ]
    for _ in range(20):
        await asyncio.sleep(0)
    assert len(commits) == 1, "a second transaction started while one was in flight"
    gate.set()
    await asyncio.gather(in_flight, *waiting)
    assert commits == [[first], [first, second]]  # both later changes in one commit

    # Idle, a change nobody waits for (an event's) is committed at once: within a few
    # turns of the loop, where a fixed window would sleep.
    live = sched._jobs[second]
    sched._mark(live, live.tasks[0])
    for _ in range(10):
        if len(commits) == 3:
            break
        await asyncio.sleep(0)
    assert commits[2:] == [[second]]
    await sched.flush()
    for job_id in (first, second):
        assert await sched.kill_job(job_id)
        assert await sched.wait_job(job_id) == "KILLED"


async def _true(value: bool) -> bool:
    return value


async def test_write_batches_is_one_transaction(sched: Scheduler) -> None:
    """The flusher's one-hop write: all of a batch or none of it, and the writer
    connection is usable afterwards."""
    store = sched.store
    job_id = await submit(sched, job_xml([{"name": "t", "native": ["/bin/true"]}]))
    assert await sched.wait_job(job_id) == "FINISHED"
    rename = ("UPDATE jobs SET name = :name WHERE id = :id", [{"name": "renamed", "id": job_id}])
    broken = ("UPDATE no_such_table SET x = 1 WHERE id = :id", [{"id": job_id}])
    with pytest.raises(DATABASE_ERRORS):
        await store.write_batches([rename, broken])
    job = await jobstore.get_job(store, job_id)
    assert job is not None and job["name"] != "renamed"  # rolled back
    await store.write_batches([rename])
    job = await jobstore.get_job(store, job_id)
    assert job is not None and job["name"] == "renamed"
