"""A job's details that its row does not hold (precious tasks, declared variable models),
read once per job and remembered: they never change after submission."""

from __future__ import annotations

from simple_scheduler.api import views
from simple_scheduler.api.context import Services
from simple_scheduler.store import jobstore
from simple_scheduler.workflow import Job
from simple_scheduler.workflow.details import variable_details

#: Jobs whose details are remembered (least recently used dropped first).
MAX_CACHED = 4096


def remember(svc: Services, job_id: int, job: Job, document: bytes) -> None:
    """At submission, from the parsed job: a listing of recent jobs (what clients poll)
    then finds them here instead of reading each job's tasks and XML back (two queries
    and a parse per job: `jobsinfo?limit=20` took ~670 ms p50 under the soak's load)."""
    precious = tuple(t.name for t in job.tasks if t.precious_result)
    _put(svc, job_id, views.JobDetails(precious, variable_details(document)))


def _put(svc: Services, job_id: int, details: views.JobDetails) -> None:
    cache = svc.job_details
    cache[job_id] = details
    while len(cache) > MAX_CACHED:
        cache.popitem(last=False)


async def job_details(svc: Services, job_id: int) -> views.JobDetails:
    cache = svc.job_details
    found = cache.get(job_id)
    if found is not None:
        cache.move_to_end(job_id)
        return found
    precious = await jobstore.precious_task_names(svc.store, job_id)
    document = await jobstore.job_document(svc.store, job_id)
    # Reading stops at `taskFlow`: cheap whatever the job's size.
    declared = variable_details(document.encode("utf-8")) if document else {}
    details = views.JobDetails(tuple(precious), declared)
    _put(svc, job_id, details)
    return details
