"""What the hypervisor knows about one unreleased execution."""

from __future__ import annotations

from dataclasses import dataclass

from simple_scheduler.execution.backend import ExitStatus, TaskRecord, TaskState
from simple_scheduler.states import check_execution


@dataclass(slots=True, eq=False)
class Execution:
    """What the hypervisor knows about one unreleased execution."""

    key: str
    task_dir: str
    state: TaskState = "spawned"
    monitor_pid: int = 0
    monitor_start: int = 0
    pid: int | None = None
    pid_start: int | None = None
    status: ExitStatus | None = None
    reason: str | None = None
    semaphore: str | None = None
    released_sem: bool = False  #: sem_post done (or none needed)
    #: Its command may run: spawned with start, or started since (journaled, `G`). A
    #: held execution that is cancelled has its semaphore posted but is never started.
    started: bool = True
    kill_grace: float | None = None  #: kill requested before the task pid was known
    owned: bool = True  #: a child of our fork server (it tells us when it dies)
    last_heartbeat: float = 0.0
    #: recovered with no monitor pid: lost if nothing is heard of it by then (monotonic)
    grace_until: float = 0.0

    def move(self, new: TaskState) -> None:
        """Change state through the table: an illegal move is a bug, and raises."""
        check_execution(self.state, new)
        self.state = new

    def record(self) -> TaskRecord:
        extra = {"task_dir": self.task_dir, "monitor_pid": str(self.monitor_pid)}
        if self.last_heartbeat:
            extra["last_heartbeat"] = f"{self.last_heartbeat:.3f}"
        return TaskRecord(
            key=self.key,
            state=self.state,
            pid=self.pid,
            pid_start_time=self.pid_start,
            status=self.status,
            reason=self.reason,
            extra=extra,
            started=self.started,
        )
