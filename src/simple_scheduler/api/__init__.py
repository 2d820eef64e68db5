"""The REST API: ProActive's scheduler dialect over Quart (PROACTIVE.md, section 1)."""

from simple_scheduler.api.app import Services, create_app

__all__ = ["Services", "create_app"]
