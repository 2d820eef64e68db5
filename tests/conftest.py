"""Shared fixtures: a short temporary folder, a real hypervisor process, a migrated SQLite
file; and the session-end check that no process of this run survives it.


The store is parametrized over both engines: a SQLite file, and a fresh database on a
PostgreSQL server started once per session (`pgserver.py`). Every test that uses `store`
or `database_url` runs on each. `SIMPLE_SCHEDULER_TEST_DATABASES=sqlite` (comma-separated)
narrows the set for a quick local run. Without PostgreSQL its variants skip, saying why,
except in CI (`CI` set), where they fail.

The machinery (waiting, folders, the hypervisor class, finding processes) is in
`harness.py`; this module only turns it into fixtures.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import harness
import pytest
from harness import TOKEN_VAR, Hypervisor
from pgserver import PgServer, PgUnavailable, start_server

from simple_scheduler.store.db import Store

# Every process this run starts inherits the run's token (unless a test gives it its own,
# which starts with it): the session-end check finds them by it.
os.environ[TOKEN_VAR] = harness.RUN_TOKEN


@pytest.fixture(scope="session", autouse=True)
def no_process_survives_the_run() -> Iterator[None]:
    """Fail the run if a hypervisor, monitor or task it started is still alive at the end
    (after every fixture's teardown, which should have ended them)."""
    yield
    with contextlib.suppress(AssertionError):
        harness.wait_for(lambda: not harness.survivors(), 10, "this run's processes to end")
    left = harness.survivors()
    for line in left:  # ended here, so that the next run starts clean
        with contextlib.suppress(OSError):
            os.kill(int(line.split()[0]), signal.SIGKILL)
    if left:
        pytest.fail("processes of this test run survived it:\n" + "\n".join(left), pytrace=False)


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    """A short temporary folder (AF_UNIX socket paths are limited to 108 bytes); every
    process working inside it is killed at teardown."""
    with harness.short_tmp() as root:
        yield root


@pytest.fixture
def run_token() -> str:
    return harness.new_token()


@pytest.fixture
def hypervisor(short_tmp: Path, run_token: str) -> Iterator[Hypervisor]:
    """A running hypervisor; every process of the test is killed at teardown."""
    hv = Hypervisor(short_tmp, run_token)
    hv.start()
    try:
        yield hv
    finally:
        hv.kill()
        harness.kill_under(short_tmp, run_token)


def store_engines() -> list[str]:
    """The engines store tests run on: both, unless SIMPLE_SCHEDULER_TEST_DATABASES narrows."""
    wanted = os.environ.get("SIMPLE_SCHEDULER_TEST_DATABASES", "sqlite,postgresql")
    engines = [e.strip() for e in wanted.split(",") if e.strip()]
    unknown = set(engines) - {"sqlite", "postgresql"}
    if unknown or not engines:
        raise pytest.UsageError(f"SIMPLE_SCHEDULER_TEST_DATABASES: unknown {sorted(unknown)}")
    return engines


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """One PostgreSQL server for the session; in CI, failing to start it fails the tests."""
    try:
        server = start_server()
    except PgUnavailable as exc:
        if in_ci():
            pytest.fail(f"PostgreSQL could not be started (required in CI): {exc}", pytrace=False)
        pytest.skip(f"PostgreSQL not available: {exc}")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(params=store_engines())
def engine(request: pytest.FixtureRequest) -> str:
    """The store engine of this variant of the test."""
    return str(request.param)


@pytest.fixture
def database_url(engine: str, request: pytest.FixtureRequest, short_tmp: Path) -> str:
    """An empty database: a SQLite file in the test's folder, or a new PostgreSQL database."""
    if engine == "sqlite":
        return f"sqlite+aiosqlite:///{short_tmp / 'db.sqlite'}"
    server: PgServer = request.getfixturevalue("pg_server")
    return server.new_database()


@pytest.fixture
async def store(
    engine: str, request: pytest.FixtureRequest, short_tmp: Path
) -> AsyncIterator[object]:
    """A migrated store (on PostgreSQL, a copy of a database migrated once per session)."""
    from simple_scheduler.store.migrate import migrate

    if engine == "sqlite":
        url = f"sqlite+aiosqlite:///{short_tmp / 'db.sqlite'}"
    else:
        server: PgServer = request.getfixturevalue("pg_server")
        url = server.migrated_database()
    db = await Store.open(url)
    await migrate(db)  # a no-op on the copy, but checks it is current
    try:
        yield db
    finally:
        await db.close()
