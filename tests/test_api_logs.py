"""Task and job output through the real app: complete, live, by offset, over attempts."""

from __future__ import annotations

from typing import Any

from apiutil import Api, api_fixture  # noqa: F401
from harness import wait_for_async
from wfxml import job_xml


async def text(response: object) -> str:
    return await response.get_data(as_text=True)  # type: ignore[attr-defined, no-any-return]


async def test_out_err_all_and_offset(api: Api) -> None:
    job_id = await api.submit(job_xml([{"name": "A", "bash": "echo hello; echo oops >&2"}]))
    await api.wait_status(job_id)
    base = f"/rest/scheduler/jobs/{job_id}/tasks/A/result/log"
    out = await api.get(f"{base}/out")
    assert out.mimetype == "text/plain" and await text(out) == "hello\n"
    assert out.headers["X-Next-Offset"] == "6"
    assert await text(await api.get(f"{base}/err")) == "oops\n"
    assert await text(await api.get(f"{base}/all")) == "hello\noops\n"
    assert await text(await api.get(f"{base}/out?offset=2")) == "llo\n"
    past = await api.get(f"{base}/out?offset=100")
    assert await text(past) == "" and past.headers["X-Next-Offset"] == "100"
    assert (await api.get(f"{base}/out?offset=-5")).status_code == 400
    assert (await api.get(f"{base}/bogus")).status_code == 404
    assert (
        await api.get(f"/rest/scheduler/jobs/{job_id}/tasks/B/result/log/out")
    ).status_code == 404
    whole = await api.get(f"/rest/scheduler/jobs/{job_id}/result/log/all")
    assert await text(whole) == "hello\noops\n"


async def test_output_is_complete(api: Api) -> None:
    job_id = await api.submit(job_xml([{"name": "A", "bash": "seq 1 50000"}]))
    await api.wait_status(job_id)
    out = await text(await api.get(f"/rest/scheduler/jobs/{job_id}/tasks/A/result/log/out"))
    lines = out.splitlines()
    assert len(lines) == 50000 and lines[-1] == "50000"


async def test_attempts_are_concatenated(api: Api) -> None:
    xml = job_xml(
        [{"name": "A", "bash": "echo run; test -e ../done || { touch ../done; exit 1; }"}],
        max_exec=2,
        retry_delay="1",
    )
    job_id = await api.submit(xml)
    assert (await api.wait_status(job_id))["status"] == "FINISHED"
    out = await api.get(f"/rest/scheduler/jobs/{job_id}/tasks/A/result/log/out")
    assert await text(out) == "run\nrun\n"


async def test_running_task_output_can_be_followed(api: Api) -> None:
    script = "echo first; while [ ! -e go ]; do sleep 0.05; done; echo second"
    job_id = await api.submit(job_xml([{"name": "A", "bash": script}]))
    path = f"/rest/scheduler/jobs/{job_id}/tasks/A/result/log/out"

    async def first_line() -> Any:
        response = await api.get(path)
        return response if await text(response) == "first\n" else None

    first = await wait_for_async(first_line, 15, "output from the running task")
    offset = first.headers["X-Next-Offset"]
    state = await (await api.get(f"/rest/scheduler/jobs/{job_id}/tasks/A")).get_json()
    assert state["taskInfo"]["taskStatus"] == "RUNNING"
    # The live log returns the new bytes only, per session.
    live = f"/rest/scheduler/jobs/{job_id}/livelog"
    assert await text(await api.get(live)) == "first\n"
    assert await text(await api.get(live)) == ""
    assert await text(await api.get(live, user="root")) == "first\n"
    task_dir = api.services.config.process_directory / str(job_id) / "0" / "1"
    (task_dir / "go").touch()
    await api.wait_status(job_id)
    assert await text(await api.get(f"{path}?offset={offset}")) == "second\n"
    available = await api.get(f"{live}/available")
    assert await available.get_json() == len("second\n")
    assert await text(await api.get(live)) == "second\n"
    assert await text(await api.get(f"{live}?allLogs=true")) == "first\nsecond\n"
    assert await (await api.delete(live)).get_json() is True
    assert await text(await api.get(live)) == "first\nsecond\n"


async def test_seed_task_endpoint(api: Api) -> None:
    job_id = await api.submit(job_xml([{"name": "A"}, {"name": "B", "bash": "echo b; echo e >&2"}]))
    await api.wait_status(job_id)
    body = await (await api.get(f"/rest/scheduler/tasks/{job_id}t1")).get_json()
    assert body == {"status": "FINISHED", "stdout": "b\n", "stderr": "e\n"}
    for bad in (f"{job_id}t9", "x", f"{job_id}", "999t0"):
        assert (await api.get(f"/rest/scheduler/tasks/{bad}")).status_code == 404, bad
    assert (await api.get(f"/rest/scheduler/tasks/{job_id}t1", user="bob")).status_code == 404


async def test_seed_task_endpoint_caps_each_stream(api: Api, monkeypatch: Any) -> None:
    """Issue 14.8: it read whole log files into one JSON answer, on the loop; now each
    stream is its last MAX_OUTPUT_BYTES (the log endpoints have the rest)."""
    from simple_scheduler.api import outputs

    monkeypatch.setattr(outputs, "MAX_OUTPUT_BYTES", 4)
    job_id = await api.submit(job_xml([{"name": "A", "bash": "echo 123456789; echo e >&2"}]))
    await api.wait_status(job_id)
    body = await (await api.get(f"/rest/scheduler/tasks/{job_id}t0")).get_json()
    where = f"/jobs/{job_id}/tasks/A/result/log/out"
    assert body["stdout"] == f"[first 6 bytes omitted: {where} has them all]\n789\n"
    assert body["stderr"] == "e\n"


async def test_bad_task_ids_and_log_offsets(api: Api) -> None:
    job_id = await api.submit(job_xml([{"name": "A", "bash": "echo a"}]))
    await api.wait_status(job_id)
    # A task index too big for SQLite, or Unicode digits: were 500s.
    for bad in (f"{job_id}t{'9' * 23}", "%C2%B2t0", f"{job_id}t%C2%B9"):
        response = await api.get(f"/rest/scheduler/tasks/{bad}")
        assert response.status_code == 404, bad
        body = await response.get_json()
        assert body["httpErrorCode"] == 404 and "does not exist" in body["errorMessage"]
    for path in (f"tasks/A/result/log/out?offset={'9' * 23}", "result/log/all?offset=-1"):
        response = await api.get(f"/rest/scheduler/jobs/{job_id}/{path}")
        assert response.status_code == 400, path
        body = await response.get_json()
        assert body["httpErrorCode"] == 400 and "offset" in body["errorMessage"]
    response = await api.get(f"/rest/scheduler/jobs/{job_id}/livelog?allLogs=%C3%B8")
    assert response.status_code == 400
    body = await response.get_json()
    assert body["httpErrorCode"] == 400 and "allLogs" in body["errorMessage"]
    again = await api.get(f"/rest/scheduler/jobs/{job_id}/livelog?allLogs=TRUE")
    assert again.status_code == 200 and await text(again) == "a\n"
