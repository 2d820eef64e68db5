"""`simple-scheduler hypervisor`: the process entry point, without the CLI stack.

Signals are recorded by their handlers and acted on by the loop (as gunicorn's arbiter
does): nothing is raised from a handler, so a signal can never interrupt the loop half
way through a step.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys

from simple_scheduler.execution.launcher import USAGE as USAGE_TEXT
from simple_scheduler.execution.launcher import HypervisorArgs, UsageError
from simple_scheduler.hypervisor import posix
from simple_scheduler.hypervisor.loop import AlreadyRunning, Hypervisor

log = logging.getLogger("simple_scheduler.hypervisor")

#: Exit code when another hypervisor already serves the socket.
EXIT_ALREADY_RUNNING = 3
EXIT_USAGE = 2


def run(
    socket_path: str,
    process_directory: str,
    *,
    fsync: bool = True,
    idle_exit_s: float | None = None,
    task_accounts: bool = False,
    task_cgroups: bool = False,
) -> None:
    """Serve until SIGTERM or SIGINT, or idle (see `Hypervisor._check_idle`); monitors
    (and so tasks) keep running after."""
    if task_accounts:
        # Before the fork server starts: it and every monitor inherit what is left.
        try:
            posix.keep_task_capabilities()
        except OSError as exc:
            log.warning("could not drop capabilities: %s", exc)
        # Task directories and outputs readable by the task's account (the folders
        # above them are traverse-only), whatever umask the service manager set.
        os.umask(0o022)
    hv = Hypervisor(
        socket_path,
        process_directory,
        fsync=fsync,
        idle_exit_s=idle_exit_s,
        task_cgroups=task_cgroups,
    )
    # Monitors inherit this working directory: keep them where their tasks live.
    os.chdir(hv.process_directory)
    with contextlib.suppress(OSError):
        posix.set_proc_title("simple-scheduler: hypervisor", "ss-hypervisor")
    hv.install_signal_handlers()
    try:
        hv.serve_forever()
        log.info("shutting down; monitors keep running")
    finally:
        hv.close()


def close_inherited_descriptors() -> None:
    """Close every descriptor but 0-2: the hypervisor holds only what it opens itself.

    Whoever started us may have left descriptors open across exec: the web process's
    Hypercorn listening socket is inheritable, and a hypervisor holding it kept the
    server's port in LISTEN after the server stopped (issue 14). Closing here, in the
    new process and before anything else is opened, covers every way of starting it
    (posix_spawn from the threaded web process, systemd, a shell) with no race: in the
    threaded launcher, marking descriptors close-on-exec first would race with threads
    that open more. os.closerange is close_range(2) on Linux: one system call.
    """
    os.closerange(3, 1 << 20)


def main(argv: list[str]) -> int:
    """Parse `argv` (see `HypervisorArgs`), run, and return the exit code.

    Only ever the entry of a hypervisor process (it closes inherited descriptors)."""
    close_inherited_descriptors()
    if any(a in ("-h", "--help") for a in argv):
        print(USAGE_TEXT)
        return 0
    try:
        args = HypervisorArgs.parse(argv)
    except UsageError as exc:
        print(f"simple-scheduler hypervisor: {exc}", file=sys.stderr)
        return EXIT_USAGE
    logging.basicConfig(level=logging.INFO, format="%(asctime)s hypervisor %(message)s")
    try:
        run(
            args.socket,
            args.process_directory,
            fsync=args.fsync,
            idle_exit_s=args.idle_exit_s if args.idle_exit_s > 0 else None,
            task_accounts=args.task_accounts,
            task_cgroups=args.task_cgroups,
        )
    except AlreadyRunning as exc:
        print(f"simple-scheduler hypervisor: {exc}", file=sys.stderr)
        return EXIT_ALREADY_RUNNING
    return 0

