"""The server's REST API as Python calls, and the one place HTTP failures become exit codes.

Only `/rest/...` over HTTP: the client imports nothing of the server, so it works against
any simple-scheduler (or ProActive) server it can reach.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator, Mapping
from types import TracebackType
from typing import Any
from urllib.parse import quote

import httpx

from simple_scheduler.client.errors import JOB_FAILED, NO_SERVER, USAGE, ClientError
from simple_scheduler.client.session import Session

Json = dict[str, Any]
TIMEOUT = httpx.Timeout(60.0, connect=5.0)
#: Jobs fetched per `jobsinfo` page when listing.
JOBS_PAGE = 200


def login_hint(url: str) -> str:
    return f"simple-scheduler login {url}"


def _server_message(response: httpx.Response) -> str:
    """ProActive's `errorMessage`, else the body's first line, else the HTTP reason."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("errorMessage"), str):
        return str(body["errorMessage"])
    text = response.text.strip()
    return text.splitlines()[0][:300] if text else response.reason_phrase


def error_for(response: httpx.Response, session: Session) -> ClientError:
    """The ClientError an unsuccessful answer means for a command-line user."""
    status = response.status_code
    message = _server_message(response)
    if status == 401:
        if session.token is None:
            text = f"not logged in: run `{login_hint(session.url)}` first"
        else:
            text = f"session expired: log in again (`{login_hint(session.url)}`)"
        return ClientError(NO_SERVER, text, status=status)
    if status == 429:
        retry = response.headers.get("Retry-After", "a few")
        text = f"{message} (too many failed logins: retry in {retry} s)"
        return ClientError(NO_SERVER, text, status=status)
    if status == 409:
        return ClientError(JOB_FAILED, message, status=status)
    if status == 503 and response.headers.get("Retry-After"):
        # A standby (or a server taking over): its message names the leader.
        return ClientError(NO_SERVER, f"{message} (HTTP 503)", status=status)
    if status >= 500:
        text = f"the server at {session.url} failed: {message} (HTTP {status})"
        return ClientError(NO_SERVER, text, status=status)
    return ClientError(USAGE, message, status=status)


def task_path(job_id: int, task: str) -> str:
    return f"/scheduler/jobs/{job_id}/tasks/{quote(task, safe='')}"


def renewal_time(token: str) -> float | None:
    """When half of the token's life has passed (epoch seconds), from its unverified JWT
    claims; None when it carries no `iat`/`exp`."""
    try:
        segment = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
        issued, expires = float(claims["iat"]), float(claims["exp"])
    except (IndexError, ValueError, KeyError, TypeError):
        return None
    return issued + (expires - issued) / 2


class Rest:
    """One HTTP connection to the server, with the session's token on every request.

    `keep_alive`: renew the token (`PUT /scheduler/session`) once half its life has passed,
    so a `wait` that started with a valid session outlives it. The renewed token is kept
    in memory only: the saved session still expires when it would have.
    """

    def __init__(self, session: Session, *, keep_alive: bool = False) -> None:
        self.session = session
        headers = {"sessionid": session.token} if session.token else {}
        self._http = httpx.Client(
            base_url=session.url + "/rest", headers=headers, timeout=TIMEOUT, trust_env=False
        )
        self._renew_at = renewal_time(session.token) if keep_alive and session.token else None

    @property
    def token(self) -> str | None:
        """The session token in use (a renewed one once renewed)."""
        token: str | None = self._http.headers.get("sessionid")
        return token

    def __enter__(self) -> Rest:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _unreachable(self, exc: httpx.TransportError) -> ClientError:
        reason = str(exc) or type(exc).__name__
        return ClientError(NO_SERVER, f"cannot reach the server at {self.session.url}: {reason}")

    def renew_if_due(self) -> None:
        """Renew the token once half its life has passed (`keep_alive` only): a watcher
        that makes no request for a while calls this, so its session lives on."""
        if self._renew_at is not None and time.time() >= self._renew_at:
            self._renew()

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """Send, and raise the ClientError of any answer other than 2xx."""
        self.renew_if_due()
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise self._unreachable(exc) from None
        if response.is_success:
            return response
        raise error_for(response, self.session)

    def json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.request(method, path, **kwargs)
        try:
            return response.json()
        except ValueError:
            raise ClientError(
                NO_SERVER, f"the server at {self.session.url} answered {path} with no JSON"
            ) from None

    def _renew(self) -> None:
        self._renew_at = None  # the PUT below goes through request()
        token = self.request("PUT", "/scheduler/session").text.strip()
        self._http.cookies.clear()
        self._http.headers["sessionid"] = token
        self._renew_at = renewal_time(token)

    # Sessions.

    def login(self, files: Mapping[str, tuple[str, bytes]] | None, data: Mapping[str, str]) -> str:
        """The new session token (401 here means bad credentials, not an old session)."""
        try:
            response = self._http.post("/scheduler/login", data=dict(data), files=files)
        except httpx.TransportError as exc:
            raise self._unreachable(exc) from None
        if response.status_code == 401:
            raise ClientError(NO_SERVER, f"login refused: {_server_message(response)}", status=401)
        if response.status_code == 404:
            raise ClientError(
                NO_SERVER, f"no simple-scheduler REST API at {self.session.url}/rest", status=404
            )
        if not response.is_success:
            raise error_for(response, self.session)
        token = response.text.strip()
        if not token or len(token.split(".")) != 3:
            raise ClientError(NO_SERVER, f"the server at {self.session.url} sent no session token")
        return token

    def logout(self) -> None:
        self.request("PUT", "/common/logout")

    def current_user(self) -> str:
        return self.request("GET", "/common/currentuser").text

    # Jobs.

    def submit(self, workflow: bytes, filename: str, variables: Mapping[str, str]) -> Json:
        """`{"id", "readableName"}` of the new job."""
        result: Json = self.json(
            "POST", "/scheduler/submit", files=_workflow_parts(workflow, filename, variables)
        )
        return result

    def validate(self, workflow: bytes, filename: str, variables: Mapping[str, str]) -> Json:
        """ProActive's JobValidationData: `valid`, and `errorMessage` (one problem a line)."""
        result: Json = self.json(
            "POST", "/scheduler/validate", files=_workflow_parts(workflow, filename, variables)
        )
        return result

    def jobs(self) -> Iterator[Json]:
        """Every visible job's `UserJobData`, newest first, fetched page by page."""
        seen: set[str] = set()
        index = 0
        while True:
            page = self.json(
                "GET", "/scheduler/jobsinfo", params={"index": index, "limit": JOBS_PAGE}
            )
            items: list[Json] = page.get("list") or []
            for item in items:
                if item["jobid"] not in seen:  # a submission meanwhile shifts the pages
                    seen.add(item["jobid"])
                    yield item
            index += len(items)
            if len(items) < JOBS_PAGE or index >= int(page.get("size", 0)):
                return

    def job_info(self, job_id: int) -> Json:
        info: Json = self.json("GET", f"/scheduler/jobs/{job_id}/info")
        return info

    def job_state(self, job_id: int) -> Json:
        state: Json = self.json("GET", f"/scheduler/jobs/{job_id}")
        return state

    def task_state(self, job_id: int, task: str) -> Json:
        state: Json = self.json("GET", task_path(job_id, task))
        return state

    def job_action(self, job_id: int, action: str) -> bool:
        """PUT kill|pause|resume: the server's true/false."""
        return bool(self.json("PUT", f"/scheduler/jobs/{job_id}/{action}"))

    def task_action(self, job_id: int, task: str, action: str) -> bool:
        """PUT kill|restart|restartInErrorTask|finishInErrorTask on a task."""
        return bool(self.json("PUT", f"{task_path(job_id, task)}/{action}"))

    def remove(self, job_id: int) -> bool:
        return bool(self.json("DELETE", f"/scheduler/jobs/{job_id}"))

    # Output.

    def read_log(self, job_id: int, task: str, stream: str, offset: int) -> tuple[bytes, int]:
        """A task's `out` or `err` from byte `offset`, and the offset to continue from."""
        path = f"{task_path(job_id, task)}/result/log/{stream}"
        response = self.request("GET", path, params={"offset": offset})
        data = response.content
        return data, _next_offset(response, offset + len(data))

    def copy_log(self, job_id: int, task: str, stream: str, offset: int, sink: Any) -> int:
        """Copy a task's output from `offset` to the binary file `sink` without holding it
        in memory; returns the offset to continue from."""
        path = f"{task_path(job_id, task)}/result/log/{stream}"
        try:
            with self._http.stream("GET", path, params={"offset": offset}) as response:
                if not response.is_success:
                    response.read()
                    raise error_for(response, self.session)
                received = 0
                for chunk in response.iter_bytes():
                    sink.write(chunk)
                    received += len(chunk)
                return _next_offset(response, offset + received)
        except httpx.TransportError as exc:
            raise self._unreachable(exc) from None


def _workflow_parts(
    workflow: bytes, filename: str, variables: Mapping[str, str]
) -> dict[str, tuple[str, bytes, str]]:
    """The multipart body of submit and validate: the workflow, and a `variables` JSON part."""
    kind = "application/zip" if workflow[:4] == b"PK\x03\x04" else "application/xml"
    parts = {"file": (filename, workflow, kind)}
    if variables:
        encoded = json.dumps(dict(variables)).encode()
        parts["variables"] = ("variables.json", encoded, "application/json")
    return parts


def _next_offset(response: httpx.Response, default: int) -> int:
    header = response.headers.get("X-Next-Offset", "")
    return int(header) if header.isdigit() else default
