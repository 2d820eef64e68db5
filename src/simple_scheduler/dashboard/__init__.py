"""The web dashboard: pages at `/` built in the browser on the REST API.

Runs in the web process. May import `api` (its access checks, views and errors, so a
page shows exactly what the API would), `workflow`, `states`, `config`; the store only
through the same reads the API makes. Static files (HTML, JS, CSS) ship in `static/`
as package data: no build step, nothing fetched from a CDN.
"""

from simple_scheduler.dashboard.pages import install

__all__ = ["install"]
