"""Where the client finds the server and its session token.

`login` stores `{"url", "token", "user"}` in `$XDG_CONFIG_HOME/simple-scheduler/session.json`
(default `~/.config/...`): the file is 0600 and its directory 0700 because the token is a
password for as long as it lives. `SIMPLE_SCHEDULER_URL` and `SIMPLE_SCHEDULER_TOKEN` win
over the file, so CI jobs need no file at all.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from simple_scheduler.client.errors import USAGE, ClientError

ENV_URL = "SIMPLE_SCHEDULER_URL"
ENV_TOKEN = "SIMPLE_SCHEDULER_TOKEN"
DEFAULT_URL = "http://127.0.0.1:8000"
FILE_NAME = "session.json"


@dataclass(frozen=True)
class Session:
    """The server's base URL (without `/rest`), and the token when logged in."""

    url: str
    token: str | None = None
    user: str | None = None


def config_dir() -> Path:
    """`$XDG_CONFIG_HOME/simple-scheduler`; the spec says to ignore a relative value."""
    base = os.environ.get("XDG_CONFIG_HOME", "")
    root = Path(base) if os.path.isabs(base) else Path.home() / ".config"
    return root / "simple-scheduler"


def session_path() -> Path:
    return config_dir() / FILE_NAME


def normalize_url(text: str) -> str:
    """`host:8000`, `http://host:8000/` and `http://host:8000/rest` all name one server."""
    url = text.strip()
    if not url:
        raise ClientError(USAGE, "the server URL is empty")
    if "://" not in url:
        url = "http://" + url
    scheme = url.split("://", 1)[0].lower()
    if scheme not in ("http", "https"):
        raise ClientError(USAGE, f"unsupported URL scheme {scheme!r}: use http:// or https://")
    url = url.rstrip("/")
    if url.endswith("/rest"):
        url = url[: -len("/rest")]
    return url


def load_stored() -> Session | None:
    """The session `login` saved, or None (a damaged file counts as no session)."""
    try:
        data = json.loads(session_path().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("url"), str):
        return None
    token, user = data.get("token"), data.get("user")
    return Session(
        url=data["url"],
        token=token if isinstance(token, str) and token else None,
        user=user if isinstance(user, str) else None,
    )


def current() -> Session:
    """The session to use: the environment first, then the stored file, then defaults."""
    stored = load_stored()
    env_url, env_token = os.environ.get(ENV_URL), os.environ.get(ENV_TOKEN)
    url = normalize_url(env_url) if env_url else stored.url if stored else DEFAULT_URL
    if env_token:
        return Session(url=url, token=env_token)
    if stored is not None and stored.url == url:
        return Session(url=url, token=stored.token, user=stored.user)
    return Session(url=url)


def save(session: Session) -> Path:
    """Write the session atomically, readable by its owner only."""
    directory = config_dir()
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    with contextlib.suppress(OSError):
        directory.chmod(0o700)
    path = directory / FILE_NAME
    temporary = directory / f".{FILE_NAME}.{os.getpid()}.tmp"
    data = json.dumps({"url": session.url, "token": session.token, "user": session.user})
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            os.fchmod(f.fileno(), 0o600)  # O_CREAT's mode does not apply to an old file
            f.write(data + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise
    return path


def remove() -> bool:
    """Forget the stored session; False when there was none."""
    try:
        session_path().unlink()
    except FileNotFoundError:
        return False
    return True
