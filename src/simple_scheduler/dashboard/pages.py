"""The dashboard's pages: one HTML shell for every page path, its static files, and the
security headers every response of this server carries.

The pages are built in the browser from the REST API (no server-side templates, so no
user string ever passes through HTML text on the server). Each page path (`/jobs/42`,
`/jobs/42/tasks/B`, ...) answers the same shell, so a deep link survives a reload; the
shell's script reads the path and draws the page.

Content-Security-Policy: scripts and styles only from this origin, no inline script or
style, no plugins, no framing, and fetch/WebSocket to this origin only. API responses get
a stricter policy (nothing at all may load), so a log opened in a tab stays inert text.
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

from quart import Blueprint, Quart, Response, send_from_directory
from werkzeug.exceptions import NotFound

STATIC = Path(__file__).resolve().parent / "static"
#: Static files live under /dashboard/static/<version>/, cached for a year: the version is
#: a hash of their contents, so a release changes every URL and nothing stale is ever used,
#: and a page load costs no revalidation round trips (the scripts are ES modules that
#: import each other by relative path, so they all inherit the versioned prefix).
STATIC_PREFIX = "/dashboard/static"
IMMUTABLE = "public, max-age=31536000, immutable"
_PRELOAD_MARK = b"<!-- modulepreload -->"

PAGE_CSP = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "font-src 'self'",
        "manifest-src 'self'",
        "form-action 'self'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
    )
)
#: For everything that is not a page: JSON, logs, downloads.
API_CSP = "default-src 'none'; frame-ancestors 'none'; sandbox"

blueprint = Blueprint("dashboard", __name__)

#: Page paths the shell answers (the browser-side router draws them).
PAGES = (
    "/",
    "/login",
    "/jobs",
    "/jobs/<job_id>",
    "/jobs/<job_id>/tasks/<path:task_name>",
    "/submit",
)


def _files() -> list[Path]:
    return sorted(p for p in STATIC.rglob("*") if p.is_file())


@functools.cache
def version() -> str:
    """A hash of every static file: changes exactly when one of them does."""
    digest = hashlib.sha256()
    for path in _files():
        digest.update(str(path.relative_to(STATIC)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


@functools.cache
def shell_bytes() -> bytes:
    """index.html with versioned URLs and a modulepreload link for every script, so the
    browser fetches all modules at once instead of discovering them import by import."""
    prefix = f"{STATIC_PREFIX}/{version()}"
    scripts = [p.relative_to(STATIC).as_posix() for p in _files() if p.suffix == ".js"]
    links = "\n".join(
        f'<link rel="modulepreload" href="{STATIC_PREFIX}/{name}">' for name in scripts
    )
    html = (STATIC / "index.html").read_bytes()
    html = html.replace(_PRELOAD_MARK, links.encode())
    return html.replace(f'"{STATIC_PREFIX}/'.encode(), f'"{prefix}/'.encode())


async def shell(**_: str) -> Response:
    """The app shell; never cached, so a new release's scripts are picked up at once."""
    response = Response(shell_bytes(), content_type="text/html; charset=utf-8")
    response.headers["Cache-Control"] = "no-cache"
    return response


for _number, _path in enumerate(PAGES):
    blueprint.add_url_rule(_path, f"page{_number}", shell, methods=["GET"])


@blueprint.get(f"{STATIC_PREFIX}/<tag>/<path:filename>")
async def static_file(tag: str, filename: str) -> Response:
    """A static file; cached for good when `tag` is the current version (an older page
    still open during an upgrade gets today's file, revalidated every time)."""
    try:
        response = await send_from_directory(STATIC, filename)
    except (NotFound, FileNotFoundError):
        raise NotFound() from None
    response.headers["Cache-Control"] = IMMUTABLE if tag == version() else "no-cache"
    return response


async def add_security_headers(response: Response) -> Response:
    """Headers for every response: pages get PAGE_CSP, anything else API_CSP.

    A coroutine on purpose: Quart runs a plain function hook in its thread pool, a hop
    to a worker thread and back for every response of the server (under the soak's 32
    clients, the pool's queue was a good part of every request's wait)."""
    headers = response.headers
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("Referrer-Policy", "same-origin")
    headers.setdefault("X-Frame-Options", "DENY")
    is_page = (response.mimetype or "") == "text/html"
    headers.setdefault("Content-Security-Policy", PAGE_CSP if is_page else API_CSP)
    return response


def install(app: Quart) -> None:
    """Register the pages, the data endpoints and the header hook on `app`."""
    from simple_scheduler.dashboard import data

    app.register_blueprint(blueprint)
    app.register_blueprint(data.blueprint)
    app.after_request(add_security_headers)
