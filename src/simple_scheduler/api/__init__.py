"""The REST API: ProActive's scheduler dialect over Quart (PROACTIVE.md, section 1)."""

from simple_scheduler.api.app import create_app
from simple_scheduler.api.context import Services

__all__ = ["Services", "create_app"]
