"""A job's details that its row does not hold (precious tasks, declared variable models),
read once per job and remembered: they never change after submission."""

from __future__ import annotations

from simple_scheduler.api import views
from simple_scheduler.api.context import Services
from simple_scheduler.store import jobstore
from simple_scheduler.workflow.details import variable_details

#: Jobs whose details are remembered (least recently used dropped first).
MAX_CACHED = 4096


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
    cache[job_id] = details
    while len(cache) > MAX_CACHED:
        cache.popitem(last=False)
    return details
