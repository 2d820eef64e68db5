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


def run(args: HypervisorArgs) -> None:
    """Serve until SIGTERM or SIGINT, or idle (see `Hypervisor._check_idle`); monitors
    (and so tasks) keep running after."""
    idle = args.idle_exit_s if args.idle_exit_s > 0 else None
    hv = Hypervisor(args.socket, args.process_directory, fsync=args.fsync, idle_exit_s=idle)
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


def main(argv: list[str]) -> int:
    """Parse `argv` (see `HypervisorArgs`), run, and return the exit code."""
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
        run(args)
    except AlreadyRunning as exc:
        print(f"simple-scheduler hypervisor: {exc}", file=sys.stderr)
        return EXIT_ALREADY_RUNNING
    return 0

