"""Cross-site request forgery: the session cookie alone never authorises a state change.

Browsers attach the `sessionid` cookie to requests that other sites make them send. The
cookie is SameSite=Strict, which already keeps it off cross-site requests in current
browsers; this is the second, independent layer the dashboard relies on. A request that
authenticates *only* through the cookie (no `sessionid` header, no `Authorization`) and
changes state must

- carry `X-CSRF-Token`: an HMAC of the session's token id under a key derived from the
  server's private key, handed out by `GET /dashboard/api/session`. Another site can
  neither read that answer nor set a custom header on a cross-site request without a
  CORS preflight, which this server never grants; and
- when the browser sends `Origin` (every current browser does on POST, PUT, DELETE), name
  this server's own host.

Clients that send the token in a header (curl, ProActive's Java and Python clients) are
not concerned: a forged cross-site request cannot set that header. Login checks the
Origin too (a forged login would sign the victim into the attacker's account).

State-changing means any method but GET, HEAD and OPTIONS, plus ProActive's one GET that
creates something, `jobs/{id}/resubmit`.
"""

from __future__ import annotations

import hashlib
import hmac
from urllib.parse import urlsplit

from cryptography.hazmat.primitives import serialization
from quart import current_app, request

from simple_scheduler.api.errors import ApiError
from simple_scheduler.auth import sessions
from simple_scheduler.auth.keys import KeyPair

#: The header the dashboard sends its token in.
HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset(("GET", "HEAD", "OPTIONS"))
#: Endpoints that change state although their method is safe (ProActive's GET resubmit).
STATE_CHANGING_ENDPOINTS = frozenset(("submission.resubmit",))
_KEY = "simple_scheduler.csrf_key"


class CrossSiteRefused(ApiError):
    """A state change that only the cookie authenticates, without the CSRF proofs (403)."""

    def __init__(self, message: str) -> None:
        super().__init__(403, message)


def _key(keys: KeyPair) -> bytes:
    """A MAC key derived from the private key, so tokens survive a restart and need no
    state: it changes exactly when the keys (and so every session) change."""
    cached = current_app.extensions.get(_KEY)
    if cached is not None and cached[0] is keys:
        return bytes(cached[1])
    der = keys.private_key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    key = hashlib.sha256(b"simple-scheduler csrf v1\0" + der).digest()
    current_app.extensions[_KEY] = (keys, key)
    return key


def token_for(keys: KeyPair, jti: str) -> str:
    """The CSRF token of the session whose token id is `jti`."""
    return hmac.new(_key(keys), jti.encode(), hashlib.sha256).hexdigest()


def changes_state() -> bool:
    return request.method not in SAFE_METHODS or request.endpoint in STATE_CHANGING_ENDPOINTS


def cookie_only() -> bool:
    """Whether the request's session comes from the cookie (no header token)."""
    if request.headers.get(sessions.SESSION_HEADER):
        return False
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return False
    return bool(request.cookies.get(sessions.SESSION_COOKIE))


def own_hosts() -> set[str]:
    """Host names (with port) this request may legitimately come from."""
    hosts = {request.host.lower()}
    forwarded = request.headers.get("X-Forwarded-Host")
    if forwarded:
        hosts.update(h.strip().lower() for h in forwarded.split(","))
    return hosts


def check_origin() -> None:
    """403 when the browser says the request comes from another site."""
    origin = request.headers.get("Origin")
    if origin is None:
        return
    host = urlsplit(origin).netloc.lower() if origin != "null" else ""
    if host not in own_hosts():
        raise CrossSiteRefused(f"cross-site request refused (Origin {origin[:100]!r})")


def protect(keys: KeyPair, jti: str) -> None:
    """Refuse a cookie-authenticated state change without the Origin and token checks."""
    if not changes_state() or not cookie_only():
        return
    check_origin()
    sent = request.headers.get(HEADER, "")
    if not sent or not hmac.compare_digest(sent, token_for(keys, jti)):
        raise CrossSiteRefused(
            "cross-site request refused: a request authenticated by the session cookie "
            f"must send the {HEADER} header (GET /dashboard/api/session gives it)",
        )
