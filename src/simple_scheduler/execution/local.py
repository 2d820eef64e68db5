"""The local backend: the hypervisor on its Unix socket, and task files on this machine.

`LocalExecution` is what the server hands the scheduler: a `connect` factory (which
relaunches a dead hypervisor when asked to) and the `files` of the process directory.
"""

from __future__ import annotations

import logging
import os

from simple_scheduler.execution.backend import ExecutionBackend, Unreachable
from simple_scheduler.execution.client import HypervisorClient
from simple_scheduler.execution.launcher import DEFAULT_IDLE_EXIT_S, launch_hypervisor
from simple_scheduler.execution.taskdir import LocalTaskFiles

log = logging.getLogger("simple_scheduler.execution")


class LocalExecution:
    """Connections to the hypervisor on `socket_path`, and its task files.

    With `relaunch`, a hypervisor found dead is started again (the server's choice:
    nothing else would restart it). At most one launched child is alive at a time, and a
    second hypervisor on the same socket refuses to start anyway.
    """

    def __init__(
        self,
        socket_path: str,
        process_directory: str,
        *,
        relaunch: bool = False,
        idle_exit_s: float = DEFAULT_IDLE_EXIT_S,
        task_accounts: bool = False,
        task_cgroups: bool = False,
    ):
        self.socket_path = socket_path
        self.process_directory = process_directory
        self.relaunch = relaunch
        self.idle_exit_s = idle_exit_s
        self.task_accounts = task_accounts
        self.task_cgroups = task_cgroups
        self.files = LocalTaskFiles(process_directory)
        self._launched: int | None = None

    async def connect(self) -> ExecutionBackend:
        try:
            return await HypervisorClient.connect(self.socket_path)
        except Unreachable:
            if not self.relaunch:
                raise
            if self._launched is not None and _child_alive(self._launched):
                raise  # the one we started is still starting: retry later
            self._launched = launch_hypervisor(
                self.socket_path,
                self.process_directory,
                idle_exit_s=self.idle_exit_s,
                task_accounts=self.task_accounts,
                task_cgroups=self.task_cgroups,
            )
            log.warning(
                "no hypervisor on %s: started one (pid %d)", self.socket_path, self._launched
            )
            raise


def _child_alive(pid: int) -> bool:
    """True while our child `pid` runs; reaps it once it has exited."""
    try:
        return os.waitpid(pid, os.WNOHANG) == (0, 0)
    except ChildProcessError:
        return False
