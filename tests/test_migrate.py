"""The migration runner on real SQLite files: fresh, up to date, newer, failing."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import pytest

from simple_scheduler.store.db import Store
from simple_scheduler.store.migrate import (
    Migration,
    MigrationError,
    available_migrations,
    migrate,
    schema_version,
    split_statements,
)

T = TypeVar("T")


def with_store(path: Path, work: Callable[[Store], Awaitable[T]]) -> T:
    async def main() -> T:
        store = await Store.open(f"sqlite+aiosqlite:///{path}")
        try:
            return await work(store)
        finally:
            await store.close()

    return asyncio.run(main())


async def tables(store: Store) -> set[str]:
    rows = await store.fetch_all("SELECT name FROM sqlite_master WHERE type = 'table'")
    return {str(r["name"]) for r in rows}


def test_split_statements_drops_comments_and_keeps_literals() -> None:
    sql = (
        "-- header comment; with a semicolon;\n"
        "CREATE TABLE a (\n"
        "    x TEXT DEFAULT 'a;b', -- trailing; comment\n"
        "    y TEXT DEFAULT '--not a comment'\n"
        ");\n"
        "INSERT INTO a (x) VALUES ('it''s; fine');  -- done\n"
        "\n"
        "SELECT 1"
    )
    assert split_statements(sql) == [
        "CREATE TABLE a (\n    x TEXT DEFAULT 'a;b', \n    y TEXT DEFAULT '--not a comment'\n)",
        "INSERT INTO a (x) VALUES ('it''s; fine')",
        "SELECT 1",
    ]


def test_split_statements_rejects_unterminated_quote() -> None:
    with pytest.raises(MigrationError, match="unterminated"):
        split_statements("INSERT INTO a VALUES ('oops);\n")


def test_shipped_migrations_are_found_in_order() -> None:
    found = available_migrations()
    assert found[0].version == 1 and found[0].name == "0001_initial"
    assert [m.version for m in found] == sorted({m.version for m in found})
    assert any(s.startswith("CREATE TABLE users") for s in found[0].statements)


def test_empty_database_is_migrated_then_up_to_date(tmp_path: Path) -> None:
    db = tmp_path / "db.sqlite"
    newest = available_migrations()[-1].version

    async def first(store: Store) -> tuple[int, list[int], int, set[str]]:
        before = await schema_version(store)
        applied = await migrate(store)
        return before, applied, await schema_version(store), await tables(store)

    before, applied, after, names = with_store(db, first)
    assert before == 0
    assert applied == [m.version for m in available_migrations()]
    assert after == newest
    assert {"users", "jobs", "tasks", "dependencies", "revoked_tokens"} <= names

    async def again(store: Store) -> tuple[list[int], int, int]:
        applied = await migrate(store)
        count = await store.fetch_val("SELECT COUNT(*) FROM schema_migrations")
        return applied, await schema_version(store), int(count)

    assert with_store(db, again) == ([], newest, len(available_migrations()))


def test_database_newer_than_code_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "db.sqlite"
    newest = available_migrations()[-1].version

    async def work(store: Store) -> None:
        await migrate(store)
        await store.execute(
            "INSERT INTO schema_migrations (version, name, applied_at) VALUES (99, 'x', 0)"
        )
        await migrate(store)

    with pytest.raises(MigrationError) as info:
        with_store(db, work)
    assert "99" in str(info.value) and f"is {newest})" in str(info.value)


def test_failing_migration_leaves_nothing_half_applied(tmp_path: Path) -> None:
    good = Migration(1, "0001_good", "CREATE TABLE a (x INTEGER);\n")
    bad = Migration(
        2,
        "0002_bad",
        "CREATE TABLE b (x INTEGER);\n"
        "INSERT INTO a (x) VALUES (1);\n"
        "INSERT INTO nosuch VALUES (1);\n",
    )
    later = Migration(3, "0003_later", "CREATE TABLE c (x INTEGER);\n")

    async def work(store: Store) -> tuple[str, int, set[str], int]:
        with pytest.raises(MigrationError) as info:
            await migrate(store, [good, bad, later])
        count = await store.fetch_val("SELECT COUNT(*) FROM a")
        return str(info.value), await schema_version(store), await tables(store), int(count)

    message, version, names, rows = with_store(tmp_path / "db.sqlite", work)
    assert "0002_bad.sql" in message and "statement 3 of 3" in message
    assert version == 1
    assert "a" in names and "b" not in names and "c" not in names
    assert rows == 0  # the INSERT of the failed file was rolled back too


def test_pending_migrations_apply_in_order_and_keep_colons(tmp_path: Path) -> None:
    # `:b` inside a literal must not be taken for a bind parameter.
    m1 = Migration(1, "0001_a", "CREATE TABLE t (x TEXT DEFAULT 'a:b');\n")
    m2 = Migration(2, "0002_b", "INSERT INTO t DEFAULT VALUES;\n")

    async def work(store: Store) -> tuple[list[int], list[int], str]:
        first = await migrate(store, [m1])
        second = await migrate(store, [m2, m1])
        value = await store.fetch_val("SELECT x FROM t")
        return first, second, str(value)

    assert with_store(tmp_path / "db.sqlite", work) == ([1], [2], "a:b")
