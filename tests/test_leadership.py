"""The leader lock on a real PostgreSQL, in process: one holder, who it is, fencing,
waiting through a lost session, and the hand-over on close (`leadership.py`)."""

from __future__ import annotations

import asyncio

import asyncpg
from harness import wait_for_async
from pgserver import PgServer

from simple_scheduler.leadership import Holder, Leadership
from simple_scheduler.store.dbengine import postgres_connect_kwargs


async def terminate(url: str, *, pid: int | None = None, name: str | None = None) -> None:
    """End a session of the database (by backend pid, or by its application_name)."""
    conn = await asyncpg.connect(**postgres_connect_kwargs(url))
    try:
        if name is not None:
            pid = await conn.fetchval(
                "SELECT pid FROM pg_stat_activity WHERE application_name = $1", name
            )
        assert pid is not None
        assert await conn.fetchval("SELECT pg_terminate_backend($1)", pid)
    finally:
        await conn.close()


async def test_one_holder_named_by_its_url_and_key(pg_server: PgServer) -> None:
    url = pg_server.new_database()
    a = Leadership(url, url="http://a.example:8000/rest")
    b = Leadership(url, url="http://b.example:8000/rest")
    await a.connect()
    await b.connect()
    try:
        await a.sign_as("01234567")
        assert await b.holder() is None
        assert await a.try_lock() and not await b.try_lock()
        holder = await b.holder()
        assert holder is not None
        assert (holder.fingerprint, holder.url) == ("01234567", "http://a.example:8000/rest")
        # A URL too long for application_name (63 bytes) is left out, not cut.
        long = Leadership(url, url="http://" + "x" * 80 + ":8000/rest")
        await long.connect()
        try:
            await long.sign_as("fedcba98")
            await a.close()
            assert await long.try_lock()
            cut = await b.holder()
            assert cut is not None and (cut.fingerprint, cut.url) == ("fedcba98", None)
        finally:
            await long.close()
    finally:
        await a.close()
        await b.close()


async def test_a_terminated_session_fences_and_the_waiter_takes_over(
    pg_server: PgServer,
) -> None:
    url = pg_server.new_database()
    leader = Leadership(url, url="http://leader/rest")
    standby = Leadership(url, url="http://standby/rest")
    lost: list[str] = []
    seen: list[Holder | None] = []
    await leader.connect()
    assert await leader.try_lock()
    leader.guard(lost.append)
    waiting = asyncio.create_task(standby.wait_for_lock(seen.append))

    async def looked() -> bool:
        return bool(seen)

    async def heard() -> bool:
        return bool(lost)

    try:
        await wait_for_async(looked, 30, "the standby to look")
        first = seen[-1]
        assert first is not None and first.url == "http://leader/rest"
        # The standby's own session ends: it must open another and keep waiting (the
        # takeover below proves it did).
        await terminate(url, name="ssched - http://standby/rest")
        # The leader's session terminated: it is told (fencing), once.
        await terminate(url, pid=first.pid)
        await wait_for_async(heard, 30, "the leader to hear")
        await asyncio.wait_for(waiting, 30)
        assert standby.held
        holder = await standby.holder()
        assert holder is not None and holder.pid != first.pid
        assert len(lost) == 1 and "closed" in lost[0]
    finally:
        waiting.cancel()
        await leader.close()
        await standby.close()


async def test_close_hands_the_lock_over_without_fencing(pg_server: PgServer) -> None:
    url = pg_server.new_database()
    leader = Leadership(url, url="http://leader/rest")
    standby = Leadership(url, url="http://standby/rest")
    lost: list[str] = []
    await leader.connect()
    assert await leader.try_lock()
    leader.guard(lost.append)
    waiting = asyncio.create_task(standby.wait_for_lock(lambda holder: None))
    try:
        await leader.close()
        await asyncio.wait_for(waiting, 30)
        assert standby.held and lost == []
    finally:
        waiting.cancel()
        await standby.close()
