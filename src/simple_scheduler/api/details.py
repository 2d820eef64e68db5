"""A job's details that its columns do not hold (precious tasks, declared variable
models): written with the job at submission (`jobs.details`, JSON), so a listing reads
them from the rows it lists. Jobs submitted before that column existed get them from
their tasks and XML, once, and remembered: they never change after submission."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from simple_scheduler.api import views
from simple_scheduler.api.context import Services
from simple_scheduler.store import jobstore
from simple_scheduler.store.db import Row
from simple_scheduler.workflow.details import variable_details

#: Older jobs whose details are remembered (least recently used dropped first).
MAX_CACHED = 4096


def from_json(text: str) -> views.JobDetails:
    stored: Mapping[str, Any] = json.loads(text)
    return views.JobDetails(tuple(stored["precious_tasks"]), stored["variables"])


def _column(row: Row, name: str) -> Any:
    """`row[name]`, None when the query did not select it (rows of the drivers are not
    all dicts: `.get` is not everywhere)."""
    try:
        return row[name]
    except KeyError:
        return None


async def job_details(svc: Services, job_id: int, row: Row | None = None) -> views.JobDetails:
    """The job's details; from `row` (the job's row) when it holds them."""
    if row is not None and (text := _column(row, "details")):
        return from_json(str(text))
    cache = svc.job_details
    found = cache.get(job_id)
    if found is not None:
        cache.move_to_end(job_id)
        return found
    text = await jobstore.stored_details(svc.store, job_id)
    if text is not None:
        details = from_json(text)
    else:
        precious = await jobstore.precious_task_names(svc.store, job_id)
        document = await jobstore.job_document(svc.store, job_id)
        # Reading stops at `taskFlow`: cheap whatever the job's size.
        declared = variable_details(document.encode("utf-8")) if document else {}
        details = views.JobDetails(tuple(precious), declared)
    cache[job_id] = details
    while len(cache) > MAX_CACHED:
        cache.popitem(last=False)
    return details
