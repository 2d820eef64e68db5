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

from importlib import resources

from quart import Blueprint, Quart, Response

STATIC = resources.files("simple_scheduler.dashboard") / "static"

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

blueprint = Blueprint(
    "dashboard",
    __name__,
    static_folder="static",
    static_url_path="/dashboard/static",
)

#: Page paths the shell answers (the browser-side router draws them).
PAGES = (
    "/",
    "/login",
    "/jobs",
    "/jobs/<job_id>",
    "/jobs/<job_id>/tasks/<path:task_name>",
    "/submit",
)


def _shell_bytes() -> bytes:
    return (STATIC / "index.html").read_bytes()


async def shell(**_: str) -> Response:
    """The app shell; never cached, so a new release's script is picked up at once."""
    response = Response(_shell_bytes(), content_type="text/html; charset=utf-8")
    response.headers["Cache-Control"] = "no-cache"
    return response


for _number, _path in enumerate(PAGES):
    blueprint.add_url_rule(_path, f"page{_number}", shell, methods=["GET"])


@blueprint.after_request
async def revalidate_static(response: Response) -> Response:
    """Static files are small and change with each release: revalidate (ETag /
    Last-Modified) instead of Quart's default of 12 hours of stale scripts."""
    response.headers["Cache-Control"] = "no-cache"
    return response


def add_security_headers(response: Response) -> Response:
    """Headers for every response: pages get PAGE_CSP, anything else API_CSP."""
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
