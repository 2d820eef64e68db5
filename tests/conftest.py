"""Shared fixtures: a real hypervisor process, a migrated store, a running scheduler.

The store is parametrized over both engines: a SQLite file, and a fresh database on a
PostgreSQL server started once per session (`pgserver.py`). Every test that uses `store`
or `database_url` runs on each. `SIMPLE_SCHEDULER_TEST_DATABASES=sqlite` (comma-separated)
narrows the set for a quick local run. Without PostgreSQL its variants skip, saying why,
except in CI (`CI` set), where they fail.

Every process a test starts is found and killed at teardown, even when the test fails:
the hypervisor runs with its working directory inside the test's own temporary folder,
so its monitors and their tasks do too (or carry the run's token in their environment).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import psutil
import pytest
from exec_fixtures import kill_under
from pgserver import PgServer, PgUnavailable, start_server

SHARED = Path(__file__).resolve().parents[2] / "shared"
TOKEN_VAR = "SIMPLE_SCHEDULER_TEST_RUN"


def kill_everything_under(root: Path, token: str) -> None:
    """SIGKILL every process of this test: cwd under `root`, or the token in its env
    (a task run in a working directory elsewhere)."""
    kill_under(os.path.realpath(root))
    me = os.getpid()
    for proc in psutil.process_iter(["pid"]):
        if proc.pid == me:
            continue
        try:
            mine = proc.environ().get(TOKEN_VAR) == token
        except (psutil.Error, OSError):
            continue
        if mine:
            with contextlib.suppress(psutil.Error, OSError):
                proc.kill()


class Hypervisor:
    """A real `simple-scheduler hypervisor` process that a test may kill and restart."""

    def __init__(self, root: Path, token: str) -> None:
        self.root = root
        self.token = token
        self.socket_path = str(root / "hv.sock")
        self.process_directory = root / "tasks"
        self.process_directory.mkdir(exist_ok=True)
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = dict(os.environ, **{TOKEN_VAR: self.token})
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "simple_scheduler",
                "hypervisor",
                "--socket",
                self.socket_path,
                "--process-directory",
                str(self.process_directory),
            ],
            cwd=self.root,
            env=env,
            start_new_session=True,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"hypervisor exited with {self.proc.returncode}")
            with contextlib.suppress(OSError), socket.socket(socket.AF_UNIX) as s:
                s.connect(self.socket_path)
                return
            time.sleep(0.02)
        raise RuntimeError("hypervisor did not listen in time")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(10)

    def stop(self) -> None:
        self.kill(signal.SIGKILL)


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    """A short temporary folder (AF_UNIX socket paths are limited to 108 bytes)."""
    path = Path(tempfile.mkdtemp(prefix="ss-", dir="/tmp"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def run_token() -> str:
    return uuid.uuid4().hex


@pytest.fixture
def hypervisor(short_tmp: Path, run_token: str) -> Iterator[Hypervisor]:
    hv = Hypervisor(short_tmp, run_token)
    hv.start()
    try:
        yield hv
    finally:
        hv.stop()
        kill_everything_under(short_tmp, run_token)


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
    from simple_scheduler.db import Store
    from simple_scheduler.migrate import migrate

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


def make_scheduler(store: object, hv: Hypervisor, workers: int = 4, grace: float = 1.0) -> object:
    from simple_scheduler.scheduler import Scheduler

    return Scheduler.with_hypervisor(
        store,  # type: ignore[arg-type]
        hv.socket_path,
        process_directory=hv.process_directory,
        nb_of_workers=workers,
        kill_grace=grace,
        base_env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), TOKEN_VAR: hv.token},
    )
