"""Users, session tokens, revocation and the login throttle, on a real SQLite file."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import bcrypt
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from simple_scheduler.auth import sessions, users
from simple_scheduler.auth.keys import KeyPair, ensure_keys
from simple_scheduler.auth.sessions import (
    AuthError,
    LoginThrottle,
    LoginThrottled,
    Principal,
    extract_token,
    issue_token,
    renew,
    revoke,
    verify_token,
)
from simple_scheduler.store.db import Store
from simple_scheduler.store.migrate import migrate

T = TypeVar("T")
ROUNDS = 4


def with_store(path: Path, work: Callable[[Store], Awaitable[T]]) -> T:
    async def main() -> T:
        store = await Store.open(f"sqlite+aiosqlite:///{path}")
        try:
            await migrate(store)
            return await work(store)
        finally:
            await store.close()

    return asyncio.run(main())


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> KeyPair:
    folder = tmp_path_factory.mktemp("keys")
    return ensure_keys(folder / "private.pem", folder / "public.pem")


@pytest.fixture(scope="module")
def other_keys() -> KeyPair:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return KeyPair(private, private.public_key())


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "db.sqlite"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def claims_for(name: str, *, lifetime: int = 600) -> dict[str, Any]:
    now = int(time.time())
    return {"sub": name, "adm": True, "iat": now, "exp": now + lifetime, "jti": "j" * 32}


# -- users ----------------------------------------------------------------------------------


def test_user_crud(db: Path) -> None:
    async def work(store: Store) -> None:
        alice = await users.create_user(store, "alice", "pw-a", is_admin=True, rounds=ROUNDS)
        bob = await users.create_user(store, "bob", "pw-b", rounds=ROUNDS)
        assert alice.is_admin and not bob.is_admin and alice.id != bob.id
        assert [u.name for u in await users.list_users(store)] == ["alice", "bob"]
        assert await users.get_user(store, "bob") == bob
        stored = await store.fetch_val("SELECT password_hash FROM users WHERE name = 'alice'")
        assert str(stored).startswith("$2b$04$") and "pw-a" not in str(stored)

        with pytest.raises(users.UserExistsError, match="'alice' already exists"):
            await users.create_user(store, "alice", "other", rounds=ROUNDS)
        for bad_name in ("", " alice", "a/b", "x" * 256):
            with pytest.raises(users.UserError):
                await users.create_user(store, bad_name, "pw", rounds=ROUNDS)
        with pytest.raises(users.UserError, match="password is empty"):
            await users.create_user(store, "carol", "", rounds=ROUNDS)
        with pytest.raises(users.UserError, match="at most 72"):
            await users.create_user(store, "carol", "p" * 73, rounds=ROUNDS)
        assert await users.get_user(store, "carol") is None

        await users.delete_user(store, "bob")
        assert await users.get_user(store, "bob") is None
        with pytest.raises(users.UnknownUserError, match="no user named 'bob'"):
            await users.delete_user(store, "bob")

    with_store(db, work)


def test_verify_password(db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    checks: list[bytes] = []
    real_checkpw = bcrypt.checkpw

    def counting_checkpw(password: bytes, hashed: bytes) -> bool:
        checks.append(hashed)
        return real_checkpw(password, hashed)

    monkeypatch.setattr(bcrypt, "checkpw", counting_checkpw)

    async def work(store: Store) -> None:
        await users.create_user(store, "alice", "right", rounds=ROUNDS)
        user = await users.verify_password(store, "alice", "right", rounds=ROUNDS)
        assert user is not None and user.name == "alice"
        assert await users.verify_password(store, "alice", "wrong", rounds=ROUNDS) is None
        assert await users.verify_password(store, "alice", "", rounds=ROUNDS) is None
        assert await users.verify_password(store, "alice", "r" * 100, rounds=ROUNDS) is None
        checks.clear()
        # Unknown name: refused, but only after a real bcrypt check (no timing oracle).
        assert await users.verify_password(store, "mallory", "right", rounds=ROUNDS) is None
        assert len(checks) == 1 and checks[0].startswith(b"$2b$04$")

    with_store(db, work)


# -- tokens ---------------------------------------------------------------------------------


def test_valid_token_gives_the_principal(db: Path, keys: KeyPair) -> None:
    async def work(store: Store) -> None:
        alice = await users.create_user(store, "alice", "pw", is_admin=True, rounds=ROUNDS)
        token = issue_token(keys, alice, 600)
        header = jwt.get_unverified_header(token)
        assert header["alg"] == "RS256"
        principal = await verify_token(store, keys, token)
        assert (principal.name, principal.is_admin) == ("alice", True)
        assert len(principal.jti) == 32 and principal.exp - principal.iat == 600
        # Another token for the same user has its own id.
        assert (await verify_token(store, keys, issue_token(keys, alice, 600))).jti != (
            principal.jti
        )

    with_store(db, work)


def test_bad_tokens_are_refused(db: Path, keys: KeyPair, other_keys: KeyPair) -> None:
    async def work(store: Store) -> dict[str, str]:
        alice = await users.create_user(store, "alice", "pw", rounds=ROUNDS)
        good = issue_token(keys, alice, 600)
        head, payload, signature = good.split(".")
        forged_payload = b64(json.dumps(claims_for("alice")).encode())
        public_pem = keys.public_pem
        hs_header = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
        hs_signing_input = f"{hs_header}.{forged_payload}".encode()
        hs_signature = b64(hmac.new(public_pem, hs_signing_input, hashlib.sha256).digest())
        none_header = b64(json.dumps({"alg": "none", "typ": "JWT"}).encode())
        no_jti = {k: v for k, v in claims_for("alice").items() if k != "jti"}
        cases = {
            "none": "",
            "absent": None,
            "garbage": "not.a.token",
            "tampered signature": f"{head}.{payload}.{signature[:-4]}AAAA",
            "tampered payload": f"{head}.{forged_payload}.{signature}",
            "expired": issue_token(keys, alice, 600, now=time.time() - 3600),
            "alg none": f"{none_header}.{forged_payload}.",
            "HS256 with public key": f"{hs_header}.{forged_payload}.{hs_signature}",
            "wrong key": issue_token(other_keys, alice, 600),
            "missing jti": jwt.encode(no_jti, keys.private_key, algorithm="RS256"),
            "unknown user": issue_token(keys, users.User(9, "ghost", True, 0), 600),
        }
        messages = {}
        for name, token in cases.items():
            with pytest.raises(AuthError) as info:
                await verify_token(store, keys, token)
                pytest.fail(f"{name} token accepted")
            messages[name] = info.value.message
        return messages

    messages = with_store(db, work)
    assert "no session token" in messages["absent"]
    assert "expired" in messages["expired"]
    assert "unknown user 'ghost'" in messages["unknown user"]
    assert "jti" in messages["missing jti"]


def test_revoked_token_is_refused_and_old_revocations_are_purged(db: Path, keys: KeyPair) -> None:
    async def work(store: Store) -> None:
        alice = await users.create_user(store, "alice", "pw", rounds=ROUNDS)
        token = issue_token(keys, alice, 600)
        other = issue_token(keys, alice, 600)
        principal = await verify_token(store, keys, token)
        await store.execute("INSERT INTO revoked_tokens (jti, expires_at) VALUES ('stale', 1000)")
        await revoke(store, principal)
        await revoke(store, principal)  # logging out twice is harmless
        with pytest.raises(AuthError, match="logged out"):
            await verify_token(store, keys, token)
        assert (await verify_token(store, keys, other)).name == "alice"
        rows = await store.fetch_all("SELECT jti, expires_at FROM revoked_tokens")
        assert [(r["jti"], r["expires_at"]) for r in rows] == [
            (principal.jti, principal.exp * 1000)
        ]

    with_store(db, work)


def test_admin_flag_comes_from_the_database(db: Path, keys: KeyPair) -> None:
    async def work(store: Store) -> None:
        alice = await users.create_user(store, "alice", "pw", is_admin=True, rounds=ROUNDS)
        token = issue_token(keys, alice, 600)
        await store.execute("UPDATE users SET is_admin = FALSE WHERE name = 'alice'")
        assert (await verify_token(store, keys, token)).is_admin is False
        await users.delete_user(store, "alice")
        with pytest.raises(AuthError):
            await verify_token(store, keys, token)

    with_store(db, work)


def test_renew_issues_a_fresh_token(db: Path, keys: KeyPair) -> None:
    async def work(store: Store) -> None:
        alice = await users.create_user(store, "alice", "pw", rounds=ROUNDS)
        old = await verify_token(store, keys, issue_token(keys, alice, 60))
        new = await verify_token(store, keys, await renew(store, keys, old, 3600))
        assert new.name == "alice" and new.jti != old.jti and new.exp >= old.exp + 3000
        ghost = Principal("ghost", False, "x", old.exp)
        with pytest.raises(AuthError, match="no longer exists"):
            await renew(store, keys, ghost, 60)

    with_store(db, work)


def test_extract_token_sources() -> None:
    assert extract_token({"sessionid": "a", "Authorization": "Bearer b"}, {"sessionid": "c"}) == "a"
    assert extract_token({"Authorization": "Bearer b"}, {"sessionid": "c"}) == "b"
    assert extract_token({"Authorization": "Basic b"}, {"sessionid": "c"}) == "c"
    assert extract_token({}, {}) is None


# -- throttle -------------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_throttle_backs_off_exponentially_and_resets_on_success() -> None:
    clock = Clock()
    throttle = LoginThrottle(clock=clock)
    waits = []
    for _ in range(10):
        waits.append(throttle.wait_time("alice", "10.0.0.1"))
        throttle.record_failure("alice", "10.0.0.1")
    waits.append(throttle.wait_time("alice", "10.0.0.1"))
    assert waits == [0, 0, 0, 1, 2, 4, 8, 16, 30, 30, 30]  # 3 free, then 1 s doubling, capped
    clock.now += 29.5
    assert throttle.wait_time("alice", "10.0.0.1") == pytest.approx(0.5)
    # The user is locked from everywhere; another user from a fresh address is not.
    assert throttle.wait_time("alice", "10.9.9.9") == 30 - 29.5
    assert throttle.wait_time("bob", "10.9.9.9") == 0
    throttle.record_success("alice", "10.9.9.9")
    assert throttle.wait_time("alice", "10.9.9.9") == 0


def test_throttle_per_address_and_forgetting() -> None:
    clock = Clock()
    throttle = LoginThrottle(clock=clock)
    for i in range(9):  # spraying one guess per user from one address
        throttle.record_failure(f"user{i}", "10.0.0.2")
    throttle.begin("user0", "10.0.0.2")  # a success does not clear the address...
    throttle.record_success("user0", "10.0.0.2")  # ...it only takes its own attempt back
    assert throttle.wait_time("newcomer", "10.0.0.2") == 0
    throttle.record_failure("user9", "10.0.0.2")
    assert throttle.wait_time("newcomer", "10.0.0.2") == 1.0
    assert throttle.wait_time("newcomer", "10.0.0.3") == 0
    clock.now += 15 * 60
    assert throttle.wait_time("newcomer", "10.0.0.2") == 0
    throttle.record_failure("user0", "10.0.0.2")  # counting starts over after forgetting
    assert throttle.wait_time("user0", "10.0.0.2") == 0


def test_login_uses_the_throttle(db: Path, keys: KeyPair) -> None:
    clock = Clock()
    throttle = LoginThrottle(clock=clock)

    async def attempt(store: Store, password: str) -> str:
        return await sessions.login(
            store,
            keys,
            throttle,
            "alice",
            password,
            address="1.2.3.4",
            lifetime=60,
            rounds=ROUNDS,
        )

    async def work(store: Store) -> None:
        await users.create_user(store, "alice", "right", rounds=ROUNDS)
        token = await attempt(store, "right")
        assert (await verify_token(store, keys, token)).name == "alice"
        for _ in range(3):
            with pytest.raises(AuthError, match="bad user name or password"):
                await attempt(store, "wrong")
        # Locked: even the right password is refused, without being checked.
        with pytest.raises(LoginThrottled) as info:
            await attempt(store, "right")
        assert info.value.retry_after == 1.0
        clock.now += 1.0
        assert await attempt(store, "right")
        assert throttle.wait_time("alice", None) == 0

    with_store(db, work)
