"""The store on both engines: where SQLite and PostgreSQL could answer differently.

Each test runs on a SQLite file and on a fresh PostgreSQL database (the `store` fixture).
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar, cast

import pytest
from harness import Hypervisor, make_scheduler
from pgserver import PgServer
from wfxml import job_xml

from simple_scheduler.auth import users
from simple_scheduler.scheduler.core import Scheduler
from simple_scheduler.store import jobstore
from simple_scheduler.store.db import Store
from simple_scheduler.store.dbengine import (
    connect_options,
    engine_of,
    is_unique_violation,
    positional,
)
from simple_scheduler.store.migrate import available_migrations, migrate, schema_version
from simple_scheduler.workflow import parse_workflow

T = TypeVar("T")


async def insert(store: Store, xml: bytes, owner: str = "alice") -> int:
    async with store.transaction() as tx:
        return await jobstore.insert_job(tx, parse_workflow(xml), owner, xml.decode(), 1)


def test_positional_parameters_skip_literals_and_casts() -> None:
    sql, names = positional(
        "SELECT ':no', \"a:b\", x::text FROM t WHERE a = :a AND b = :b OR c = :a"
    )
    assert sql == "SELECT ':no', \"a:b\", x::text FROM t WHERE a = $1 AND b = $2 OR c = $1"
    assert names == ("a", "b")


def test_engine_and_pool_options_come_from_the_url() -> None:
    assert engine_of("sqlite+aiosqlite:////x.db") == "sqlite"
    assert engine_of("postgresql://u@h/db") == "postgresql"
    assert engine_of("postgres://u@h/db") == "postgresql"
    assert engine_of("postgresql+asyncpg://u@h/db") == "postgresql"
    for bad in ("mysql://u@h/db", "postgresql+psycopg://u@h/db", "nowhere"):
        with pytest.raises(ValueError):
            engine_of(bad)
    assert connect_options("sqlite+aiosqlite:////x.db") == {}
    assert connect_options("postgresql://u@h/db") == {"min_size": 2, "max_size": 2}
    assert connect_options("postgresql://u@h/db?max_size=8") == {"min_size": 2, "max_size": 2}


async def test_schema_is_at_the_newest_version(store: Store) -> None:
    newest = available_migrations(engine=store.engine)[-1].version
    assert await schema_version(store) == newest
    assert await migrate(store) == []


async def test_integers_beyond_32_bits_round_trip(store: Store) -> None:
    big = 2**40 + 7
    await store.execute("UPDATE id_sequences SET next_value = :v WHERE name = 'jobs'", {"v": big})
    job_id = await insert(store, job_xml([{"name": "a", "native": ["true"]}]))
    assert job_id == big
    # A batch is a transaction of its own.
    await jobstore.write_batch(
        store,
        [
            {
                "job_id": job_id,
                "task_index": 0,
                **dict.fromkeys(jobstore.TASK_COLUMNS),
                "status": "RUNNING",
                "attempts": 1,
                "max_number_of_execution": 1,
                "start_time": 2**45,
                "pid": 2**22,
                "pid_start_time": 2**50,
            }
        ],
        [],
    )
    row = await jobstore.get_task_by_index(store, job_id, 0)
    assert row is not None
    assert (row["start_time"], row["pid"], row["pid_start_time"]) == (2**45, 2**22, 2**50)
    job = await jobstore.get_job(store, job_id)
    assert job is not None and job["id"] == big and job["submitted_time"] == 1


async def test_a_job_name_longer_than_1024_characters_is_kept(store: Store) -> None:
    name = "n" * 5000
    job_id = await insert(store, job_xml([{"name": "a", "native": ["true"]}], name=name))
    job = await jobstore.get_job(store, job_id)
    assert job is not None and job["name"] == name


async def test_lookups_that_cannot_match_find_nothing(store: Store) -> None:
    """Values no row can hold (a NUL, an index past 32 bits) are 'not found', not errors."""
    job_id = await insert(store, job_xml([{"name": "a", "native": ["true"]}]))
    assert await jobstore.get_task(store, job_id, "a\x00b") is None
    assert await jobstore.get_task_by_index(store, job_id, 2**40) is None
    assert await jobstore.get_task_by_index(store, 2**62, 0) is None
    assert await users.get_user(store, "a\x00b") is None
    assert await users.verify_password(store, "a\x00b", "pw", rounds=4) is None


async def test_dependencies_come_back_in_order(store: Store) -> None:
    tasks: list[dict[str, Any]] = [{"name": f"p{i}", "native": ["true"]} for i in range(12)]
    tasks.append({"name": "child", "native": ["true"], "depends": [f"p{i}" for i in range(12)]})
    job_id = await insert(store, job_xml(tasks))
    assert await jobstore.task_dependencies(store, job_id) == {12: list(range(12))}


async def test_duplicate_key_is_recognised_on_either_engine(store: Store) -> None:
    await users.create_user(store, "alice", "pw", rounds=4)
    with pytest.raises(Exception) as info:
        await store.execute(
            "INSERT INTO users (id, name, password_hash, is_admin, created_at)"
            " VALUES (99, 'alice', 'x', FALSE, 0)"
        )
    assert is_unique_violation(info.value)
    with pytest.raises(users.UserExistsError):
        await users.create_user(store, "alice", "pw", rounds=4)
    assert [u.name for u in await users.list_users(store)] == ["alice"]
    # The failed transaction left the writer usable.
    await users.create_user(store, "bob", "pw", is_admin=True, rounds=4)
    bob = await users.get_user(store, "bob")
    assert bob is not None and bob.is_admin is True


async def test_postgresql_servers_starting_together_migrate_once(pg_server: PgServer) -> None:
    url = pg_server.new_database()
    stores = [await Store.open(url) for _ in range(3)]
    try:
        results = await asyncio.gather(*(migrate(s) for s in stores))
        newest = available_migrations(engine="postgresql")[-1].version
        assert sorted(results, key=len) == [[], [], list(range(1, newest + 1))]
        count = await stores[0].fetch_val("SELECT COUNT(*) FROM schema_migrations")
        assert count == newest
    finally:
        for s in stores:
            await s.close()


async def test_postgresql_plans_each_execution_for_its_values(store: Store) -> None:
    """A generic plan made while the tables were empty (sequential scans) must not stick
    to the prepared statements as the tables grow."""
    if store.engine != "postgresql":
        assert await store.fetch_val("PRAGMA journal_mode") == "wal"
        return
    assert await store.fetch_val("SHOW plan_cache_mode") == "force_custom_plan"
    async with store.transaction() as tx:
        assert await tx.fetch_val("SHOW plan_cache_mode") == "force_custom_plan"


async def test_concurrent_reads_share_the_reader(store: Store) -> None:
    """Requests read at the same time; asyncpg refuses overlapping queries on a connection."""
    await insert(store, job_xml([{"name": "a", "native": ["true"]}]))
    counts = await asyncio.gather(
        *(store.fetch_val("SELECT COUNT(*) FROM tasks") for _ in range(50)),
        *(jobstore.list_jobs(store, None, 0, 10) for _ in range(20)),
    )
    assert counts[:50] == [1] * 50


async def terminate_sessions(pg: PgServer, url: str) -> int:
    """Kill every server session on the database behind `url`, as a restart would."""
    import asyncpg

    database = url.split("/")[3].split("?")[0]
    conn = await asyncpg.connect(url.replace(f"/{database}?", "/postgres?"))
    try:
        killed = await conn.fetchval(
            "SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = $1",
            database,
        )
    finally:
        await conn.close()
    await asyncio.sleep(0.1)  # the backends exit
    return int(killed)


async def test_postgresql_sessions_lost_are_replaced(pg_server: PgServer) -> None:
    url = pg_server.new_database()
    store = await Store.open(url)
    try:
        await migrate(store)
        await insert(store, job_xml([{"name": "a", "native": ["true"]}]))
        for priority in ("HIGH", "LOW", "IDLE"):  # again and again: the pool keeps up
            assert await terminate_sessions(pg_server, url) == 2
            # A read is retried on a new connection: the caller sees nothing.
            assert await store.fetch_val("SELECT COUNT(*) FROM jobs") == 1
            # A write transaction fails once (not retried: its body may have done more
            # than write), and the next one runs on a new connection.
            update = "UPDATE jobs SET priority = :p"
            with pytest.raises(Exception):  # noqa: B017 - whichever asyncpg raises
                await store.execute(update, {"p": priority})
            await store.execute(update, {"p": priority})
            assert await store.fetch_val("SELECT priority FROM jobs") == priority
        # The replacements are set up like the originals.
        assert await store.fetch_val("SHOW plan_cache_mode") == "force_custom_plan"
        async with store.transaction() as tx:
            assert await tx.fetch_val("SHOW plan_cache_mode") == "force_custom_plan"
    finally:
        await store.close()


async def test_scheduler_carries_on_when_postgresql_drops_its_sessions(
    pg_server: PgServer, hypervisor: Hypervisor
) -> None:
    url = pg_server.new_database()
    store = await Store.open(url)
    await migrate(store)
    s = make_scheduler(store, hypervisor, workers=2)
    assert isinstance(s, Scheduler)
    await s.start()
    try:
        tasks: list[dict[str, Any]] = [{"name": f"t{i}", "bash": "sleep 0.3"} for i in range(4)]
        tasks.append({"name": "last", "bash": "true", "depends": [t["name"] for t in tasks]})
        xml = job_xml(tasks)
        job_id = await s.submit(parse_workflow(xml), "alice", xml.decode())
        await asyncio.sleep(0.2)
        await terminate_sessions(pg_server, url)
        assert await s.wait_job(job_id, timeout=30) == "FINISHED"
        await s.flush()
        rows = await jobstore.list_tasks(store, job_id, 0, 10)
        assert {r["status"] for r in rows} == {"FINISHED"} and len(rows) == 5
    finally:
        await s.stop()
        await store.close()


async def test_job_counts_follow_submits_and_removals(store: Store) -> None:
    """Listings' totals come from `job_counts`, kept exact by the writes themselves: a
    group commit of several owners' jobs, a single insert, removals (twice: once gone, a
    job is not taken off again)."""
    xml = job_xml([{"name": "a", "native": ["true"]}])
    job, text = parse_workflow(xml), xml.decode()
    group = [(job, "alice", text), (job, "bob", text), (job, "alice", text)]
    await jobstore.commit_jobs(store, group, 1)
    bobs = await insert(store, xml, owner="bob")
    counts = {o: await jobstore.count_jobs(store, o) for o in ("alice", "bob", "carol", "a\x00")}
    assert counts == {"alice": 2, "bob": 2, "carol": 0, "a\x00": 0}
    assert await jobstore.count_jobs(store, None) == 4
    await jobstore.delete_job(store, bobs)
    await jobstore.delete_job(store, bobs)
    assert await jobstore.count_jobs(store, "bob") == 1
    assert await jobstore.count_jobs(store, None) == 3
    real = await store.fetch_all("SELECT owner, COUNT(*) AS n FROM jobs GROUP BY owner")
    kept = await store.fetch_all("SELECT owner, jobs FROM job_counts")
    assert {r["owner"]: int(r["n"]) for r in real} == {r["owner"]: int(r["jobs"]) for r in kept}


async def test_small_reads_see_each_commit_at_once(store: Store) -> None:
    """On SQLite a small read has a connection of its own: it must see what the writer
    has just committed, as the reader connection does."""
    xml = job_xml([{"name": "a", "native": ["true"]}])
    for status in ("RUNNING", "FINISHED"):
        job_id = await insert(store, xml)
        assert await jobstore.get_job(store, job_id) is not None
        await store.execute(
            "UPDATE jobs SET status = :s WHERE id = :id", {"s": status, "id": job_id}
        )
        row = await jobstore.get_job(store, job_id)
        assert row is not None and row["status"] == status
        task = await jobstore.get_task(store, job_id, "a")
        assert task is not None and task["name"] == "a"


def done_without_waiting(coro: Coroutine[Any, Any, T]) -> T:
    """Run `coro` to its end in one step; fail if it had to wait for anything."""
    try:
        coro.send(None)
    except StopIteration as finished:
        return cast(T, finished.value)
    coro.close()
    raise AssertionError("the read waited (a hop to another thread or the network)")


async def test_small_reads_on_sqlite_stay_in_the_loop_thread(short_tmp: Path) -> None:
    """A request's key lookups on SQLite never wait for the driver's thread: under load
    each such hop waited for a loop turn and for the OS to run that thread."""
    store = await Store.open(f"sqlite+aiosqlite:///{short_tmp / 'db.sqlite'}")
    try:
        await migrate(store)
        xml = job_xml([{"name": "a", "native": ["true"]}])
        job_id = await insert(store, xml)
        row = done_without_waiting(jobstore.get_job(store, job_id))
        assert row is not None and row["id"] == job_id
        assert done_without_waiting(jobstore.get_task(store, job_id, "a")) is not None
        assert done_without_waiting(jobstore.count_jobs(store, None)) == 1
        page = done_without_waiting(jobstore.jobs_page(store, None, below=None, skip=0, count=20))
        assert [r["id"] for r in page] == [job_id] and "xml" not in page[0]
    finally:
        await store.close()


async def sqlite_store(folder: Path) -> Store:
    store = await Store.open(f"sqlite+aiosqlite:///{folder / 'db.sqlite'}")
    await migrate(store)
    return store


async def test_small_transactions_on_sqlite_stay_in_the_loop_thread(short_tmp: Path) -> None:
    """A small submit and a small status batch are committed without a thread hop: in
    the driver's thread each statement handed the GIL back and forth with a busy loop."""
    store = await sqlite_store(short_tmp)
    try:
        xml = job_xml([{"name": "a", "native": ["true"]}, {"name": "b", "native": ["true"]}])
        job, text = parse_workflow(xml), xml.decode()
        ids = done_without_waiting(jobstore.commit_jobs(store, [(job, "alice", text)] * 3, 1))
        assert len(ids) == 3 and done_without_waiting(jobstore.count_jobs(store, "alice")) == 3
        row = {**dict.fromkeys(jobstore.TASK_COLUMNS), "attempts": 1}
        row |= {"job_id": ids[0], "task_index": 1, "status": "RUNNING"}
        row |= {"max_number_of_execution": 1}
        done_without_waiting(jobstore.write_batch(store, [row], []))
        task = await store.fetch_one(  # the reader connection, in its thread
            "SELECT status FROM tasks WHERE job_id = :j AND task_index = 1", {"j": ids[0]}
        )
        assert task is not None and task["status"] == "RUNNING"
    finally:
        await store.close()


async def test_a_small_transaction_waits_for_another_process_in_the_thread(
    short_tmp: Path,
) -> None:
    """Another writer (an admin command) holds the file: the in-loop writer does not
    wait for it, the driver's thread does, and the write is done once it commits."""
    store = await sqlite_store(short_tmp)
    other = sqlite3.connect(short_tmp / "db.sqlite", isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        xml = job_xml([{"name": "a", "native": ["true"]}])
        pending = asyncio.ensure_future(
            jobstore.commit_jobs(store, [(parse_workflow(xml), "bob", xml.decode())], 1)
        )
        for _ in range(20):
            await asyncio.sleep(0)  # loop turns: it must still be waiting for the lock
        assert not pending.done()
        other.execute("COMMIT")
        [job_id] = await pending
        assert await jobstore.get_job(store, job_id) is not None
    finally:
        other.close()
        await store.close()


async def test_the_write_ahead_log_is_checkpointed_from_a_thread(short_tmp: Path) -> None:
    """The in-loop writer never checkpoints (that fsyncs); the store does, past a size,
    so the log does not grow without end."""
    store = await sqlite_store(short_tmp)
    store.CHECKPOINT_WAL_BYTES = 64 * 1024
    wal = short_tmp / "db.sqlite-wal"
    try:
        xml = job_xml([{"name": "a", "native": ["true"]}])
        job, text = parse_workflow(xml), xml.decode() + "<!--" + "x" * 8000 + "-->"
        biggest = 0
        for _ in range(300):  # ~2.4 MB of workflows, in small transactions
            await jobstore.commit_jobs(store, [(job, "alice", text)], 1)
            while (running := store._checkpointing) is not None:
                await running
            biggest = max(biggest, wal.stat().st_size)
        assert await jobstore.count_jobs(store, "alice") == 300
        assert biggest < 1024 * 1024, biggest
    finally:
        await store.close()


async def test_a_small_submit_is_committed_in_the_submitting_task(
    short_tmp: Path, hypervisor: Hypervisor
) -> None:
    """On SQLite, with nothing else being written, a small job is committed and live
    before `submit` first waits for anything: handing it to the group writer's task
    cost a loop turn to start and one to answer (each ~10 ms under the soak's load)."""
    store = await sqlite_store(short_tmp)
    s = make_scheduler(store, hypervisor, workers=2)
    await s.start()
    try:
        xml = job_xml([{"name": "a", "bash": "true"}, {"name": "b", "bash": "true"}])
        job_id = done_without_waiting(s.submit(parse_workflow(xml), "alice", xml.decode()))
        assert s.is_live(job_id)
        more = await asyncio.gather(
            *(s.submit(parse_workflow(xml), "bob", xml.decode()) for _ in range(5))
        )
        assert more == list(range(job_id + 1, job_id + 6))
        for one in (job_id, *more):
            assert await s.wait_job(one, timeout=30) == "FINISHED"
        assert await jobstore.count_jobs(store, None) == 6
    finally:
        await s.stop()
        await store.close()
