"""Database rows -> ProActive's JSON shapes (the DTOs of `rest-api/.../scheduler/dto`).

Field names follow Jackson's rendering of ProActive's getters; statuses and priorities are
enum names (`"FINISHED"`, `"NORMAL"`); times are epoch milliseconds with -1 for "not set".
Three fields are ours, added to `taskInfo` because a shell user asks for them first:
`exitCode`, `exitSignal` and `statusReason` (why a task failed, was killed or lost).
"""

from __future__ import annotations

import datetime
import functools
import json
import socket
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from simple_scheduler.states import TaskStatus
from simple_scheduler.store.db import Row

JsonDict = dict[str, Any]


@functools.cache
def host_name() -> str:
    return socket.gethostname()


def ms(value: Any) -> int:
    """A stored time, or ProActive's -1 for "not set"."""
    return -1 if value is None else int(value)


def _json(value: str | Mapping[str, Any] | None) -> Any:
    if isinstance(value, Mapping):  # an event's snapshot holds the decoded value
        return value
    return json.loads(value) if value else {}


@dataclass(frozen=True)
class JobDetails:
    """What a job row does not hold but JobInfoData shows: the tasks with
    `preciousResult`, and the declared variables' model, description, group, flags."""

    precious_tasks: tuple[str, ...] = ()
    variables: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)


NO_DETAILS = JobDetails()


def epoch_ms(text: str | None) -> int | None:
    """ProActive's `startAt`: the `START_AT` generic information (ISO-8601) as epoch ms."""
    if not text:
        return None
    try:
        moment = datetime.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    return int(moment.timestamp() * 1000)


def job_id_data(row: Row) -> JsonDict:
    return {"id": int(row["id"]), "readableName": row["name"]}


def job_info(row: Row, details: JobDetails = NO_DETAILS) -> JsonDict:
    """JobInfoData."""
    variables: dict[str, str] = _json(row["variables"])
    generic: dict[str, str] = _json(row["generic_information"])
    return {
        "startTime": ms(row["start_time"]),
        "inErrorTime": ms(row["in_error_time"]),
        "finishedTime": ms(row["finished_time"]),
        "submittedTime": ms(row["submitted_time"]),
        "removedTime": -1,
        "status": row["status"],
        "jobId": job_id_data(row),
        "totalNumberOfTasks": int(row["total_tasks"]),
        "numberOfPendingTasks": int(row["pending_tasks"]),
        "numberOfRunningTasks": int(row["running_tasks"]),
        "numberOfFinishedTasks": int(row["finished_tasks"]),
        "numberOfFailedTasks": int(row["failed_tasks"]),
        "numberOfFaultyTasks": int(row["faulty_tasks"]),
        "numberOfInErrorTasks": int(row["in_error_tasks"]),
        "priority": str(row["priority"]).upper(),
        "jobOwner": row["owner"],
        "tenant": None,
        "domain": None,
        "projectName": row["project_name"],
        "description": row["description"],
        "bucketName": generic.get("bucketName"),
        "label": None,
        "toBeRemoved": False,
        "parentId": None,
        "childrenCount": 0,
        "submissionMode": generic.get("submission.mode"),
        "startAt": epoch_ms(generic.get("START_AT")),
        "genericInformation": generic,
        "variables": variables,
        "detailedVariables": {
            name: {
                "name": name,
                "value": value,
                "model": None,
                "description": None,
                "group": None,
                "advanced": False,
                "hidden": False,
                **details.variables.get(name, {}),
            }
            for name, value in variables.items()
        },
        "signals": [],
        "resultMapPresent": False,
        "preciousTasks": list(details.precious_tasks),
        "cumulatedCoreTime": 0,
        "numberOfNodes": 0,
        "numberOfNodesInParallel": 0,
    }


def user_job(row: Row, details: JobDetails = NO_DETAILS) -> JsonDict:
    """UserJobData, an item of `jobsinfo`."""
    return {"jobid": str(row["id"]), "jobOwner": row["owner"], "jobInfo": job_info(row, details)}


def task_variables(job: Row, task_variables: Mapping[str, str] | None) -> dict[str, str]:
    """A task's resolved variables: the job's, overlaid by the task's own."""
    return {**_json(job["variables"]), **(task_variables or {})}


def task_info(task: Row, job: Row, variables: Mapping[str, str] | None = None) -> JsonDict:
    """TaskInfoData (`variables`: the task's resolved variables)."""
    start, end = task["start_time"], task["finished_time"]
    status = task["status"]
    max_exec = int(task["max_number_of_execution"])
    left = max(0, max_exec - int(task["attempts"]))
    return {
        "jobId": job_id_data(job),
        "taskId": {"id": int(task["task_index"]), "readableName": task["name"]},
        "startTime": ms(start),
        "finishedTime": ms(end),
        "scheduledTime": ms(task["scheduled_time"]),
        "inErrorTime": ms(task["in_error_time"]),
        "executionDuration": int(end) - int(start) if start is not None and end is not None else -1,
        "taskStatus": status,
        "executionHostName": host_name() if start is not None else None,
        "numberOfExecutionLeft": left,
        "numberOfExecutionOnFailureLeft": left,
        "progress": 100 if status == TaskStatus.FINISHED else 0,
        "visualizationActivated": False,
        "visualizationConnectionString": None,
        "variables": dict(variables) if variables is not None else {},
        "exitCode": task["exit_code"],
        "exitSignal": task["signal"],
        "statusReason": task["reason"],
    }


def task_state(task: Row, job: Row) -> JsonDict:
    """TaskStateData."""
    spec: Mapping[str, Any] = _json(task["spec"])
    max_exec = int(task["max_number_of_execution"])
    return {
        "name": task["name"],
        "description": spec.get("description"),
        "tag": None,
        "iterationIndex": 0,
        "replicationIndex": 0,
        "maxNumberOfExecution": max_exec,
        "maxNumberOfExecutionOnFailure": max_exec,
        "numberOfNodesNeeded": int(spec.get("number_of_nodes") or 1),
        "parallelEnvironment": (
            {"nodesNumber": int(spec["number_of_nodes"]), "topologyDescriptor": None}
            if int(spec.get("number_of_nodes") or 1) > 1
            else None
        ),
        "genericInformation": spec.get("generic_information") or {},
        "variables": spec.get("variables") or {},
        "onTaskErrorPolicy": task["on_task_error"],
        "taskInfo": task_info(task, job, task_variables(job, spec.get("variables"))),
    }


def job_state(job: Row, tasks: Iterable[Row], details: JobDetails = NO_DETAILS) -> JsonDict:
    """JobStateData: the job and its tasks keyed by index."""
    info = job_info(job, details)
    return {
        "id": int(job["id"]),
        "name": job["name"],
        "owner": job["owner"],
        "priority": info["priority"],
        "projectName": job["project_name"],
        "description": job["description"],
        "tenant": None,
        "domain": None,
        "genericInformation": info["genericInformation"],
        "variables": info["variables"],
        "jobInfo": info,
        "tasks": {str(t["task_index"]): task_state(t, job) for t in tasks},
    }


def rest_page(items: Sequence[Any], size: int) -> JsonDict:
    """RestPage<T>: one page and the total count."""
    return {"list": list(items), "size": size}
