"""The migration runner on real databases (a SQLite file, a PostgreSQL database): fresh,
up to date, newer, failing; and the choice of per-engine files."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import pytest

from simple_scheduler.store.db import Store
from simple_scheduler.store.dbengine import engine_of
from simple_scheduler.store.migrate import (
    Migration,
    MigrationError,
    available_migrations,
    migrate,
    schema_version,
    split_statements,
)

T = TypeVar("T")


def with_store(url: str, work: Callable[[Store], Awaitable[T]]) -> T:
    async def main() -> T:
        store = await Store.open(url)
        try:
            return await work(store)
        finally:
            await store.close()

    return asyncio.run(main())


async def tables(store: Store) -> set[str]:
    if store.engine == "postgresql":
        query = "SELECT tablename AS name FROM pg_tables WHERE schemaname = 'public'"
    else:
        query = "SELECT name FROM sqlite_master WHERE type = 'table'"
    return {str(r["name"]) for r in await store.fetch_all(query)}


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


def test_empty_database_is_migrated_then_up_to_date(database_url: str) -> None:
    db = database_url
    engine = engine_of(db)
    newest = available_migrations(engine=engine)[-1].version

    async def first(store: Store) -> tuple[int, list[int], int, set[str]]:
        before = await schema_version(store)
        applied = await migrate(store)
        return before, applied, await schema_version(store), await tables(store)

    before, applied, after, names = with_store(db, first)
    assert before == 0
    assert applied == [m.version for m in available_migrations(engine=engine)]
    assert after == newest
    assert {"users", "jobs", "tasks", "dependencies", "revoked_tokens"} <= names

    async def again(store: Store) -> tuple[list[int], int, int]:
        applied = await migrate(store)
        count = await store.fetch_val("SELECT COUNT(*) FROM schema_migrations")
        return applied, await schema_version(store), int(count)

    assert with_store(db, again) == ([], newest, len(available_migrations(engine=engine)))


def test_database_newer_than_code_is_refused(database_url: str) -> None:
    db = database_url
    newest = available_migrations(engine=engine_of(db))[-1].version

    async def work(store: Store) -> None:
        await migrate(store)
        await store.execute(
            "INSERT INTO schema_migrations (version, name, applied_at) VALUES (99, 'x', 0)"
        )
        await migrate(store)

    with pytest.raises(MigrationError) as info:
        with_store(db, work)
    assert "99" in str(info.value) and f"is {newest})" in str(info.value)


def test_failing_migration_leaves_nothing_half_applied(database_url: str) -> None:
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

    message, version, names, rows = with_store(database_url, work)
    assert "0002_bad.sql" in message and "statement 3 of 3" in message
    assert version == 1
    assert "a" in names and "b" not in names and "c" not in names
    assert rows == 0  # the INSERT of the failed file was rolled back too


def test_pending_migrations_apply_in_order_and_keep_colons(database_url: str) -> None:
    # `:b` inside a literal must not be taken for a bind parameter.
    m1 = Migration(1, "0001_a", "CREATE TABLE t (x TEXT DEFAULT 'a:b');\n")
    m2 = Migration(2, "0002_b", "INSERT INTO t DEFAULT VALUES;\n")

    async def work(store: Store) -> tuple[list[int], list[int], str]:
        first = await migrate(store, [m1])
        second = await migrate(store, [m2, m1])
        value = await store.fetch_val("SELECT x FROM t")
        return first, second, str(value)

    assert with_store(database_url, work) == ([1], [2], "a:b")


def test_job_counts_are_filled_from_the_jobs_already_kept(database_url: str) -> None:
    """A server upgraded with jobs in its store lists the right totals at once."""
    shipped = available_migrations(engine=engine_of(database_url))
    before = [m for m in shipped if m.version < 3]
    columns = (
        "owner, name, priority, status, on_task_error, max_number_of_execution, variables,"
        " generic_information, xml, submitted_time, total_tasks, pending_tasks,"
        " running_tasks, finished_tasks, faulty_tasks, failed_tasks, in_error_tasks"
    )

    async def work(store: Store) -> dict[str, int]:
        await migrate(store, before)
        for job_id, owner in enumerate(["alice", "bob", "alice", "alice"], start=1):
            await store.execute(
                f"INSERT INTO jobs (id, {columns}) VALUES (:id, :owner, 'j', 'normal',"
                " 'FINISHED', 'none', 1, '{}', '{}', '<job/>', 1, 0, 0, 0, 0, 0, 0, 0)",
                {"id": job_id, "owner": owner},
            )
        await migrate(store)
        rows = await store.fetch_all("SELECT owner, jobs FROM job_counts")
        return {str(r["owner"]): int(r["jobs"]) for r in rows}

    assert with_store(database_url, work) == {"alice": 3, "bob": 1}


def migrations_package(root: Path, files: dict[str, str]) -> str:
    """A throwaway package of migration files, importable from `root` (a fresh name each
    time: importlib caches packages by name)."""
    package = root / f"fake_migrations_{uuid.uuid4().hex}"
    package.mkdir()
    (package / "__init__.py").write_text("")
    for name, sql in files.items():
        (package / name).write_text(sql)
    return package.name


def test_an_engine_file_replaces_the_generic_one_on_its_engine(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(tmp_path))
    package = migrations_package(
        tmp_path,
        {
            "0001_a.sql": "CREATE TABLE a (x TEXT);\n",
            "0001_a.postgresql.sql": "CREATE TABLE a (x JSONB);\n",
            "0002_b.sql": "CREATE TABLE b (x TEXT);\n",
            "0002_b.sqlite.sql": "CREATE TABLE b (x BLOB);\n",
        },
    )
    on_sqlite = available_migrations(package, "sqlite")
    on_postgres = available_migrations(package, "postgresql")
    assert [(m.version, m.name) for m in on_sqlite] == [(1, "0001_a"), (2, "0002_b")]
    assert [m.name for m in on_postgres] == ["0001_a", "0002_b"]
    assert [m.sql for m in on_sqlite] == [
        "CREATE TABLE a (x TEXT);\n",
        "CREATE TABLE b (x BLOB);\n",
    ]
    assert [m.sql for m in on_postgres] == [
        "CREATE TABLE a (x JSONB);\n",
        "CREATE TABLE b (x TEXT);\n",
    ]


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"0001_a.postgresql.sql": "SELECT 1;\n"}, "has no generic file"),
        ({"0001_a.sql": "", "0001_a.mysql.sql": ""}, "unknown engine"),
        ({"0001_a.sql": "", "0001_b.postgresql.sql": ""}, "two migration files have version 1"),
        ({"0001_a.sql": "", "1_b.sql": ""}, "is not named NNNN_name.sql"),
    ],
)
def test_inconsistent_engine_files_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, files: dict[str, str], message: str
) -> None:
    monkeypatch.syspath_prepend(str(tmp_path))
    package = migrations_package(tmp_path, files)
    with pytest.raises(MigrationError, match=message):
        available_migrations(package, "postgresql")


def test_shipped_files_differ_only_where_an_engine_needs_it() -> None:
    sqlite = available_migrations(engine="sqlite")
    postgres = available_migrations(engine="postgresql")
    assert [m.name for m in sqlite] == [m.name for m in postgres]
    differ = [m.name for m, p in zip(sqlite, postgres, strict=True) if m.sql != p.sql]
    assert differ == ["0002_unbounded_job_names"]
    assert postgres[1].statements == ["ALTER TABLE jobs ALTER COLUMN name TYPE TEXT"]
    assert sqlite[1].statements == []
