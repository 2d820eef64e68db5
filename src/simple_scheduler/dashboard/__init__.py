"""The web dashboard: pages at `/`, drawn in the browser from the REST API.

Runs in the web process. Imports `api` for its access checks, views and errors (so a page
shows exactly what the API would, with the same 404s), `workflow`, `states`, `config`, and
reads the store directly only for the few compact answers the API has no shape for
(`data.py`). Static files (HTML, JS modules, CSS) ship in `static/` as package data: no
build step, nothing fetched from a CDN.
"""

from simple_scheduler.dashboard.pages import install

__all__ = ["install"]
