"""Login, sessions and auth errors through the real app (`test_client`)."""

from __future__ import annotations

import asyncio
import dataclasses
import io
from collections import Counter

from apiutil import PASSWORDS, Api, api_fixture  # noqa: F401
from werkzeug.datastructures import FileStorage

from simple_scheduler.api import create_app
from simple_scheduler.auth.credentials import create_credential
from simple_scheduler.auth.sessions import LoginThrottle


async def test_login_by_form_returns_a_token_and_a_cookie(api: Api) -> None:
    client = api.client()
    response = await client.post(
        "/rest/common/login", form={"username": "alice", "password": PASSWORDS["alice"]}
    )
    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    token = await response.get_data(as_text=True)
    assert token.count(".") == 2
    cookie = response.headers["Set-Cookie"]
    assert "sessionid=" in cookie and "HttpOnly" in cookie and "SameSite=Strict" in cookie
    who = await client.get("/rest/common/currentuser", headers={"sessionid": token})
    assert await who.get_data(as_text=True) == "alice"


async def test_login_multipart_and_credential_file(api: Api) -> None:
    client = api.client()
    boundary = "xYzZy"
    body = (
        "".join(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n'
            f"Content-Type: text/plain\r\n\r\n{value}\r\n"
            for name, value in (("username", "bob"), ("password", PASSWORDS["bob"]))
        )
        + f"--{boundary}--\r\n"
    )
    response = await client.post(
        "/rest/scheduler/login",
        data=body.encode(),
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    assert response.status_code == 200, await response.get_data(as_text=True)
    data = create_credential(api.keys.public_key, "bob", PASSWORDS["bob"])
    response = await client.post(
        "/rest/scheduler/login",
        files={"credential": FileStorage(io.BytesIO(data), filename="bob.cred")},
    )
    assert response.status_code == 200, await response.get_data(as_text=True)
    token = await response.get_data(as_text=True)
    who = await client.get("/rest/common/currentuser", headers={"sessionid": token})
    assert await who.get_data(as_text=True) == "bob"


async def test_bad_logins(api: Api) -> None:
    client = api.client()
    bad = await client.post("/rest/scheduler/login", form={"username": "alice", "password": "x"})
    assert bad.status_code == 401
    body = await bad.get_json()
    assert body["httpErrorCode"] == 401 and "password" in body["errorMessage"]
    nobody = await client.post("/rest/scheduler/login", form={"username": "zed", "password": "x"})
    assert nobody.status_code == 401
    missing = await client.post("/rest/scheduler/login", form={"username": "alice"})
    assert missing.status_code == 400
    garbage = await client.post(
        "/rest/scheduler/login",
        files={"credential": FileStorage(io.BytesIO(b"not a credential"), filename="x.cred")},
    )
    assert garbage.status_code == 401


async def test_repeated_failures_are_throttled(api: Api) -> None:
    client = api.client()
    statuses = []
    for _ in range(5):
        response = await client.post(
            "/rest/scheduler/login", form={"username": "bob", "password": "wrong"}
        )
        statuses.append(response.status_code)
    assert statuses[:3] == [401, 401, 401]
    assert 429 in statuses
    locked = await client.post(
        "/rest/scheduler/login", form={"username": "bob", "password": PASSWORDS["bob"]}
    )
    assert locked.status_code == 429
    assert int(locked.headers["Retry-After"]) >= 1


async def _concurrent_wrong_logins(api: Api, names: list[str]) -> Counter[int]:
    """Every login at once, on a fresh throttle; how many got each status."""
    app = create_app(dataclasses.replace(api.services, throttle=LoginThrottle()))
    client = app.test_client()
    responses = await asyncio.gather(
        *(
            client.post("/rest/scheduler/login", form={"username": n, "password": "wrong"})
            for n in names
        )
    )
    return Counter(r.status_code for r in responses)


async def test_concurrent_guesses_for_one_user_are_checked_three_times_at_most(api: Api) -> None:
    """Issue 14.4: the attempt is counted before the password is checked."""
    statuses = await _concurrent_wrong_logins(api, ["bob"] * 64)
    assert set(statuses) == {401, 429} and statuses[401] <= 3, statuses


async def test_concurrent_guesses_from_one_address_are_checked_ten_times_at_most(
    api: Api,
) -> None:
    statuses = await _concurrent_wrong_logins(api, [f"user{i}" for i in range(64)])
    assert set(statuses) == {401, 429} and statuses[401] <= 10, statuses


async def test_connected_currentuser_and_logout(api: Api) -> None:
    client = api.client()
    token = api.tokens["alice"]
    yes = await client.get("/rest/common/connected", headers={"sessionid": token})
    assert await yes.get_json() is True
    no = await client.get("/rest/scheduler/isconnected")
    assert no.status_code == 200 and await no.get_json() is False
    anonymous = await client.get("/rest/common/currentuser")
    assert anonymous.status_code == 401
    out = await client.put("/rest/common/logout", headers={"sessionid": token})
    assert out.status_code == 204
    again = await client.get("/rest/scheduler/jobs", headers={"sessionid": token})
    assert again.status_code == 401
    assert "logged out" in (await again.get_json())["errorMessage"]


async def test_token_in_bearer_header_and_cookie(api: Api) -> None:
    token = api.tokens["alice"]
    client = api.client()
    bearer = await client.get(
        "/rest/common/currentuser", headers={"Authorization": f"Bearer {token}"}
    )
    assert await bearer.get_data(as_text=True) == "alice"
    client.set_cookie("localhost", "sessionid", token, path="/rest")
    cookie = await client.get("/rest/common/currentuser")
    assert await cookie.get_data(as_text=True) == "alice"


async def test_renew_gives_a_fresh_working_token(api: Api) -> None:
    client = api.client()
    response = await client.put("/rest/scheduler/session", headers=api.auth("alice"))
    assert response.status_code == 200
    fresh = await response.get_data(as_text=True)
    assert fresh != api.tokens["alice"]
    who = await client.get("/rest/common/currentuser", headers={"sessionid": fresh})
    assert await who.get_data(as_text=True) == "alice"
    # No valid session: the form logs in instead.
    relogin = await client.put(
        "/rest/scheduler/session", form={"username": "bob", "password": PASSWORDS["bob"]}
    )
    assert relogin.status_code == 200
    refused = await client.put("/rest/scheduler/session", headers={"sessionid": "garbage"})
    # No form either: the bad session is the answer (401), so a client renewing an
    # expired token is told to log in again rather than that its request was malformed.
    assert refused.status_code == 401


async def test_tampered_and_garbage_tokens(api: Api) -> None:
    token = api.tokens["alice"]
    head, payload, signature = token.split(".")
    flipped = payload[:-2] + ("A" if payload[-2] != "A" else "B") + payload[-1]
    for bad in (f"{head}.{flipped}.{signature}", "garbage", "a.b.c", ""):
        response = await api.client().get("/rest/scheduler/jobs", headers={"sessionid": bad})
        assert response.status_code == 401, bad
        body = await response.get_json()
        assert body["httpErrorCode"] == 401


async def test_unknown_route_and_method_are_json_errors(api: Api) -> None:
    missing = await api.get("/rest/scheduler/nothing/here")
    assert missing.status_code == 404
    assert (await missing.get_json())["httpErrorCode"] == 404
    wrong = await api.client().delete("/rest/common/login")
    assert wrong.status_code == 405
    assert (await wrong.get_json())["httpErrorCode"] == 405
