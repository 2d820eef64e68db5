"""Jobs through the real app: submit, validate, list, state, kill, pause, remove."""

from __future__ import annotations

import asyncio
import io
import json
import threading
import zipfile
from collections.abc import AsyncIterator
from typing import Any

import pytest
from apiutil import Api, api_fixture, with_config  # noqa: F401
from quart import Response
from werkzeug.datastructures import FileStorage
from wfxml import job_xml

from simple_scheduler.api import results, views
from simple_scheduler.api.streaming import IN_PLACE_BYTES, without_send_timeout
from simple_scheduler.store import jobstore
from simple_scheduler.workflow import Limits, parse_workflow

DIAMOND = job_xml(
    [
        {"name": "A", "bash": 'echo "A $variables_WHO"'},
        {"name": "B", "depends": ["A"], "bash": "echo B"},
        {"name": "C", "depends": ["A"], "bash": "echo C"},
        {"name": "D", "depends": ["B", "C"], "bash": "echo D"},
    ],
    name="diamond",
    variables={"WHO": "world", "OTHER": "x"},
)
SLEEPER = job_xml([{"name": "sleep", "bash": "sleep 30"}], name="sleeper")


async def test_submit_diamond_and_read_state(api: Api) -> None:
    job_id = await api.submit(DIAMOND)
    info = await api.wait_status(job_id)
    assert info["status"] == "FINISHED"
    assert info["jobId"] == {"id": job_id, "readableName": "diamond"}
    assert info["totalNumberOfTasks"] == 4 and info["numberOfFinishedTasks"] == 4
    assert info["jobOwner"] == "alice" and info["priority"] == "NORMAL"
    assert info["submittedTime"] > 0 and info["finishedTime"] >= info["startTime"] > 0
    assert info["inErrorTime"] == -1 and info["removedTime"] == -1
    state = await (await api.get(f"/rest/scheduler/jobs/{job_id}")).get_json()
    assert set(state["tasks"]) == {"0", "1", "2", "3"}
    assert state["tasks"]["3"]["name"] == "D"
    assert state["tasks"]["3"]["taskInfo"]["taskStatus"] == "FINISHED"
    assert state["tasks"]["0"]["taskInfo"]["exitCode"] == 0
    xml = await api.get(f"/rest/scheduler/jobs/{job_id}/xml")
    assert xml.mimetype == "application/xml"
    assert await xml.get_data() == DIAMOND


async def test_variables_part_and_matrix_parameters(api: Api) -> None:
    job_id = await api.submit(
        DIAMOND,
        path="/rest/scheduler/submit;WHO=matrix",
        extra={"variables": json.dumps({"WHO": "part", "OTHER": 3})},
    )
    info = await api.wait_status(job_id)
    assert info["variables"] == {"WHO": "matrix", "OTHER": "3"}
    out = await api.get(f"/rest/scheduler/jobs/{job_id}/tasks/A/result/log/out")
    assert await out.get_data(as_text=True) == "A matrix\n"


async def test_zip_upload(api: Api) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("job.xml", DIAMOND)
    job_id = await api.submit(buffer.getvalue())
    assert (await api.wait_status(job_id))["status"] == "FINISHED"
    xml = await api.get(f"/rest/scheduler/jobs/{job_id}/xml")
    assert await xml.get_data() == DIAMOND


async def test_invalid_workflow_lists_every_problem(api: Api) -> None:
    bad = job_xml(
        [
            {"name": "A", "depends": ["nope"]},
            {"name": "B", "depends": ["C"]},
            {"name": "C", "depends": ["B"]},
        ]
    )
    response = await api.post_workflow("/rest/scheduler/submit", bad)
    assert response.status_code == 400
    body = await response.get_json()
    assert body["httpErrorCode"] == 400
    message = body["errorMessage"]
    assert "nope" in message and "line" in message
    assert "B" in message and "C" in message
    not_xml = await api.post_workflow("/rest/scheduler/submit", b"hello")
    assert not_xml.status_code == 400
    empty = await api.client().post("/rest/scheduler/submit", headers=api.auth(), form={})
    assert empty.status_code == 400
    bad_vars = await api.post_workflow(
        "/rest/scheduler/submit", DIAMOND, extra={"variables": "[1, 2"}
    )
    assert bad_vars.status_code == 400
    listing = await (await api.get("/rest/scheduler/jobs")).get_json()
    assert listing == {"list": [], "size": 0}


async def test_oversized_upload_is_413(api: Api) -> None:
    small = with_config(api, max_upload_bytes=2000)
    big = job_xml([{"name": "A", "bash": "echo " + "x" * 5000}])
    response = await small.post_workflow("/rest/scheduler/submit", big)
    assert response.status_code == 413
    body = await response.get_json()
    assert body["httpErrorCode"] == 413
    assert "2000 bytes" in body["errorMessage"]
    # Nothing half-stored: the upload left no job behind.
    listing = await (await small.get("/rest/scheduler/jobs")).get_json()
    assert listing["size"] == 0


async def test_validate(api: Api) -> None:
    ok = await api.post_workflow("/rest/scheduler/validate;WHO=v", DIAMOND)
    assert ok.status_code == 200
    body = await ok.get_json()
    assert body["valid"] is True and body["errorMessage"] is None
    assert body["updatedVariables"]["WHO"] == "v"
    bad = await api.post_workflow(
        "/rest/scheduler/validate", job_xml([{"name": "A", "depends": ["missing"]}])
    )
    assert bad.status_code == 200
    result = await bad.get_json()
    assert result["valid"] is False and "missing" in result["errorMessage"]
    assert result["taskName"] == "A"
    jobs = await (await api.get("/rest/scheduler/jobs")).get_json()
    assert jobs["size"] == 0


async def test_listing_pages_and_ownership(api: Api) -> None:
    mine = [await api.submit(DIAMOND) for _ in range(3)]
    theirs = await api.submit(DIAMOND, user="bob")
    listing = await (await api.get("/rest/scheduler/jobs")).get_json()
    assert listing == {"list": [str(i) for i in reversed(mine)], "size": 3}
    page = await (await api.get("/rest/scheduler/jobs?index=1&limit=1")).get_json()
    assert page == {"list": [str(mine[1])], "size": 3}
    info = await (await api.get("/rest/scheduler/jobsinfo?index=0&limit=2")).get_json()
    assert info["size"] == 3 and len(info["list"]) == 2
    assert info["list"][0]["jobOwner"] == "alice"
    assert info["list"][0]["jobInfo"]["jobId"]["id"] == mine[-1]
    everyone = await (await api.get("/rest/scheduler/jobs", user="root")).get_json()
    assert everyone["size"] == 4
    # Another user's job is a 404, exactly like a missing one.
    for path in ("", "/info", "/xml", "/tasks", "/result/log/all"):
        response = await api.get(f"/rest/scheduler/jobs/{theirs}{path}")
        assert response.status_code == 404, path
    assert (await api.put(f"/rest/scheduler/jobs/{theirs}/kill")).status_code == 404
    assert (await api.delete(f"/rest/scheduler/jobs/{theirs}")).status_code == 404
    admin = await api.get(f"/rest/scheduler/jobs/{theirs}/info", user="root")
    assert admin.status_code == 200
    bad_index = await api.get("/rest/scheduler/jobs?index=x")
    assert bad_index.status_code == 400


async def test_unknown_jobs_are_404(api: Api) -> None:
    for path in (
        "/rest/scheduler/jobs/999",
        "/rest/scheduler/jobs/abc/info",
        "/rest/scheduler/jobs/-1/info",
        "/rest/scheduler/jobs/99999999999999999999/xml",
    ):
        response = await api.get(path)
        assert response.status_code == 404, path
        assert (await response.get_json())["httpErrorCode"] == 404
    assert (await api.put("/rest/scheduler/jobs/999/pause")).status_code == 404


async def test_kill_pause_resume_remove(api: Api) -> None:
    job_id = await api.submit(SLEEPER)
    await api.wait_task(job_id, "sleep", "RUNNING")
    paused = await api.put(f"/rest/scheduler/jobs/{job_id}/pause")
    assert paused.status_code == 200 and await paused.get_json() is True
    assert (await api.wait_status(job_id, {"PAUSED"}))["status"] == "PAUSED"
    resumed = await api.put(f"/rest/scheduler/jobs/{job_id}/resume")
    assert await resumed.get_json() is True
    again = await api.put(f"/rest/scheduler/jobs/{job_id}/resume")
    assert await again.get_json() is False  # not paused any more
    killed = await api.put(f"/rest/scheduler/jobs/{job_id}/kill")
    assert await killed.get_json() is True
    info = await api.wait_status(job_id)
    assert info["status"] == "KILLED"
    state = await api.wait_task(job_id, "sleep", "ABORTED")
    assert state["taskInfo"]["taskStatus"] == "ABORTED"
    twice = await api.put(f"/rest/scheduler/jobs/{job_id}/kill")
    assert twice.status_code == 409  # README: acting on an ended job is a conflict
    conflict = await api.put(f"/rest/scheduler/jobs/{job_id}/pause")
    assert conflict.status_code == 409
    assert (await conflict.get_json())["httpErrorCode"] == 409
    removed = await api.delete(f"/rest/scheduler/jobs/{job_id}")
    assert await removed.get_json() is True
    assert (await api.get(f"/rest/scheduler/jobs/{job_id}/info")).status_code == 404


async def test_batch_kill_and_remove(api: Api) -> None:
    first, second = await api.submit(SLEEPER), await api.submit(SLEEPER)
    response = await api.put(f"/rest/scheduler/jobs/kill?jobsid={first}&jobsid={second}")
    assert response.status_code == 200 and await response.get_json() is True
    for job_id in (first, second):
        assert (await api.wait_status(job_id))["status"] == "KILLED"
    assert (await api.put("/rest/scheduler/jobs/kill")).status_code == 400
    assert (await api.put("/rest/scheduler/jobs/kill?jobsid=12345")).status_code == 404
    gone = await api.delete(f"/rest/scheduler/jobs?jobsid={first},{second}")
    assert await gone.get_json() is True
    assert (await (await api.get("/rest/scheduler/jobs")).get_json())["size"] == 0


async def test_no_token_is_401_everywhere(api: Api) -> None:
    for method, path in (
        ("GET", "/rest/scheduler/jobs"),
        ("GET", "/rest/scheduler/jobsinfo"),
        ("GET", "/rest/scheduler/jobs/1"),
        ("PUT", "/rest/scheduler/jobs/1/kill"),
        ("DELETE", "/rest/scheduler/jobs/1"),
        ("GET", "/rest/scheduler/status"),
    ):
        response = await api.client().open(path, method=method)  # type: ignore[call-arg]
        assert response.status_code == 401, path
    anonymous = await api.client().post(
        "/rest/scheduler/submit",
        files={"file": FileStorage(io.BytesIO(DIAMOND), filename="j.xml")},
    )
    assert anonymous.status_code == 401


async def error_of(response: object, status: int) -> str:
    """Assert `response` is a JSON error with `status`; return its message."""
    assert response.status_code == status, await response.get_data(as_text=True)  # type: ignore[attr-defined]
    body = await response.get_json()  # type: ignore[attr-defined]
    assert body["httpErrorCode"] == status
    assert isinstance(body["errorMessage"], str) and body["errorMessage"]
    return str(body["errorMessage"])


async def test_unicode_digit_job_ids_are_404_not_500(api: Api) -> None:
    # "²".isdigit() is True but int("²") raises: these were 500s.
    for path in (
        "/rest/scheduler/jobs/%C2%B2",
        "/rest/scheduler/jobs/%C2%B9/result/log/all",
        "/rest/scheduler/jobs/%C2%B2/taskstates/paginated",
        "/rest/scheduler/jobs/%D9%A1/info",
    ):
        await error_of(await api.get(path), 404)
    await error_of(await api.put("/rest/scheduler/jobs/%C2%B2/pause"), 404)
    await error_of(await api.put("/rest/scheduler/jobs/kill?jobsid=%C2%B2"), 404)


async def test_job_paging_rejects_huge_and_odd_numbers(api: Api) -> None:
    huge = "9" * 23  # overflowed SQLite's INTEGER: was a 500
    for query in (f"limit={huge}", f"index={huge}&limit=1", f"index=-{huge}"):
        for listing in ("jobs", "jobsinfo"):
            message = await error_of(await api.get(f"/rest/scheduler/{listing}?{query}"), 400)
            assert "query parameter" in message
    assert "at least -1" in await error_of(await api.get("/rest/scheduler/jobs?limit=-2"), 400)
    for odd in ("%D9%A1", "1_0", "%C2%B2", "1.5", "+"):
        message = await error_of(await api.get(f"/rest/scheduler/jobs?limit={odd}"), 400)
        assert "limit" in message and "not an integer" in message
    biggest = await api.get(f"/rest/scheduler/jobs?index={2**63 - 1}&limit=1")
    assert biggest.status_code == 200
    assert await biggest.get_json() == {"list": [], "size": 0}


async def test_variables_part_must_be_strict_json(api: Api) -> None:
    bad_parts: list[tuple[bytes, str]] = [
        (b'{"WHO": NaN}', "NaN"),
        (b'{"WHO": Infinity}', "Infinity"),
        (b'{"WHO": 1e999}', "finite"),
        (b"\xff\xfe{}", "UTF-8"),
    ]
    for raw, expected in bad_parts:
        files = {
            "file": FileStorage(io.BytesIO(DIAMOND), filename="job.xml"),
            "variables": FileStorage(io.BytesIO(raw), filename="v.json"),
        }
        response = await api.client().post(
            "/rest/scheduler/submit", headers=api.auth(), files=files
        )
        assert expected in await error_of(response, 400), raw
    # Nothing was stored.
    assert (await (await api.get("/rest/scheduler/jobs")).get_json())["size"] == 0


async def test_query_parameters_become_generic_information(api: Api) -> None:
    """ProActive: `?KEY=value` on submit is generic information; tasks see it."""
    xml = job_xml([{"name": "A", "bash": 'echo "$genericInformation_bucketName"'}])
    job_id = await api.submit(xml, path="/rest/scheduler/submit?bucketName=b1")
    info = await api.wait_status(job_id)
    assert info["status"] == "FINISHED"
    assert info["genericInformation"]["bucketName"] == "b1"
    assert info["genericInformation"]["submission.mode"] == "rest-api"
    assert info["bucketName"] == "b1" and info["submissionMode"] == "rest-api"
    out = await api.get(f"/rest/scheduler/jobs/{job_id}/tasks/A/result/log/out")
    assert (await out.get_data(as_text=True)) == "b1\n"


async def test_deeply_nested_input_is_a_400_not_a_500(api: Api) -> None:
    """Issue 14.9: 100,000 nested `[` in the variables part (a file part or a field),
    or elements nested as deep in the XML, are refused with a 400 naming the limit."""
    deep_json = b"[" * 100_000 + b"]" * 100_000
    for part in (FileStorage(io.BytesIO(deep_json), filename="v.json"), deep_json.decode()):
        files = {"file": FileStorage(io.BytesIO(DIAMOND), filename="job.xml")}
        form: dict[str, str] = {}
        if isinstance(part, FileStorage):
            files["variables"] = part
        else:
            form["variables"] = part
        response = await api.client().post(
            "/rest/scheduler/submit", headers=api.auth(), files=files, form=form
        )
        assert "over the limit" in await error_of(response, 400)
    files = {
        "file": FileStorage(io.BytesIO(DIAMOND), filename="job.xml"),
        "variables": FileStorage(io.BytesIO(deep_json), filename="v.json"),
    }
    checked = await api.client().post("/rest/scheduler/validate", headers=api.auth(), files=files)
    body = await checked.get_json()
    assert checked.status_code == 200 and body["valid"] is False
    assert "over the limit" in body["errorMessage"]
    deep_xml = b'<job xmlns="urn:proactive:jobdescriptor:3.14" name="d">' + b"<a>" * 100_000
    deep_xml += b"</a>" * 100_000 + b"</job>"
    response = await api.post_workflow("/rest/scheduler/submit", deep_xml)
    assert "nest deeper" in await error_of(response, 400)
    # Nothing was stored, and the server goes on serving.
    assert (await (await api.get("/rest/scheduler/jobs")).get_json())["size"] == 0
    assert (await api.wait_status(await api.submit(DIAMOND)))["status"] == "FINISHED"


async def _store_jobs(api: Api, tasks: int, copies: int) -> list[int]:
    """`copies` jobs of `tasks` independent tasks, written as submit writes them but not
    handed to the scheduler: they stay PENDING, a fixed large answer to read."""
    xml = job_xml([{"name": f"t{i}"} for i in range(tasks)], name="big")
    job = parse_workflow(xml, limits=Limits(max_bytes=64 * 1024 * 1024))
    async with api.services.store.transaction() as tx:
        return [await jobstore.insert_job(tx, job, "alice", xml.decode(), 0) for _ in range(copies)]


async def _health_completes_while_rendering(
    api: Api, monkeypatch: pytest.MonkeyPatch, builder: str, path: str
) -> tuple[int, dict[str, Any]]:
    return await _health_completes_while_rendering_in(views, api, monkeypatch, builder, path)


async def _health_completes_while_rendering_in(
    module: Any, api: Api, monkeypatch: pytest.MonkeyPatch, builder: str, path: str
) -> tuple[int, dict[str, Any]]:
    """GET `path`; when its first row is rendered (by `module.<builder>`), ask for
    /rest/health. How many rows were rendered after the health answer came, and the body."""
    loop = asyncio.get_running_loop()
    real = getattr(module, builder)
    health_done = threading.Event()
    after_health = 0
    pending: list[asyncio.Future[Any]] = []

    async def health() -> None:
        response = await api.get("/rest/health", user=None)
        assert response.status_code == 200
        health_done.set()

    def spy(*args: Any) -> Any:
        nonlocal after_health
        if not pending:
            pending.append(loop.create_future())  # placeholder: start health only once
            loop.call_soon_threadsafe(lambda: pending.append(asyncio.ensure_future(health())))
        if health_done.is_set():
            after_health += 1
        return real(*args)

    monkeypatch.setattr(module, builder, spy)
    response = await api.get(path)
    assert response.status_code == 200
    body = await response.get_json()
    await pending[-1]
    return after_health, body


async def test_a_large_job_state_does_not_stall_the_loop(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 14.8: a health request issued while `GET /jobs/{id}` of a 20,000-task job is
    being built is answered before the last task is rendered (built on the loop in one
    piece, it waited for all of them); the streamed answer is the same JSON."""
    (job_id,) = await _store_jobs(api, 20_000, 1)
    after, state = await _health_completes_while_rendering(
        api, monkeypatch, "task_state", f"/rest/scheduler/jobs/{job_id}"
    )
    assert after > 0
    assert state["id"] == job_id and state["jobInfo"]["totalNumberOfTasks"] == 20_000
    assert list(state["tasks"]) == [str(i) for i in range(20_000)]
    assert state["tasks"]["19999"]["name"] == "t19999"
    assert state["tasks"]["0"]["taskInfo"]["taskStatus"] == "PENDING"  # no parents


async def test_listing_every_job_does_not_stall_the_loop(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same for `jobsinfo?limit=-1` over 3,000 jobs; paging still works."""
    ids = await _store_jobs(api, 1, 3000)
    after, page = await _health_completes_while_rendering(
        api, monkeypatch, "user_job", "/rest/scheduler/jobsinfo?limit=-1"
    )
    assert after > 0
    assert page["size"] == 3000 and [int(j["jobid"]) for j in page["list"]] == ids[::-1]
    some = await (await api.get("/rest/scheduler/jobsinfo?index=1499&limit=1000")).get_json()
    assert [int(j["jobid"]) for j in some["list"]] == ids[::-1][1499:2499]
    names = await (await api.get("/rest/scheduler/jobs?index=2990&limit=50")).get_json()
    assert names == {"list": [str(i) for i in ids[::-1][2990:]], "size": 3000}


@pytest.mark.parametrize(
    ("builder", "suffix"), [("value", "result"), ("value_text", "result/value")]
)
async def test_a_large_job_result_does_not_stall_the_loop(
    api: Api, monkeypatch: pytest.MonkeyPatch, builder: str, suffix: str
) -> None:
    """The same for the results of a 5,000-task job that ended (each task's outputs are
    read, on the loop in one piece before)."""
    (job_id,) = await _store_jobs(api, 5000, 1)
    async with api.services.store.transaction() as tx:
        await tx.execute(
            "UPDATE tasks SET status = 'FINISHED', attempts = 1, exit_code = 0 WHERE job_id = :id",
            {"id": job_id},
        )
        await tx.execute("UPDATE jobs SET status = 'FINISHED' WHERE id = :id", {"id": job_id})
    after, body = await _health_completes_while_rendering_in(
        results, api, monkeypatch, builder, f"/rest/scheduler/jobs/{job_id}/{suffix}"
    )
    assert after > 0
    values = body["allResults"] if suffix == "result" else body
    assert len(values) == 5000 and list(values)[-1] == "t4999"
    if suffix == "result":
        assert values["t0"]["value"] == "0" and body["exceptionResults"] == {}
    else:
        assert values["t0"] == "0"


async def test_small_xml_parses_on_the_loop_large_and_zipped_in_a_thread(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A one-task submit skips the worker-thread hop (it cost more than the parse under
    load); a larger document, or any zip (it may inflate to the size limit), does not."""
    from simple_scheduler.api import requests as api_requests

    parses_in_threads = 0
    to_thread = asyncio.to_thread

    async def counted(fn: Any, *args: Any, **kwargs: Any) -> Any:
        nonlocal parses_in_threads
        if "parse_document" in getattr(fn, "__qualname__", ""):
            parses_in_threads += 1
        return await to_thread(fn, *args, **kwargs)

    monkeypatch.setattr(asyncio, "to_thread", counted)
    small = job_xml([{"name": "one", "native": ["/bin/true"]}])
    assert len(small) <= api_requests.INLINE_PARSE_BYTES
    assert (await api.wait_status(await api.submit(small)))["status"] == "FINISHED"
    assert parses_in_threads == 0
    large = job_xml([{"name": f"t{i}", "native": ["/bin/true"]} for i in range(60)])
    assert len(large) > api_requests.INLINE_PARSE_BYTES
    assert (await api.wait_status(await api.submit(large)))["status"] == "FINISHED"
    assert parses_in_threads == 1
    packed = io.BytesIO()
    with zipfile.ZipFile(packed, "w") as archive:
        archive.writestr("job.xml", small)
    response = await api.post_workflow("/rest/scheduler/submit", packed.getvalue(),
                                       filename="job.zip")
    assert response.status_code == 200, await response.get_data(as_text=True)
    assert (await api.wait_status(int((await response.get_json())["id"])))["status"] == "FINISHED"
    assert parses_in_threads == 2



async def test_small_answers_are_sent_in_the_handlers_task(api: Api) -> None:
    """Quart sends an answer under `asyncio.wait_for`, a task (and a loop turn) of its
    own on Python 3.11, unless the answer has no timeout: small answers in memory have
    none; streamed and large ones keep RESPONSE_TIMEOUT, which bounds a client that
    stops reading."""
    assert without_send_timeout in api.app.after_request_funcs[None]

    async def pieces() -> AsyncIterator[bytes]:
        yield b"{}"

    small = await without_send_timeout(Response(b'{"a": 1}'))
    large = await without_send_timeout(Response(b"x" * (IN_PLACE_BYTES + 1)))
    streamed = await without_send_timeout(Response(pieces()))
    assert small.timeout is None
    assert large.timeout is Ellipsis and streamed.timeout is Ellipsis
