"""The `--json` shapes of the client, built from the server's ProActive DTOs.

ProActive's DTOs are deep and camel-cased, with -1 for unset times; scripts want a flat,
stable object with ISO 8601 times and nulls. These functions are the documented shapes
(README, "From the terminal"), so a change here is a change of contract.
"""

from __future__ import annotations

import datetime
import time
from typing import Any

Json = dict[str, Any]


def iso(ms: Any) -> str | None:
    """Epoch milliseconds (-1: unset) as ISO 8601 UTC, or None."""
    if ms is None or int(ms) < 0:
        return None
    moment = datetime.datetime.fromtimestamp(int(ms) / 1000, tz=datetime.UTC)
    return moment.isoformat(timespec="milliseconds")


def now_ms() -> int:
    return int(time.time() * 1000)


def job_summary(info: Json) -> Json:
    """One job from its JobInfoData: what `jobs --json` lists and `wait --json` prints."""
    return {
        "id": int(info["jobId"]["id"]),
        "name": info["jobId"]["readableName"],
        "owner": info.get("jobOwner"),
        "status": info["status"],
        "priority": info.get("priority"),
        "submitted_at": iso(info.get("submittedTime")),
        "started_at": iso(info.get("startTime")),
        "finished_at": iso(info.get("finishedTime")),
        "tasks": {
            "total": int(info["totalNumberOfTasks"]),
            "pending": int(info["numberOfPendingTasks"]),
            "running": int(info["numberOfRunningTasks"]),
            "finished": int(info["numberOfFinishedTasks"]),
            "failed": int(info["numberOfFailedTasks"]),
            "faulty": int(info["numberOfFaultyTasks"]),
            "in_error": int(info.get("numberOfInErrorTasks", 0)),
        },
    }


def task_duration_ms(info: Json, now: int) -> int | None:
    """How long the task ran, or has been running so far; None if it never started."""
    start, end = int(info["startTime"]), int(info["finishedTime"])
    if start < 0:
        return None
    return max(0, (end if end >= 0 else now) - start)


def task_row(state: Json, now: int) -> Json:
    """One task from its TaskStateData: an item of `status --json`'s `tasks`."""
    info = state["taskInfo"]
    most = int(state.get("maxNumberOfExecution") or 1)
    duration = task_duration_ms(info, now)
    return {
        "name": state["name"],
        "status": info["taskStatus"],
        "attempts": max(0, most - int(info.get("numberOfExecutionLeft", most))),
        "max_attempts": most,
        "started_at": iso(info.get("startTime")),
        "finished_at": iso(info.get("finishedTime")),
        "duration_s": None if duration is None else duration / 1000,
        "exit_code": info.get("exitCode"),
        "signal": info.get("exitSignal"),
        "reason": info.get("statusReason"),
    }


def job_status(state: Json, now: int) -> Json:
    """`status --json`: the job's summary and its tasks in order."""
    tasks = sorted(state.get("tasks", {}).items(), key=lambda item: int(item[0]))
    return {"job": job_summary(state["jobInfo"]), "tasks": [task_row(t, now) for _, t in tasks]}
