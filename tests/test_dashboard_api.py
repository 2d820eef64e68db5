"""The dashboard's server side through the real app (`test_client`): the page shell and
its headers, CSRF protection of cookie sessions, and the compact data endpoints with the
API's visibility rules. The pages themselves are tested in a browser
(test_dashboard_browser.py)."""

from __future__ import annotations

import io
import re
import zipfile
from inspect import iscoroutinefunction
from typing import Any

from apiutil import PASSWORDS, Api, api_fixture  # noqa: F401
from werkzeug.datastructures import FileStorage
from wfxml import job_xml

from simple_scheduler.dashboard import pages

DIAMOND = job_xml(
    [
        {"name": "A", "bash": "echo A"},
        {"name": "B", "depends": ["A"], "bash": "echo B"},
        {"name": "C", "depends": ["A"], "bash": "echo C"},
        {"name": "D", "depends": ["B", "C"], "bash": "echo D"},
    ],
    name="diamond",
)
SLEEPER = job_xml([{"name": "nap", "native": ["sleep", "30"]}], name="sleeper")


async def cookie_client(api: Api, user: str = "alice") -> Any:
    """A test client that authenticates with the session cookie only, like a browser."""
    client = api.client()
    response = await client.post(
        "/rest/scheduler/login", form={"username": user, "password": PASSWORDS[user]}
    )
    assert response.status_code == 200
    assert client.cookie_jar is not None and any(
        c.name == "sessionid" for c in client.cookie_jar
    ), "login set no cookie"
    return client


async def csrf_token(client: Any) -> str:
    session = await (await client.get("/dashboard/api/session")).get_json()
    token: str = session["csrfToken"]
    return token


# -- pages and headers -----------------------------------------------------------------------


async def test_every_page_path_serves_the_shell_with_a_strict_csp(api: Api) -> None:
    client = api.client()
    for path in ("/", "/login", "/jobs", "/jobs/42", "/jobs/42/tasks/B%20b", "/submit"):
        response = await client.get(path)
        assert response.status_code == 200, path
        assert response.mimetype == "text/html"
        csp = response.headers["Content-Security-Policy"]
        assert "script-src 'self'" in csp and "unsafe" not in csp
        assert "frame-ancestors 'none'" in csp and "default-src 'none'" in csp
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        html = await response.get_data(as_text=True)
        # No inline script: every <script> loads a file of ours.
        for tag in re.findall(r"<script[^>]*>", html):
            assert 'src="/dashboard/static/' in tag, tag
        assert "style=" not in html
    assert (await client.get("/jobs/42/nothing")).status_code == 404


async def test_static_files_are_versioned_and_cached_for_good(api: Api) -> None:
    client = api.client()
    html = await (await client.get("/jobs")).get_data(as_text=True)
    version = pages.version()
    assert f"/dashboard/static/{version}/app.js" in html
    assert f'rel="modulepreload" href="/dashboard/static/{version}/views/job.js"' in html
    script = await client.get(f"/dashboard/static/{version}/graph.js")
    assert script.status_code == 200
    assert script.mimetype in ("text/javascript", "application/javascript")
    assert "immutable" in script.headers["Cache-Control"]
    stale = await client.get("/dashboard/static/000000000000/graph.js")
    assert stale.status_code == 200 and stale.headers["Cache-Control"] == "no-cache"
    for name in ("../pages.py", "nope.js", "../../api/csrf.py"):
        assert (await client.get(f"/dashboard/static/{version}/{name}")).status_code == 404


def test_no_script_assigns_html() -> None:
    """User strings reach the page through textContent and attributes only."""
    forbidden = ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(")
    for path in sorted(pages.STATIC.rglob("*.js")):
        code = re.sub(r"/\*.*?\*/", "", path.read_text(), flags=re.DOTALL)
        code = re.sub(r"//[^\n]*", "", code)
        for name in forbidden:
            assert name not in code, f"{path.name} uses {name}"


async def test_api_answers_carry_a_csp_that_allows_nothing(api: Api) -> None:
    response = await api.client().get("/rest/health")
    assert response.headers["Content-Security-Policy"].startswith("default-src 'none'")
    assert "sandbox" in response.headers["Content-Security-Policy"]
    assert response.headers["X-Content-Type-Options"] == "nosniff"


async def test_request_hooks_run_in_the_loop(api: Api) -> None:
    """Quart runs a plain-function hook in its thread pool: a hop to a worker thread and
    back for every answer of the server, which under load waited for the pool and for
    the OS (issue 14's soak). Every hook is a coroutine function."""
    found: list[object] = []
    for registry in (api.app.before_request_funcs, api.app.after_request_funcs):
        for funcs in registry.values():
            found.extend(funcs)
    assert pages.add_security_headers in found
    assert all(iscoroutinefunction(f) for f in found), found


# -- session cookie and CSRF -----------------------------------------------------------------


async def test_login_cookie_is_httponly_strict_for_the_whole_site(api: Api) -> None:
    client = api.client()
    form = {"username": "alice", "password": PASSWORDS["alice"]}
    plain = await client.post("/rest/scheduler/login", form=form)
    cookie = plain.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/;" in cookie + ";"
    assert "Secure" not in cookie
    https = await client.post(
        "/rest/scheduler/login", form=form, headers={"X-Forwarded-Proto": "https"}
    )
    assert "Secure" in https.headers["Set-Cookie"]
    tls = await client.post("/rest/scheduler/login", form=form, scheme="https")
    assert "Secure" in tls.headers["Set-Cookie"]


async def test_session_endpoint_says_who_and_gives_the_csrf_token(api: Api) -> None:
    anonymous = await (await api.client().get("/dashboard/api/session")).get_json()
    assert anonymous == {"user": None}
    client = await cookie_client(api, "root")
    session = await (await client.get("/dashboard/api/session")).get_json()
    assert session["user"] == "root" and session["admin"] is True
    assert session["csrfHeader"] == "X-CSRF-Token"
    assert re.fullmatch(r"[0-9a-f]{64}", session["csrfToken"])


async def test_cookie_alone_never_changes_state(api: Api) -> None:
    job_id = await api.submit(SLEEPER)
    client = await cookie_client(api)
    # Reading with the cookie is fine.
    assert (await client.get(f"/rest/scheduler/jobs/{job_id}/info")).status_code == 200
    # Changing state with only the cookie is not, whatever the method.
    refused = [
        await client.put(f"/rest/scheduler/jobs/{job_id}/pause"),
        await client.put(f"/rest/scheduler/jobs/{job_id}/kill"),
        await client.delete(f"/rest/scheduler/jobs/{job_id}"),
        await client.get(f"/rest/scheduler/jobs/{job_id}/resubmit"),
        await client.post(
            "/rest/scheduler/submit",
            files={"file": FileStorage(io.BytesIO(DIAMOND), filename="j.xml")},
        ),
        await client.put("/rest/common/logout"),
    ]
    for response in refused:
        assert response.status_code == 403, await response.get_data(as_text=True)
        assert "X-CSRF-Token" in (await response.get_json())["errorMessage"]
    token = await csrf_token(client)
    wrong = await client.put(
        f"/rest/scheduler/jobs/{job_id}/pause", headers={"X-CSRF-Token": "0" * 64}
    )
    assert wrong.status_code == 403
    foreign = await client.put(
        f"/rest/scheduler/jobs/{job_id}/pause",
        headers={"X-CSRF-Token": token, "Origin": "https://evil.example"},
    )
    assert foreign.status_code == 403
    assert (await api.get(f"/rest/scheduler/jobs/{job_id}/info"))
    info = await (await api.get(f"/rest/scheduler/jobs/{job_id}/info")).get_json()
    assert info["status"] not in ("PAUSED", "KILLED")
    # With the token (and our own Origin) the same request works.
    same = await client.put(
        f"/rest/scheduler/jobs/{job_id}/kill",
        headers={"X-CSRF-Token": token, "Origin": "http://localhost"},
    )
    assert same.status_code == 200 and await same.get_json() is True


async def test_header_token_clients_need_no_csrf_token(api: Api) -> None:
    job_id = await api.submit(SLEEPER)
    response = await api.put(f"/rest/scheduler/jobs/{job_id}/kill")
    assert response.status_code == 200


async def test_login_from_another_site_is_refused(api: Api) -> None:
    client = api.client()
    form = {"username": "alice", "password": PASSWORDS["alice"]}
    foreign = await client.post(
        "/rest/scheduler/login", form=form, headers={"Origin": "https://evil.example"}
    )
    assert foreign.status_code == 403
    assert "Set-Cookie" not in foreign.headers
    ours = await client.post(
        "/rest/scheduler/login", form=form, headers={"Origin": "http://localhost"}
    )
    assert ours.status_code == 200


# -- data endpoints ----------------------------------------------------------------------------


async def test_graph_is_compact_and_visible_exactly_as_in_the_api(api: Api) -> None:
    job_id = await api.submit(DIAMOND)
    await api.wait_status(job_id)
    response = await api.get(f"/dashboard/api/jobs/{job_id}/graph")
    assert response.status_code == 200
    graph = await response.get_json()
    assert graph["names"] == ["A", "B", "C", "D"]
    assert {graph["codes"][c] for c in graph["statuses"]} == {"FINISHED"}
    pairs = set(zip(graph["edges"][::2], graph["edges"][1::2], strict=True))
    assert pairs == {(1, 0), (2, 0), (3, 1), (3, 2)}  # (child, parent)
    assert graph["job"]["jobId"]["id"] == job_id and graph["job"]["status"] == "FINISHED"
    live = await (await api.get(f"/dashboard/api/jobs/{job_id}/live")).get_json()
    assert live["statuses"] == graph["statuses"]
    # Another user gets the API's 404, word for word; an admin sees it.
    for path in ("graph", "live", "tasks/A", "tasks/A/attempts/1/stdout"):
        theirs = await api.get(f"/dashboard/api/jobs/{job_id}/{path}", user="bob")
        missing = await api.get(f"/dashboard/api/jobs/999999/{path}", user="bob")
        rest = await api.get(f"/rest/scheduler/jobs/{job_id}/info", user="bob")
        assert theirs.status_code == missing.status_code == rest.status_code == 404
        assert (await theirs.get_json())["errorMessage"] == f"job {job_id} does not exist"
        admin = await api.get(f"/dashboard/api/jobs/{job_id}/{path}", user="root")
        assert admin.status_code == 200
    assert (await api.get(f"/dashboard/api/jobs/{job_id}/graph", user=None)).status_code == 401


async def test_job_list_filters_by_status_and_name_for_the_owner_only(api: Api) -> None:
    first = await api.submit(job_xml([{"name": "a", "bash": "true"}], name="nightly_report"))
    second = await api.submit(SLEEPER)
    await api.wait_status(first)

    async def ids(query: str, user: str = "alice") -> list[int]:
        response = await api.get(f"/dashboard/api/jobs?{query}", user=user)
        assert response.status_code == 200, await response.get_data(as_text=True)
        body = await response.get_json()
        assert body["size"] >= len(body["list"])
        return [int(item["jobid"]) for item in body["list"]]

    assert await ids("") == [second, first]  # newest first
    assert await ids("name=REPORT") == [first]
    assert await ids("name=nightly%25") == []  # % is a character, not a wildcard
    assert await ids("status=FINISHED") == [first]
    assert await ids("status=RUNNING,PENDING") == [second]
    assert await ids("limit=1&index=1") == [first]
    assert await ids("", user="bob") == []
    assert await ids("", user="root") == [second, first]
    bad = await api.get("/dashboard/api/jobs?status=DONE")
    assert bad.status_code == 400
    await api.put(f"/rest/scheduler/jobs/{second}/kill")


async def test_logs_are_read_per_attempt_by_offset_and_downloaded(api: Api) -> None:
    xml = job_xml(
        [{"name": "big", "bash": "head -c 300000 /dev/zero | tr '\\0' x; echo oops >&2"}],
        name="logs",
    )
    job_id = await api.submit(xml)
    await api.wait_status(job_id)
    base = f"/dashboard/api/jobs/{job_id}/tasks/big"
    state = await (await api.get(base)).get_json()
    assert state["task"]["taskInfo"]["taskStatus"] == "FINISHED"
    assert state["attempts"] == [{"attempt": 1, "stdout": 300000, "stderr": 5}]
    first = await api.get(f"{base}/attempts/1/stdout?limit=100000")
    assert first.headers["X-Next-Offset"] == "100000" and first.headers["X-Size"] == "300000"
    assert len(await first.get_data()) == 100000
    rest = await api.get(f"{base}/attempts/1/stdout?offset=100000")
    assert len(await rest.get_data()) == 200000 and rest.headers["X-Next-Offset"] == "300000"
    capped = await api.get(f"{base}/attempts/1/stdout?limit=99999999")
    assert len(await capped.get_data()) == 300000  # under MAX_CHUNK here
    end = await api.get(f"{base}/attempts/1/stdout?offset=999999")
    assert await end.get_data() == b"" and end.headers["X-Next-Offset"] == "300000"
    download = await api.get(f"{base}/attempts/1/stderr?download=1")
    assert await download.get_data() == b"oops\n"
    disposition = download.headers["Content-Disposition"]
    assert disposition == f'attachment; filename="job{job_id}-task0-1.stderr.txt"'
    assert (await api.get(f"{base}/attempts/2/stdout")).status_code == 404
    assert (await api.get(f"{base}/attempts/1/other")).status_code == 404


VARIABLES_JOB = b"""<?xml version="1.0" encoding="UTF-8"?>
<job xmlns="urn:proactive:jobdescriptor:3.14" name="vars">
  <variables>
    <variable name="COUNT" value="20" model="PA:INTEGER[1,10]" description="how many"/>
    <variable name="MODE" value="fast" model="PA:LIST(fast,slow)" group="Run"/>
    <variable name="SECRET" value="x" hidden="true"/>
    <variable name="DEBUG" value="false" model="PA:BOOLEAN" advanced="true"/>
  </variables>
  <taskFlow>
    <task name="A"><scriptExecutable><script><code language="bash">true</code></script>
    </scriptExecutable></task>
  </taskFlow>
</job>
"""


async def inspect(api: Api, xml: bytes, variables: str | None = None) -> dict[str, Any]:
    form = {} if variables is None else {"variables": variables}
    response = await api.client().post(
        "/dashboard/api/workflow",
        headers=api.auth(),
        files={"file": FileStorage(io.BytesIO(xml), filename="job.xml")},
        form=form,
    )
    assert response.status_code == 200, await response.get_data(as_text=True)
    result: dict[str, Any] = await response.get_json()
    return result


async def test_workflow_inspection_shows_variables_and_problems_without_storing(
    api: Api,
) -> None:
    before = await (await api.get("/rest/scheduler/jobs")).get_json()
    result = await inspect(api, VARIABLES_JOB)
    assert result["valid"] is False and result["name"] is None
    [problem] = result["problems"]
    assert problem["line"] == 4 and "COUNT" in problem["message"]
    variables = {v["name"]: v for v in result["variables"]}
    assert list(variables) == ["COUNT", "MODE", "SECRET", "DEBUG"]
    assert variables["COUNT"]["error"] and "range" in variables["COUNT"]["error"]
    assert variables["COUNT"]["description"] == "how many" and variables["COUNT"]["line"] == 4
    assert variables["MODE"]["group"] == "Run" and variables["MODE"]["error"] is None
    assert variables["SECRET"]["hidden"] is True and variables["DEBUG"]["advanced"] is True
    fixed = await inspect(api, VARIABLES_JOB, '{"COUNT": "7", "MODE": "slow"}')
    assert fixed["valid"] is True and fixed["name"] == "vars" and fixed["problems"] == []
    assert {v["name"]: v["value"] for v in fixed["variables"]}["COUNT"] == "7"
    broken = job_xml([{"name": "A", "depends": ["Z"], "bash": "true"}], name="broken")
    bad = await inspect(api, broken)
    assert bad["valid"] is False
    assert bad["problems"][0]["task"] == "A" and bad["problems"][0]["line"] == 1
    assert "Z" in bad["problems"][0]["message"]
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("workflow/job.xml", VARIABLES_JOB)
    zipped = await inspect(api, archive.getvalue(), '{"COUNT": "2"}')
    assert zipped["valid"] is True and zipped["name"] == "vars"
    syntax = await inspect(api, b"<job><taskFlow></job>")
    assert syntax["valid"] is False and syntax["problems"][0]["line"] == 1
    after = await (await api.get("/rest/scheduler/jobs")).get_json()
    assert after == before  # nothing stored
