"""Login, logout, session checks: ProActive's `/common` and `/scheduler` session calls.

Login answers the token as `text/plain` (ProActive clients read the body as the session
id) and also sets it as an HttpOnly, SameSite=Strict cookie (Secure over HTTPS, path /)
for browsers; state changes through the cookie are guarded by `csrf`. Bad credentials
are 401 (ProActive says 404, which no client relies on); repeated failures are throttled by
`sessions.LoginThrottle` and answered 429 with `Retry-After`.
"""

from __future__ import annotations

from quart import Blueprint, Response, request

from simple_scheduler.api import csrf
from simple_scheduler.api.access import (
    authenticate,
    request_token,
)
from simple_scheduler.api.context import services
from simple_scheduler.api.errors import ApiError
from simple_scheduler.auth import sessions
from simple_scheduler.auth.credentials import CredentialError, read_credential
from simple_scheduler.auth.sessions import AuthError

blueprint = Blueprint("session", __name__)


async def _credentials() -> tuple[str, str]:
    """(username, password) from a form or multipart body, or from a `credential` part."""
    form = await request.form
    files = await request.files
    upload = files.get("credential")
    if upload is not None:
        data = upload.read()
        try:
            return read_credential(services().keys.private_key, data)
        except CredentialError as exc:
            raise AuthError(f"credential refused: {exc}") from None
    if "credential" in form:
        raise ApiError(400, "send the credential file as a file part (curl -F credential=@FILE)")
    username, password = form.get("username"), form.get("password")
    if not username or password is None:
        raise ApiError(400, "login needs username and password, or a credential file part")
    return username, password


def _https() -> bool:
    """Served over HTTPS, directly or behind a proxy that says so (trusting the header
    can only make the cookie stricter)."""
    forwarded = request.headers.get("X-Forwarded-Proto", "").split(",")[0].strip().lower()
    return request.scheme == "https" or forwarded == "https"


def _token_response(token: str) -> Response:
    response = Response(token, status=200, content_type="text/plain; charset=utf-8")
    # Path "/": the dashboard's pages and data endpoints live outside /rest.
    response.set_cookie(
        sessions.SESSION_COOKIE,
        token,
        max_age=services().config.token_lifetime_s,
        path="/",
        httponly=True,
        secure=_https(),
        samesite="Strict",
    )
    return response


async def _login() -> Response:
    csrf.check_origin()  # a forged cross-site login would sign the victim in as someone else
    username, password = await _credentials()
    svc = services()
    token = await sessions.login(
        svc.store,
        svc.keys,
        svc.throttle,
        username,
        password,
        address=request.remote_addr,
        lifetime=svc.config.token_lifetime_s,
        rounds=svc.config.bcrypt_rounds,
    )
    return _token_response(token)


@blueprint.post("/scheduler/login")
@blueprint.post("/common/login")
async def login() -> Response:
    """Log in with username and password, or a credential file; returns the session token."""
    return await _login()


@blueprint.put("/scheduler/session")
async def renew() -> Response:
    """Renew a valid session (a fresh token), or log in with the form as /login does."""
    if request_token():
        try:
            principal = await authenticate()
        except (AuthError, csrf.CrossSiteRefused) as exc:
            # No session this request may use: the form decides, if it sent one; else
            # the refusal stands (a client renewing an expired token needs its 401).
            form, files = await request.form, await request.files
            if not (form or files):
                raise exc
        else:
            svc = services()
            lifetime = svc.config.token_lifetime_s
            token = await sessions.renew(svc.store, svc.keys, principal, lifetime)
            return _token_response(token)
    return await _login()


@blueprint.put("/common/logout")
@blueprint.put("/scheduler/disconnect")
async def logout() -> Response:
    """Revoke the session token (204)."""
    principal = await authenticate()
    await sessions.revoke(services().store, principal)
    services().tokens.evict_jti(principal.jti)
    # Its event streams end with it.
    services().scheduler.events.close_session(principal.jti, "logged out")
    response = Response("", status=204)
    response.delete_cookie(sessions.SESSION_COOKIE, path="/", httponly=True, samesite="Strict")
    return response


@blueprint.get("/common/connected")
@blueprint.get("/scheduler/isconnected")
async def connected() -> Response:
    """`true` when the request carries a valid session, else `false`: exactly that text
    (ProActive's Python helpers compare the body with "true")."""
    try:
        await authenticate()
    except AuthError:
        return Response("false", content_type="application/json")
    return Response("true", content_type="application/json")


@blueprint.get("/common/currentuser")
async def current_user() -> Response:
    """The login name of the session, as text."""
    principal = await authenticate()
    return Response(principal.name, content_type="text/plain; charset=utf-8")
