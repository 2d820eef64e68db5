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
start failed, 2 for a bad configuration.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from hypercorn.config import Config as HypercornConfig

from simple_scheduler.config import Config, ConfigError, load_config, sqlite_path

if TYPE_CHECKING:
    from simple_scheduler.scheduler import Scheduler
    from simple_scheduler.store.db import Store

log = logging.getLogger("simple_scheduler.server")

EXIT_OK = 0
EXIT_START_FAILED = 1
EXIT_BAD_CONFIG = 2
#: Seconds Hypercorn waits for requests in flight after a stop signal.
GRACEFUL_TIMEOUT = 5.0


def run_server(config_path: Path | None) -> int:
    """Run until stopped; returns the process exit code."""
    try:
        config = load_config(config_path)
    except ConfigError as exc:
        print(f"simple-scheduler: configuration error: {exc}", file=sys.stderr)
        return EXIT_BAD_CONFIG
    _setup_logging(config.log_level)
    _warn_about_task_identity(config)
    try:
        config.ensure_dirs()
        _start_hypervisor(config)  # before any thread exists in this process
    except (OSError, RuntimeError, ValueError) as exc:
        log.error("cannot start: %s", exc)
        return EXIT_START_FAILED
    try:
        asyncio.run(serve(config))
    except StartError as exc:
        log.error("cannot start: %s", exc)
        return EXIT_START_FAILED
    return EXIT_OK


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
        task_accounts=config.task_accounts,
        task_cgroups=True,
    )
    if proc is None:
        log.info("connected to the running hypervisor on %s", config.hypervisor_socket_path)
    else:
        log.info("started the hypervisor (pid %d) on %s", proc.pid, config.hypervisor_socket_path)


async def serve(config: Config, stop: asyncio.Event | None = None) -> None:
    """Open everything, serve until `stop` is set (or a stop signal), close everything."""
    from hypercorn.asyncio import serve as hypercorn_serve

    from simple_scheduler.api import Services, create_app
    from simple_scheduler.auth.keys import KeysError, ensure_keys
    from simple_scheduler.auth.sessions import LoginThrottle
    from simple_scheduler.scheduler.spec import base_environment
    from simple_scheduler.store.db import Store
    from simple_scheduler.store.migrate import MigrationError, migrate

    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)

    store = await Store.open(config.database_url)
    _private_database(config)
    try:
        try:
            await migrate(store)
            keys = await asyncio.to_thread(
                ensure_keys, config.private_key_path, config.public_key_path
            )
        except (MigrationError, KeysError) as exc:
            raise StartError(str(exc)) from exc
        scheduler = local_scheduler(
            store,
            str(config.hypervisor_socket_path),
            process_directory=config.process_directory,
            # A hypervisor we could not give CAP_SETUID is restarted by its own unit.
            relaunch=not config.task_accounts or can_switch_users(),
            nb_of_workers=config.nb_of_workers,
            kill_grace=config.kill_grace_s,
            base_env=base_environment(config.task_env_base),
            task_user=config.task_user or None,
            run_as_me_map=config.run_as_me_map,
            task_cgroups=True,
        )
        await scheduler.start()
        services = Services(
            config=config, store=store, scheduler=scheduler, keys=keys, throttle=LoginThrottle()
        )
        app = create_app(services)
        # Everything built so far lives as long as the server: move it out of the
        # collector's sight, so full collections scan only what requests allocate.
        gc.collect()
        gc.freeze()
        try:
            await hypercorn_serve(app, _hypercorn_config(config), shutdown_trigger=stop.wait)
        finally:
            services.stopping = True
            log.info("stopping: writing pending state; running tasks keep running")
            services.close()
            await scheduler.stop()
    finally:
        await store.close()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
    log.info("stopped")


def local_scheduler(
    store: Store,
    socket_path: str,
    *,
    process_directory: Path | str,
    nb_of_workers: int,
    kill_grace: float = 5.0,
    base_env: Mapping[str, str] | None = None,
    relaunch: bool = False,
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
    )


def _hypercorn_config(config: Config) -> HypercornConfig:
    hc = HypercornConfig()
    host = f"[{config.address}]" if ":" in config.address else config.address
    hc.bind = [f"{host}:{config.port}"]
    hc.accesslog = logging.getLogger("hypercorn.access")
    hc.errorlog = logging.getLogger("hypercorn.error")
    hc.access_log_format = '%(h)s "%(r)s" %(s)s %(b)s %(L)ss'
    hc.graceful_timeout = GRACEFUL_TIMEOUT
    return hc
