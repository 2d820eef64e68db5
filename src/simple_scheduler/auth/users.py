"""User accounts: names, bcrypt password hashes and the admin flag.

bcrypt is deliberately slow (about 0.2 s at cost 12), so hashing and checking run in a
worker thread to keep the event loop serving other requests. Checking the password of a
user that does not exist still runs one bcrypt check, against a dummy hash of the same
cost, so response time does not tell which names exist.
"""

from __future__ import annotations

import asyncio
import functools
import re
import time
from dataclasses import dataclass

import bcrypt

from simple_scheduler.store.db import Row, Store
from simple_scheduler.store.dbengine import is_unique_violation

DEFAULT_ROUNDS = 12
#: bcrypt only looks at the first 72 bytes; longer passwords are refused, not truncated.
MAX_PASSWORD_BYTES = 72
#: Login names: they end up in PA_USER, logs and URLs, so keep them plain.
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@+-]{0,254}")


class UserError(Exception):
    """A user operation was refused; the message says why."""


class UserExistsError(UserError):
    pass


class UnknownUserError(UserError):
    pass


@dataclass(frozen=True)
class User:
    id: int
    name: str
    is_admin: bool
    created_at: int  # epoch milliseconds


def _user(row: Row) -> User:
    return User(
        id=int(row["id"]),
        name=str(row["name"]),
        is_admin=bool(row["is_admin"]),
        created_at=int(row["created_at"]),
    )


def check_name(name: str) -> None:
    if not name:
        raise UserError("user name is empty")
    if not NAME_PATTERN.fullmatch(name):
        raise UserError(
            f"user name {name!r} is not allowed: use 1 to 255 letters, digits and . _ @ + -,"
            f" starting with a letter or digit"
        )


def check_password(password: str) -> bytes:
    """The password as bcrypt will see it, or a clear refusal."""
    if not password:
        raise UserError("password is empty")
    encoded = password.encode("utf-8")
    if b"\0" in encoded:
        raise UserError("password contains a NUL character")
    if len(encoded) > MAX_PASSWORD_BYTES:
        raise UserError(
            f"password is {len(encoded)} bytes long; bcrypt allows at most {MAX_PASSWORD_BYTES}"
        )
    return encoded


def hash_password(password: str, rounds: int = DEFAULT_ROUNDS) -> bytes:
    """Blocking: call through `asyncio.to_thread`."""
    return bcrypt.hashpw(check_password(password), bcrypt.gensalt(rounds))


@functools.lru_cache(maxsize=4)
def _dummy_hash(rounds: int) -> bytes:
    return bcrypt.hashpw(b"no such user: timing decoy", bcrypt.gensalt(rounds))


def _check(password: str, hashed: bytes | None, rounds: int) -> bool:
    """Blocking: exactly one bcrypt check whatever the input, so failures cost the same."""
    encoded = password.encode("utf-8", "surrogatepass")
    acceptable = 0 < len(encoded) <= MAX_PASSWORD_BYTES and b"\0" not in encoded
    candidate = encoded if acceptable else b"-"
    try:
        matched = bcrypt.checkpw(candidate, hashed if hashed is not None else _dummy_hash(rounds))
    except ValueError:  # a corrupt stored hash: that account cannot log in
        matched = False
    return matched and acceptable and hashed is not None


async def create_user(
    store: Store,
    name: str,
    password: str,
    *,
    is_admin: bool = False,
    rounds: int = DEFAULT_ROUNDS,
) -> User:
    """Add a user; refuses a bad or taken name and an empty or over-long password."""
    check_name(name)
    check_password(password)
    if await get_user(store, name) is not None:  # early, before paying for bcrypt
        raise UserExistsError(f"user {name!r} already exists")
    hashed = await asyncio.to_thread(hash_password, password, rounds)
    created_at = int(time.time() * 1000)
    try:
        async with store.transaction() as tx:
            if await tx.fetch_val("SELECT 1 FROM users WHERE name = :name", {"name": name}):
                raise UserExistsError(f"user {name!r} already exists")
            user_id = await tx.next_id("users")
            await tx.execute(
                "INSERT INTO users (id, name, password_hash, is_admin, created_at) "
                "VALUES (:id, :name, :hash, :is_admin, :created_at)",
                {
                    "id": user_id,
                    "name": name,
                    "hash": hashed.decode("ascii"),
                    "is_admin": is_admin,
                    "created_at": created_at,
                },
            )
    except Exception as exc:
        if not is_unique_violation(exc):
            raise
        # another process added the same name meanwhile
        raise UserExistsError(f"user {name!r} already exists") from None
    return User(user_id, name, is_admin, created_at)


async def delete_user(store: Store, name: str) -> None:
    """Remove a user; their jobs stay (owned by name) and their tokens stop working."""
    async with store.transaction() as tx:
        if not await tx.fetch_val("SELECT 1 FROM users WHERE name = :name", {"name": name}):
            raise UnknownUserError(f"no user named {name!r}")
        await tx.execute("DELETE FROM users WHERE name = :name", {"name": name})


async def get_user(store: Store, name: str) -> User | None:
    if not NAME_PATTERN.fullmatch(name):  # no such user can exist (and PostgreSQL
        return None  # refuses some such text, a NUL, with an error instead of no row)
    row = await store.fetch_one(
        "SELECT id, name, is_admin, created_at FROM users WHERE name = :name", {"name": name}
    )
    return None if row is None else _user(row)


async def list_users(store: Store) -> list[User]:
    rows = await store.fetch_all("SELECT id, name, is_admin, created_at FROM users ORDER BY name")
    return [_user(row) for row in rows]


async def verify_password(
    store: Store, name: str, password: str, *, rounds: int = DEFAULT_ROUNDS
) -> User | None:
    """The user if the password is theirs, else None; same cost either way.

    `rounds` is the cost of the decoy hash for unknown names: pass the configured cost so
    that it matches the real hashes.
    """
    row = (
        await store.fetch_one(
            "SELECT id, name, is_admin, created_at, password_hash FROM users WHERE name = :name",
            {"name": name},
        )
        if NAME_PATTERN.fullmatch(name)  # else no such user: the decoy check below
        else None
    )
    hashed = None if row is None else str(row["password_hash"]).encode("utf-8")
    ok = await asyncio.to_thread(_check, password, hashed, rounds)
    return _user(row) if ok and row is not None else None
