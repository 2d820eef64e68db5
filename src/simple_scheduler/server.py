"""`simple-scheduler run-server`: hypervisor first, then store, keys, scheduler, Hypercorn.

Order matters. The web process gets threads as soon as the database opens (aiosqlite runs
each connection on a thread), and a process with threads must not fork. So the
hypervisor, the one process that forks, is started (or found already running on its
socket, after a restart) before anything else, and through `subprocess` (posix_spawn or
a C-level fork+exec, no Python in the child).

Shutdown (SIGTERM, SIGINT): the handlers only set an event; Hypercorn then stops
accepting, finishes requests in flight, and the scheduler writes what is pending and lets
go. Running tasks are left to the hypervisor, which keeps running: the next start
reconnects to it and picks them up. The process exits 0 after a clean stop, 1 when the
start failed, 2 for a bad configuration, 3 when it was the leader of a shared PostgreSQL
store and lost the leader lock (fenced: restarted, it comes back as a standby).

On PostgreSQL the servers sharing the store elect a leader (`leadership.py`); a standby
serves reads and takes over, running the same recovery a restarted server runs, when
the leader's lock goes. A standby needs the Slurm backend: local tasks of a leader on
another machine cannot be adopted, so with the local backend a second server is refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import gc
import getpass
import json
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from hypercorn.config import Config as HypercornConfig

from simple_scheduler.config import Config, ConfigError, load_config, redacted_url, sqlite_path

if TYPE_CHECKING:
    from simple_scheduler.api.context import Role
    from simple_scheduler.auth.keys import KeyPair
    from simple_scheduler.leadership import Holder, Leadership
    from simple_scheduler.scheduler import Scheduler
    from simple_scheduler.store.db import Store

log = logging.getLogger("simple_scheduler.server")

EXIT_OK = 0
EXIT_START_FAILED = 1
EXIT_BAD_CONFIG = 2
#: The leader lock may be gone: another server may lead now (see `fence`).
EXIT_FENCED = 3
#: With the local backend, how long a second server waits for the leader lock (a dead
#: leader's session may still be closing) before it is refused.
LOCAL_LOCK_WAIT_S = 5.0
#: Seconds Hypercorn waits for requests in flight after a stop signal.
GRACEFUL_TIMEOUT = 5.0
#: Executions the local scheduler may hold spawned ahead of their start (one per worker
#: slot, at most this): each is a monitor of tens of KiB waiting on its semaphore.
PRESPAWN_MAX = 32


def run_server(config_path: Path | None, create_admin: str | None = None) -> int:
    """Run until stopped; returns the process exit code.

    `create_admin`: make this admin user on the first run (password from
    `SIMPLE_SCHEDULER_ADMIN_PASSWORD`, else prompted); later runs just start, so the
    quick start's one command works every time.
    """
    try:
        config = load_config(config_path)
    except ConfigError as exc:
        print(f"simple-scheduler: configuration error: {exc}", file=sys.stderr)
        return EXIT_BAD_CONFIG
    _setup_logging(config.log_level)
    _warn_about_task_identity(config)
    admin: tuple[str, str] | None = None
    try:
        if create_admin is not None:
            admin = (create_admin, admin_password(create_admin))
        created = not config.data_dir.exists()
        config.ensure_dirs()
        if created:
            log.info("created a new data directory at %s", config.data_dir)
        log.info(
            "data directory %s; database %s", config.data_dir, redacted_url(config.database_url)
        )
        lock = DataDirLock.acquire(config)  # held for the process's life
        if config.execution_backend == "local":
            _start_hypervisor(config)  # before any thread exists in this process
    except (OSError, RuntimeError, ValueError) as exc:
        log.error("cannot start: %s", exc)
        return EXIT_START_FAILED
    try:
        asyncio.run(serve(config, admin=admin))
    except StartError as exc:
        log.error("cannot start: %s", exc)
        return EXIT_START_FAILED
    finally:
        lock.release()
    return EXIT_OK


#: Where `run-server --create-admin` reads the password when set (else it prompts).
ADMIN_PASSWORD_ENV = "SIMPLE_SCHEDULER_ADMIN_PASSWORD"


def admin_password(name: str) -> str:
    """The password for `--create-admin`: the environment's, else asked on a terminal."""
    password = os.environ.get(ADMIN_PASSWORD_ENV)
    if password:
        return password
    if not sys.stdin.isatty():
        raise ValueError(
            f"--create-admin {name}: set {ADMIN_PASSWORD_ENV} or run on a terminal to be asked"
        )
    password = getpass.getpass(f"password for {name} (used only if {name} does not exist): ")
    if not password:
        raise ValueError("an empty password is not allowed")
    return password


class DataDirLock:
    """At most one server per data directory: an `flock` on `<data_dir>/server.lock`.

    Two servers over one database and hypervisor would both drive the same jobs. The
    kernel releases the lock however the holder dies, so a crash never blocks a restart;
    the file names the holder (pid, address, port) for the refusal message. The
    descriptor is close-on-exec: the hypervisor we start does not inherit it.
    """

    def __init__(self, fd: int) -> None:
        self.fd = fd

    @classmethod
    def acquire(cls, config: Config) -> DataDirLock:
        path = config.data_dir / "server.lock"
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 4096).decode("utf-8", "replace")
            os.close(fd)
            try:
                info = json.loads(holder)
                who = f"pid {info['pid']}, listening on {info['address']}:{info['port']}"
            except (ValueError, KeyError, TypeError):
                who = "pid unknown"
            raise RuntimeError(
                f"another server ({who}) already uses the data directory {config.data_dir}"
            ) from None
        record = {"pid": os.getpid(), "address": config.address, "port": config.port}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(record).encode(), 0)
        return cls(fd)

    def release(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class StartError(Exception):
    """Something the server needs at start is missing or broken."""


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def _warn_about_task_identity(config: Config) -> None:
    """Say it at start when tasks run with the server's own identity (README: Security)."""
    if not config.task_user:
        log.warning(
            "task_user is not set: tasks run as this server's own user (uid %d) and can read "
            "its keys and database, so any user able to submit a job can become admin; set "
            "task_user to an unprivileged account (README: Security)",
            os.geteuid(),
        )


def can_switch_users() -> bool:
    """Whether a hypervisor started by this process could run tasks as other accounts:
    root, or CAP_SETUID and CAP_SETGID in our permitted set (to pass on)."""
    if os.geteuid() == 0:
        return True
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("CapPrm:"):
                    permitted = int(line.split()[1], 16)
                    return permitted & 0xC0 == 0xC0  # CAP_SETGID (6), CAP_SETUID (7)
    except (OSError, ValueError):
        pass
    return False


def _private_database(config: Config) -> None:
    """The SQLite file (and its journals, which SQLite gives the same mode) 0600."""
    path = sqlite_path(config.database_url)
    if path is None:
        return
    for name in (path, Path(f"{path}-wal"), Path(f"{path}-shm"), Path(f"{path}-journal")):
        with contextlib.suppress(FileNotFoundError):
            if name.stat().st_mode & 0o077:
                name.chmod(0o600)


def _start_hypervisor(config: Config) -> None:
    from simple_scheduler.execution.launcher import accepts, ensure_hypervisor

    if config.task_accounts and not can_switch_users():
        # Without the capabilities ourselves (the web process should hold none), the
        # hypervisor is a service of its own that has them (deploy/): never start one
        # that could not switch users.
        if not accepts(str(config.hypervisor_socket_path)):
            raise RuntimeError(
                f"task_user/run_as_me_map are set, no hypervisor listens on "
                f"{config.hypervisor_socket_path}, and this process lacks CAP_SETUID/"
                f"CAP_SETGID to start one: start simple-scheduler-hypervisor.service"
            )
        log.info("connected to the running hypervisor on %s", config.hypervisor_socket_path)
        return
    proc = ensure_hypervisor(
        str(config.hypervisor_socket_path),
        str(config.process_directory),
        idle_exit_s=config.hypervisor_idle_exit_s,
        task_accounts=config.task_accounts,
        task_cgroups=True,
    )
    if proc is None:
        log.info("connected to the running hypervisor on %s", config.hypervisor_socket_path)
    else:
        log.info("started the hypervisor (pid %d) on %s", proc.pid, config.hypervisor_socket_path)


async def serve(
    config: Config, stop: asyncio.Event | None = None, *, admin: tuple[str, str] | None = None
) -> None:
    """Open everything, serve until `stop` is set (or a stop signal), close everything."""
    from hypercorn.asyncio import serve as hypercorn_serve

    from simple_scheduler.api import Services, create_app
    from simple_scheduler.api.context import Role
    from simple_scheduler.auth.keys import KeysError, ensure_keys
    from simple_scheduler.auth.sessions import LoginThrottle
    from simple_scheduler.scheduler.spec import base_environment
    from simple_scheduler.store.db import Store
    from simple_scheduler.store.dbengine import DATABASE_ERRORS
    from simple_scheduler.store.migrate import MigrationError, migrate

    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)

    try:
        store = await Store.open(config.database_url)
    except DATABASE_ERRORS as exc:  # e.g. PostgreSQL down or refusing us: say so, briefly
        raise StartError(f"database {redacted_url(config.database_url)}: {exc}") from exc
    _private_database(config)
    try:
        role = Role()  # the only server: it leads
        leadership: Leadership | None = None
        try:
            await migrate(store)
            if store.engine == "postgresql":
                leadership, keys, role = await _elect(config)
            else:
                keys = await asyncio.to_thread(
                    ensure_keys, config.private_key_path, config.public_key_path
                )
        except (MigrationError, KeysError) as exc:
            raise StartError(str(exc)) from exc
        except DATABASE_ERRORS as exc:
            raise StartError(f"database {redacted_url(config.database_url)}: {exc}") from exc
        await _ensure_admin(store, config, admin)
        if config.execution_backend == "slurm":
            scheduler = slurm_scheduler(
                store, config, base_env=base_environment(config.task_env_base)
            )
        else:
            scheduler = local_scheduler(
                store,
                str(config.hypervisor_socket_path),
                process_directory=config.process_directory,
                # A hypervisor we could not give CAP_SETUID is restarted by its own unit.
                relaunch=not config.task_accounts or can_switch_users(),
                idle_exit_s=config.hypervisor_idle_exit_s,
                nb_of_workers=config.nb_of_workers,
                kill_grace=config.kill_grace_s,
                base_env=base_environment(config.task_env_base),
                task_user=config.task_user or None,
                run_as_me_map=config.run_as_me_map,
                task_cgroups=True,
            )
        takeover: asyncio.Task[None] | None = None
        if role.leads:
            if leadership is not None:
                leadership.guard(fence)  # before the first scheduling step
            await scheduler.start()
        else:
            assert leadership is not None
            takeover = asyncio.create_task(
                _take_over(leadership, role, scheduler), name="standby-takeover"
            )
        services = Services(
            config=config,
            store=store,
            scheduler=scheduler,
            keys=keys,
            throttle=LoginThrottle(),
            role=role,
        )
        app = create_app(services)
        # Everything built so far lives as long as the server: move it out of the
        # collector's sight, so full collections scan only what requests allocate.
        gc.collect()
        gc.freeze()

        async def shutdown_trigger() -> None:
            await stop.wait()
            # Event streams never end by themselves: end them, or Hypercorn would wait
            # its whole graceful timeout for them.
            scheduler.events.close_all("server stopping")

        try:
            try:
                hc = _hypercorn_config(config)
                await hypercorn_serve(app, hc, shutdown_trigger=shutdown_trigger)
            except OSError as exc:  # the port is taken, or the address is not ours
                where = f"{config.address}:{config.port}"
                raise StartError(f"cannot listen on {where}: {exc.strerror or exc}") from None
        finally:
            services.stopping = True
            log.info("stopping: writing pending state; running tasks keep running")
            services.close()
            if takeover is not None and not takeover.done():
                takeover.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await takeover
            await scheduler.stop(detach=True)
    finally:
        # After the last write: the lock goes, and a standby takes over.
        if leadership is not None:
            await leadership.close()
        await store.close()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
    log.info("stopped")


def fence(why: str) -> NoReturn:
    """The leader lock may be gone, so another server may lead: exit now, writing
    nothing (what is not yet stored, the new leader recovers from the journal and the
    status files, as after a SIGKILL). A supervisor restarts us as a standby."""
    log.critical("lost the leader lock (%s): stopping at once (fenced)", why)
    for handler in logging.getLogger().handlers:
        with contextlib.suppress(Exception):
            handler.flush()
    os._exit(EXIT_FENCED)


def advertised_url(config: Config) -> str:
    """Where clients reach this server (`public_url`, else derived from the bind)."""
    if config.public_url:
        return config.public_url.rstrip("/")
    host = config.address
    if host in ("0.0.0.0", "::", ""):
        host = socket.getfqdn()
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{config.port}/rest"


async def _elect(config: Config) -> tuple[Leadership, KeyPair, Role]:
    """On PostgreSQL: the key pair (made under a lock on a first start, when servers
    share the key files), then the leader lock: held, this server leads; else it is a
    standby (Slurm backend only), if it signs sessions with the leader's key pair."""
    from simple_scheduler.api.context import Role
    from simple_scheduler.auth.keys import ensure_keys
    from simple_scheduler.leadership import Leadership, key_fingerprint

    leadership = Leadership(config.database_url, url=advertised_url(config))
    await leadership.connect()
    try:
        keys = await leadership.shared_keys(
            lambda: ensure_keys(config.private_key_path, config.public_key_path)
        )
        await leadership.sign_as(key_fingerprint(keys.public_key))
        deadline = time.monotonic() + (
            LOCAL_LOCK_WAIT_S if config.execution_backend == "local" else 0.0
        )
        while not await leadership.try_lock():
            if time.monotonic() >= deadline:
                break
            await asyncio.sleep(0.5)
        if leadership.held:
            log.info("leading the servers of this database (leader lock taken)")
            return leadership, keys, Role("leader")
        holder = await leadership.holder()
        where = f" at {holder.url}" if holder is not None and holder.url else ""
        if config.execution_backend != "slurm":
            raise StartError(
                f"another server{where} leads the database "
                f"{redacted_url(config.database_url)}: a standby needs execution_backend "
                f'= "slurm" (it could not adopt the local tasks of a leader on another '
                f"machine); stop that server, or use another database"
            )
        if holder is not None and holder.fingerprint not in (None, leadership.fingerprint):
            raise StartError(
                f"the leader{where} signs sessions with another key pair (fingerprint "
                f"{holder.fingerprint}, ours {leadership.fingerprint} from "
                f"{config.private_key_path}): point private_key_path and public_key_path "
                f"of every server at the same files on a shared path"
            )
        log.info(
            "standby: the leader%s holds the leader lock; serving reads and waiting for it",
            where,
        )
        return leadership, keys, Role("standby", holder.url if holder is not None else None)
    except BaseException:
        await leadership.close()
        raise


async def _take_over(leadership: Leadership, role: Role, scheduler: Scheduler) -> None:
    """A standby's life: wait for the lock, then recover and lead (or fence trying)."""

    def seen(holder: Holder | None) -> None:
        url = holder.url if holder is not None else None
        if url != role.leader_url:
            role.leader_url = url
            if url:
                log.info("standby: the leader is %s", url)

    try:
        await leadership.wait_for_lock(seen)
        began = time.monotonic()
        role.move("taking-over")
        log.warning("took the leader lock (the leader is gone): recovering its jobs")
        leadership.guard(fence)
        await scheduler.start()
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # half-started: never run as a leader that is not sure
        log.exception("standing by or taking over failed")
        fence(f"standing by or taking over failed: {exc}")
    role.move("leader")
    role.leader_url = None
    log.warning("now the leader (recovery took %.2f s)", time.monotonic() - began)


def local_scheduler(
    store: Store,
    socket_path: str,
    *,
    process_directory: Path | str,
    nb_of_workers: int,
    kill_grace: float = 5.0,
    base_env: Mapping[str, str] | None = None,
    relaunch: bool = False,
    idle_exit_s: float = 60.0,
    task_user: str | None = None,
    run_as_me_map: Mapping[str, str] | None = None,
    task_cgroups: bool = False,
) -> Scheduler:
    """The usual set-up: a scheduler over the local hypervisor on `socket_path`.

    With `relaunch`, a hypervisor found dead is started again (see `LocalExecution`).
    """
    from simple_scheduler.execution.local import LocalExecution
    from simple_scheduler.scheduler import Scheduler

    execution = LocalExecution(
        socket_path,
        str(process_directory),
        relaunch=relaunch,
        idle_exit_s=idle_exit_s,
        task_accounts=bool(task_user or run_as_me_map),
        task_cgroups=task_cgroups,
    )
    return Scheduler(
        store,
        execution.connect,
        files=execution.files,
        nb_of_workers=nb_of_workers,
        kill_grace=kill_grace,
        base_env=base_env,
        task_user=task_user,
        run_as_me_map=run_as_me_map,
        prespawn=min(nb_of_workers if nb_of_workers > 0 else PRESPAWN_MAX, PRESPAWN_MAX),
    )


async def _ensure_admin(store: Store, config: Config, admin: tuple[str, str] | None) -> None:
    """Create the `--create-admin` user on the first run; warn when nobody can log in."""
    from simple_scheduler.auth import users

    if admin is not None:
        name, password = admin
        if await users.get_user(store, name) is None:
            await users.create_user(
                store, name, password, is_admin=True, rounds=config.bcrypt_rounds
            )
            log.info("created the admin user %r", name)
        else:
            log.info("user %r exists: not created again", name)
    elif not await users.list_users(store):
        log.warning(
            "no user can log in yet: run `simple-scheduler create-user NAME --admin` "
            "or start with --create-admin NAME"
        )


def slurm_scheduler(
    store: Store, config: Config, *, base_env: Mapping[str, str] | None = None
) -> Scheduler:
    """A scheduler whose tasks are Slurm jobs, on the shared process directory."""
    import shlex

    from simple_scheduler.config import token_partitions
    from simple_scheduler.execution.slurm import SlurmBackend, SlurmSettings
    from simple_scheduler.execution.taskdir import LocalTaskFiles
    from simple_scheduler.scheduler import Scheduler

    settings = SlurmSettings(
        partition=config.slurm_partition or None,
        account=config.slurm_account or None,
        sbatch_options=tuple(shlex.split(config.slurm_sbatch_options)),
        poll_interval_s=config.slurm_poll_interval_s,
        token_partitions=token_partitions(config.slurm_node_access_token_partitions),
    )
    process_directory = str(config.process_directory)

    async def connect() -> SlurmBackend:
        return await SlurmBackend.connect(process_directory, settings)

    return Scheduler(
        store,
        connect,
        files=LocalTaskFiles(process_directory),
        nb_of_workers=config.nb_of_workers,
        kill_grace=config.kill_grace_s,
        base_env=base_env,
    )


def _hypercorn_config(config: Config) -> HypercornConfig:
    hc = HypercornConfig()
    host = f"[{config.address}]" if ":" in config.address else config.address
    hc.bind = [f"{host}:{config.port}"]
    access = logging.getLogger("hypercorn.access")
    # Hypercorn builds each request's log atoms before the logger looks at its level:
    # ~3% of the server's CPU under the soak's load, for lines nobody keeps.
    hc.accesslog = access if access.isEnabledFor(logging.INFO) else None
    hc.errorlog = logging.getLogger("hypercorn.error")
    hc.access_log_format = '%(h)s "%(r)s" %(s)s %(b)s %(L)ss'
    hc.graceful_timeout = GRACEFUL_TIMEOUT
    return hc
