"""A throwaway PostgreSQL server for the tests: initdb + pg_ctl in a temporary folder.

One server per test session (initdb costs about a second), one fresh database per test
(`CREATE DATABASE` costs milliseconds). The server listens on a Unix socket only, in its
own folder, so it never competes for a TCP port and nothing outside can reach it; it is
tuned for throwaway data (no fsync) and stopped with `pg_ctl stop -m immediate` at the
end of the session, leaving no process behind. If the test process dies without its
teardown (SIGTERM from a CI timeout, SIGKILL), a watchdog started beside the server
stops it and removes its folder once that process is gone.

initdb refuses to run as root, and tests run as root in CI: then the server runs as the
`postgres` user created by Debian's package (through `runuser`), in a folder it owns.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import itertools
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import threading
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

#: Unprivileged account that runs the server when the tests run as root.
SERVER_USER = "postgres"
#: The socket is `<socket dir>/.s.PGSQL.<port>`; nothing listens on TCP.
PORT = 5432
#: Throwaway data: nothing needs to survive a crash of the machine.
FAST_SETTINGS = {
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "200",
    "shared_buffers": "32MB",
}


class PgUnavailable(Exception):
    """PostgreSQL could not be started here; the message says why."""


def find_bindir() -> Path | None:
    """The folder holding initdb/pg_ctl: $SIMPLE_SCHEDULER_TEST_PG_BINDIR if set, else
    Debian's newest versioned folder, else PATH."""
    chosen = os.environ.get("SIMPLE_SCHEDULER_TEST_PG_BINDIR")
    if chosen:
        return Path(chosen) if (Path(chosen) / "initdb").exists() else None
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0,
    )
    if candidates:
        return Path(candidates[-1]).parent
    found = shutil.which("initdb")
    return Path(os.path.realpath(found)).parent if found else None


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to its end from sync code, even inside a running event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    result: list[T] = []
    error: list[BaseException] = []

    def target() -> None:
        try:
            result.append(asyncio.run(coro))
        except BaseException as exc:
            error.append(exc)

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if error:
        raise error[0]
    return result[0]


class PgServer:
    """A private PostgreSQL cluster; `new_database()` hands out empty databases."""

    def __init__(self, bindir: Path, settings: dict[str, str] | None = None) -> None:
        self.bindir = bindir
        self.settings = FAST_SETTINGS if settings is None else settings
        self.root = Path(tempfile.mkdtemp(prefix="ss-pg-", dir="/tmp"))
        self.data = self.root / "data"
        self.socket_dir = self.root / "sock"
        self._names = itertools.count(1)
        self._as_user: list[str] = []
        self._file_copy = True
        self._migrated: str | None = None
        self._watchdog: subprocess.Popen[bytes] | None = None
        self.started = False

    def _run(self, *args: str, timeout: float = 60) -> None:
        proc = subprocess.run(
            [*self._as_user, *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
        if proc.returncode != 0:
            raise PgUnavailable(
                f"{Path(args[0]).name} exited with {proc.returncode}: "
                f"{(proc.stderr or proc.stdout).strip()[-2000:]}"
            )

    def start(self) -> None:
        if os.geteuid() == 0:
            try:
                account = pwd.getpwnam(SERVER_USER)
            except KeyError:
                raise PgUnavailable(
                    f"running as root and there is no {SERVER_USER!r} user to run initdb"
                ) from None
            os.chown(self.root, account.pw_uid, account.pw_gid)
            self._as_user = ["runuser", "-u", SERVER_USER, "--"]
        self._run(
            str(self.bindir / "initdb"),
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",
            "--no-instructions",
        )
        # Creates the socket folder as the server's user (it must own it).
        self._run("mkdir", "-m", "0700", str(self.socket_dir))
        options = " ".join(
            [
                "-c listen_addresses=''",
                f"-c unix_socket_directories={self.socket_dir}",
                f"-p {PORT}",
                *(f"-c {key}={value}" for key, value in self.settings.items()),
            ]
        )
        self._run(
            str(self.bindir / "pg_ctl"),
            "-D",
            str(self.data),
            "-l",
            str(self.root / "server.log"),
            "-o",
            options,
            "-w",
            "-t",
            "60",
            "start",
            timeout=90,
        )
        self.started = True
        self._watch(os.getpid())

    def _watch(self, owner: int) -> None:
        """Stop the server once `owner` is gone, whatever killed it (own session, so a
        signal to the test's process group does not take the watchdog too)."""
        script = (
            'owner=$1 root=$2; shift 2; while kill -0 "$owner" 2>/dev/null; do sleep 1; done; '
            '"$@" >/dev/null 2>&1; rm -rf "$root"'
        )
        stop = [*self._as_user, str(self.bindir / "pg_ctl"), "-D", str(self.data)]
        self._watchdog = subprocess.Popen(
            [
                "sh",
                "-c",
                script,
                "pg-watchdog",
                str(owner),
                str(self.root),
                *stop,
                "-m",
                "immediate",
                "-w",
                "stop",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )

    def stop(self) -> None:
        """Stop the server at once (its data is thrown away) and remove its folder."""
        if self.started:
            with contextlib.suppress(PgUnavailable, subprocess.TimeoutExpired):
                self._run(
                    str(self.bindir / "pg_ctl"),
                    "-D",
                    str(self.data),
                    "-m",
                    "immediate",
                    "-w",
                    "stop",
                )
            self.started = False
        if self._watchdog is not None:  # its own process group: the shell and its sleep
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._watchdog.pid, signal.SIGKILL)
            self._watchdog.wait()
            self._watchdog = None
        shutil.rmtree(self.root, ignore_errors=True)

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = (self.root / "server.log").read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def url(self, database: str) -> str:
        """A `databases` URL for one of this server's databases (over the socket)."""
        return f"postgresql://postgres@/{database}?host={self.socket_dir}&port={PORT}"

    async def _admin(self, statement: str) -> None:
        import asyncpg

        conn = await asyncpg.connect(
            host=str(self.socket_dir), port=PORT, user="postgres", database="postgres"
        )
        try:
            await conn.execute(statement)
        finally:
            await conn.close()

    def new_database(self, template: str = "template0") -> str:
        """Create a database (a copy of `template`, empty by default) and return its URL."""
        name = f"test_{os.getpid()}_{next(self._names)}"
        statement = f'CREATE DATABASE "{name}" TEMPLATE "{template}"'
        if self._file_copy:
            try:  # PostgreSQL 15+: copying files beats WAL-logging every block, by half
                run_sync(self._admin(statement + " STRATEGY FILE_COPY"))
                return self.url(name)
            except Exception as exc:
                if "strategy" not in str(exc).lower():
                    raise
                self._file_copy = False
        run_sync(self._admin(statement))
        return self.url(name)

    def migrated_database(self) -> str:
        """A database with the current schema: a copy of one migrated once per session
        (copying costs less than running the migrations in every test)."""
        if self._migrated is None:
            url = self.new_database()
            run_sync(_migrate(url))
            self._migrated = url.split("?", 1)[0].rsplit("/", 1)[1]
        return self.new_database(template=self._migrated)


async def _migrate(url: str) -> None:
    from simple_scheduler.store.db import Store
    from simple_scheduler.store.migrate import migrate

    store = await Store.open(url)
    try:
        await migrate(store)
    finally:
        await store.close()


def start_server(settings: dict[str, str] | None = None) -> PgServer:
    """A started server, or PgUnavailable saying why not (binaries, user, startup).

    `settings` replace the throwaway tuning (benchmarks want the defaults' durability).
    """
    bindir = find_bindir()
    if bindir is None:
        raise PgUnavailable(
            "PostgreSQL's initdb is not in $SIMPLE_SCHEDULER_TEST_PG_BINDIR, "
            "/usr/lib/postgresql/*/bin or PATH (apt-get install postgresql)"
        )
    server = PgServer(bindir, settings)
    try:
        server.start()
    except BaseException as exc:
        tail = server.log_tail()
        server.stop()
        if isinstance(exc, PgUnavailable):
            raise PgUnavailable(f"{exc}\n{tail}".strip()) from None
        raise
    return server


def sync_query(url: str, sql: str, *args: object) -> list[tuple[object, ...]]:
    """Run `?`-style SQL on a store's database from sync test code, on either engine."""
    if url.startswith("sqlite"):
        import sqlite3

        from simple_scheduler.config import sqlite_path

        path = sqlite_path(url)
        assert path is not None
        with sqlite3.connect(path, timeout=10) as conn:
            return list(conn.execute(sql, args))
    parts = sql.split("?")
    numbered = parts[0] + "".join(f"${i}{part}" for i, part in enumerate(parts[1:], start=1))

    async def fetch() -> list[tuple[object, ...]]:
        import asyncpg

        conn = await asyncpg.connect(url)
        try:
            return [tuple(row) for row in await conn.fetch(numbered, *args)]
        finally:
            await conn.close()

    return run_sync(fetch())
