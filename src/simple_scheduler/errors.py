"""The errors an API call can get from the scheduler, defined apart from it so the API
maps them to HTTP answers without importing the scheduler's internals."""

from __future__ import annotations


class SchedulerError(Exception):
    """Base of the errors an API call can get."""


class UnknownJob(SchedulerError):
    """No such job (or not yours: the API answers both alike)."""


class UnknownTask(SchedulerError):
    """No such task in the job."""


class StateConflict(SchedulerError):
    """The action is not allowed in the job's or task's current state (HTTP 409)."""


class JobAlreadyFinished(StateConflict):
    """The job has ended: nothing may change it any more (HTTP 409)."""
