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
import gc
import logging
import signal
import sys
from pathlib import Path

from hypercorn.config import Config as HypercornConfig

from simple_scheduler.config import Config, ConfigError, load_config, redacted_url

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


def _start_hypervisor(config: Config) -> None:
    from simple_scheduler.hypervisor import ensure_hypervisor

    proc = ensure_hypervisor(str(config.hypervisor_socket_path), str(config.process_directory))
    if proc is None:
        log.info("connected to the running hypervisor on %s", config.hypervisor_socket_path)
    else:
        log.info("started the hypervisor (pid %d) on %s", proc.pid, config.hypervisor_socket_path)


async def serve(config: Config, stop: asyncio.Event | None = None) -> None:
    """Open everything, serve until `stop` is set (or a stop signal), close everything."""
    from hypercorn.asyncio import serve as hypercorn_serve

    from simple_scheduler.api import Services, create_app
    from simple_scheduler.auth import LoginThrottle
    from simple_scheduler.db import Store
    from simple_scheduler.dbengine import DATABASE_ERRORS
    from simple_scheduler.keys import KeysError, ensure_keys
    from simple_scheduler.migrate import MigrationError, migrate
    from simple_scheduler.scheduler import Scheduler
    from simple_scheduler.taskrun import server_environment

    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)

    try:
        store = await Store.open(config.database_url)
    except DATABASE_ERRORS as exc:  # e.g. PostgreSQL down or refusing us: say so, briefly
        raise StartError(f"database {redacted_url(config.database_url)}: {exc}") from exc
    try:
        try:
            await migrate(store)
            keys = await asyncio.to_thread(
                ensure_keys, config.private_key_path, config.public_key_path
            )
        except (MigrationError, KeysError) as exc:
            raise StartError(str(exc)) from exc
        scheduler = Scheduler.with_hypervisor(
            store,
            str(config.hypervisor_socket_path),
            relaunch=True,
            process_directory=config.process_directory,
            nb_of_workers=config.nb_of_workers,
            kill_grace=config.kill_grace_s,
            base_env=server_environment(),
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


def _hypercorn_config(config: Config) -> HypercornConfig:
    hc = HypercornConfig()
    host = f"[{config.address}]" if ":" in config.address else config.address
    hc.bind = [f"{host}:{config.port}"]
    hc.accesslog = logging.getLogger("hypercorn.access")
    hc.errorlog = logging.getLogger("hypercorn.error")
    hc.access_log_format = '%(h)s "%(r)s" %(s)s %(b)s %(L)ss'
    hc.graceful_timeout = GRACEFUL_TIMEOUT
    return hc
