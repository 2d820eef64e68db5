"""Apply the numbered SQL files of `migrations/` to a store, in order, each exactly once.

Files are named `NNNN_name.sql` and shipped as the `simple_scheduler.migrations` package
(setup.py maps the top-level folder there), so the runner finds them the same way in a
checkout, an editable install and a wheel. Applied versions are recorded in
`schema_migrations`; each file runs in one transaction together with its bookkeeping row,
so a failure leaves the database exactly at the previous version (SQLite and PostgreSQL
both have transactional DDL). A database that has seen a newer file than this code ships
is refused: older code must not write into a schema it does not know.

The SQL is portable; where an engine needs different SQL, the version carries a file for
it beside the generic one, `NNNN_name.postgresql.sql` (or `.sqlite.sql`), which the runner
takes instead on that engine. On PostgreSQL, runners of several servers starting at once
take turns (an advisory lock); on SQLite the bookkeeping row's insert settles it.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.resources import files

from simple_scheduler.store.db import Store
from simple_scheduler.store.dbengine import DATABASE_ERRORS, ENGINES, MIGRATION_LOCK_KEY, Engine

MIGRATIONS_PACKAGE = "simple_scheduler.migrations"

_FILE_NAME = re.compile(
    r"^(?P<version>\d{4})_(?P<name>[A-Za-z0-9_]+)(?:\.(?P<engine>[a-z]+))?\.sql$"
)

_CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version     INTEGER PRIMARY KEY,
    name        TEXT NOT NULL,
    applied_at  BIGINT NOT NULL
)
"""


class MigrationError(Exception):
    """The schema cannot be brought to the version this code expects."""


@dataclass(frozen=True)
class Migration:
    """One numbered SQL file."""

    version: int
    name: str
    sql: str

    @property
    def statements(self) -> list[str]:
        return split_statements(self.sql)


def split_statements(sql: str) -> list[str]:
    """Split a SQL script into statements, dropping `--` comments.

    A statement ends at a `;` that closes a line (only blanks or a comment after it) and
    is outside a quoted string or identifier; quotes are tracked so `'--'` and `';'`
    inside literals survive.
    """
    statements: list[str] = []
    current: list[str] = []
    quote: str | None = None
    i, n = 0, len(sql)
    while i < n:
        c = sql[i]
        if quote is not None:
            current.append(c)
            if c == quote:
                quote = None  # a doubled quote ('') closes and reopens: same result
            i += 1
        elif c in ("'", '"'):
            quote = c
            current.append(c)
            i += 1
        elif sql.startswith("--", i):
            end = sql.find("\n", i)
            i = n if end < 0 else end  # keep the newline itself
        elif c == ";" and _rest_of_line_is_blank(sql, i + 1):
            _flush(current, statements)
            i += 1
        else:
            current.append(c)
            i += 1
    if quote is not None:
        raise MigrationError(f"unterminated {quote} quote in SQL script")
    _flush(current, statements)
    return statements


def _rest_of_line_is_blank(sql: str, start: int) -> bool:
    end = sql.find("\n", start)
    rest = sql[start:] if end < 0 else sql[start:end]
    rest = rest.split("--", 1)[0]
    return not rest.strip()


def _flush(current: list[str], statements: list[str]) -> None:
    text = "".join(current).strip()
    current.clear()
    if text:
        statements.append(text)


def available_migrations(
    package: str = MIGRATIONS_PACKAGE, engine: Engine = "sqlite"
) -> list[Migration]:
    """The migration files shipped with this code for `engine`, sorted by version.

    Each version has one generic file, and may have one per engine that replaces it there.
    """
    generic: dict[int, Migration] = {}
    specific: dict[int, Migration] = {}
    names: dict[int, str] = {}
    for entry in sorted(files(package).iterdir(), key=lambda e: e.name):
        match = _FILE_NAME.match(entry.name)
        if match is None:
            if entry.name.endswith(".sql"):
                raise MigrationError(
                    f"migration file {entry.name!r} is not named NNNN_name.sql "
                    f"or NNNN_name.<engine>.sql"
                )
            continue
        version = int(match["version"])
        name = f"{match['version']}_{match['name']}"
        if names.setdefault(version, name) != name:
            raise MigrationError(
                f"two migration files have version {version}: {names[version]} and {entry.name}"
            )
        if match["engine"] is not None and match["engine"] not in ENGINES:
            raise MigrationError(
                f"migration file {entry.name!r} names an unknown engine "
                f"(known: {', '.join(ENGINES)})"
            )
        if match["engine"] is not None and match["engine"] != engine:
            continue  # another engine's variant
        into = generic if match["engine"] is None else specific
        into[version] = Migration(version, name, entry.read_text("utf-8"))
    missing = sorted(set(names) - set(generic))
    if missing:
        raise MigrationError(
            f"migration {names[missing[0]]} has no generic file ({names[missing[0]]}.sql); "
            f"engine files only replace it"
        )
    return [specific.get(v, generic[v]) for v in sorted(names)]


async def _ensure_table(store: Store) -> None:
    async with store.transaction() as tx:
        await tx.execute_raw(_CREATE_TABLE)


async def applied_versions(store: Store) -> list[int]:
    """Versions recorded in the database, ascending (creates the bookkeeping table)."""
    await _ensure_table(store)
    async with store.transaction() as tx:  # the writer: sees the table it just made
        rows = await tx.fetch_all("SELECT version FROM schema_migrations ORDER BY version")
    return [int(row["version"]) for row in rows]


async def schema_version(store: Store) -> int:
    """The highest applied version, 0 for a database never migrated."""
    versions = await applied_versions(store)
    return versions[-1] if versions else 0


async def migrate(store: Store, migrations: Sequence[Migration] | None = None) -> list[int]:
    """Apply every pending migration in order; return the versions applied now.

    `migrations` defaults to the shipped files for the store's engine (tests pass their
    own).
    """
    if store.engine == "postgresql":
        # Servers sharing the database may start together: one migrates, the others wait
        # and then find nothing to do. A session lock, held across the transactions.
        async with store.transaction() as tx:
            await tx.fetch_val("SELECT pg_advisory_lock(:key)", {"key": MIGRATION_LOCK_KEY})
        try:
            return await _migrate(store, migrations)
        finally:
            # A lost connection has dropped the lock already; keep the first error.
            with contextlib.suppress(*DATABASE_ERRORS):
                async with store.transaction() as tx:
                    await tx.fetch_val(
                        "SELECT pg_advisory_unlock(:key)", {"key": MIGRATION_LOCK_KEY}
                    )
    return await _migrate(store, migrations)


async def _migrate(store: Store, migrations: Sequence[Migration] | None) -> list[int]:
    todo = (
        available_migrations(engine=store.engine)
        if migrations is None
        else sorted(migrations, key=lambda m: m.version)
    )
    applied = set(await applied_versions(store))
    newest_known = todo[-1].version if todo else 0
    newest_applied = max(applied, default=0)
    if newest_applied > newest_known:
        raise MigrationError(
            f"the database is at schema version {newest_applied}, newer than this code "
            f"knows (its newest migration is {newest_known}); upgrade simple-scheduler "
            f"or use a database made by this version"
        )
    done: list[int] = []
    for migration in todo:
        if migration.version in applied:
            continue
        await _apply(store, migration)
        done.append(migration.version)
    return done


async def _apply(store: Store, migration: Migration) -> None:
    statements = migration.statements
    try:
        async with store.transaction() as tx:
            # The bookkeeping row first: it takes the write lock before anything is read,
            # and a concurrent runner that applied this version makes it fail cleanly.
            await tx.execute(
                "INSERT INTO schema_migrations (version, name, applied_at) "
                "VALUES (:version, :name, :applied_at)",
                {
                    "version": migration.version,
                    "name": migration.name,
                    "applied_at": int(time.time() * 1000),
                },
            )
            for number, statement in enumerate(statements, start=1):
                try:
                    await tx.execute_raw(statement)
                except Exception as exc:
                    raise MigrationError(
                        f"migration {migration.name}.sql failed at statement {number} of "
                        f"{len(statements)} ({_first_line(statement)}): {exc}; "
                        f"nothing of it was applied"
                    ) from exc
    except MigrationError:
        raise
    except Exception as exc:
        raise MigrationError(
            f"migration {migration.name}.sql could not be recorded: {exc} "
            f"(another process migrating at the same time? run again)"
        ) from exc


def _first_line(statement: str) -> str:
    line = statement.splitlines()[0].strip()
    return line if len(line) <= 80 else line[:77] + "..."
