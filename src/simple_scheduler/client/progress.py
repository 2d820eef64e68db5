"""What a waiting client shows: a progress bar on a terminal, nothing elsewhere.

Either way the final state is one line on stderr ("job 12 FINISHED: 4/4 tasks done, 0
failed"), so a log file of a CI job says how it went without a bar's escape codes.
"""

from __future__ import annotations

import sys
from types import TracebackType
from typing import TYPE_CHECKING

from simple_scheduler.client import output
from simple_scheduler.client.watch import JobInfo, failed_tasks

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID


def summary(info: JobInfo) -> str:
    job = info["jobId"]["id"]
    done, total = info["numberOfFinishedTasks"], info["totalNumberOfTasks"]
    return f"job {job} {info['status']}: {done}/{total} tasks done, {failed_tasks(info)} failed"


class Display:
    """What `display` returns, a context manager: `start` on entry, `stop` on exit, and
    `update` with each new state of the job in between. This one shows nothing (pipes,
    files, `NO_COLOR`); `Bar` shows a bar."""

    def __enter__(self) -> Display:
        self.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass

    def update(self, info: JobInfo) -> None:
        pass


class Bar(Display):
    """A rich progress bar on stderr: tasks done/total, running, failed, elapsed time.

    Lines written to stdout meanwhile (followed output) appear above the bar when stdout
    is the same terminal; when stdout is redirected they go to it untouched.
    """

    def __init__(self, job_id: int) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        self.job_id = job_id
        self._progress: Progress = Progress(
            TextColumn("job {task.fields[job]} [bold]{task.fields[status]}[/]"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("running {task.fields[running]}"),
            TextColumn("{task.fields[failed]}"),
            TimeElapsedColumn(),
            console=Console(file=sys.stderr, highlight=False, emoji=False),
            redirect_stdout=sys.stdout.isatty(),
            redirect_stderr=True,
        )
        self._task: TaskID | None = None

    def start(self) -> None:
        self._progress.start()

    def stop(self) -> None:
        self._progress.stop()

    def update(self, info: JobInfo) -> None:
        failed = failed_tasks(info)
        fields = {
            "job": self.job_id,
            "status": info["status"],
            "running": info["numberOfRunningTasks"],
            "failed": f"[red]failed {failed}[/]" if failed else "failed 0",
        }
        total, done = int(info["totalNumberOfTasks"]), int(info["numberOfFinishedTasks"])
        if self._task is None:
            self._task = self._progress.add_task("", total=total, completed=done, **fields)
        else:
            self._progress.update(self._task, total=total, completed=done, **fields)


def display(job_id: int, wanted: bool) -> Display:
    """The bar when wanted and stderr is a terminal (and no NO_COLOR), else nothing."""
    if wanted and output.fancy(sys.stderr):
        return Bar(job_id)
    return Display()
