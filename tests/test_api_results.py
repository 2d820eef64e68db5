"""Task and job results, full logs and restartAllInErrorTasks through the real app."""

from __future__ import annotations

from typing import Any

from apiutil import Api, api_fixture  # noqa: F401
from wfxml import job_xml

JOBS = "/rest/scheduler/jobs"
#: java.lang.Integer 0 as ObjectOutputStream writes it, base64 (test_api_fidelity.py has
#: the JDK read such bytes back).
INTEGER_ZERO = (
    "rO0ABXNyABFqYXZhLmxhbmcuSW50ZWdlchLioKT3gYc4AgABSQAFdmFsdWV4cgAQamF2YS5sYW5nLk51bWJlcoa"
    "slR0LlOCLAgAAeHAAAAAA"
)


async def text(response: Any) -> str:
    return await response.get_data(as_text=True)  # type: ignore[no-any-return]


def precious(xml: bytes, *names: str) -> bytes:
    """Mark tasks preciousResult="true" (wfxml has no option for it)."""
    for name in names:
        tag = f'<task name="{name}"'
        xml = xml.replace(tag.encode(), f'{tag} preciousResult="true"'.encode())
    return xml


async def wait_running(api: Api, job_id: int, name: str) -> None:
    await api.wait_task(job_id, name, "RUNNING")


async def test_finished_job_results(api: Api) -> None:
    xml = job_xml(
        [
            {"name": "ok", "bash": "echo hello; echo note >&2"},
            {"name": "bad", "bash": "echo before; exit 3"},
            {"name": "kept", "native": ["true"]},
        ]
    )
    job_id = await api.submit(precious(xml, "kept"))
    info = await api.wait_status(job_id)
    assert info["status"] == "FINISHED"

    ok = await (await api.get(f"{JOBS}/{job_id}/tasks/ok/result")).get_json()
    assert ok == {
        "id": {"id": 0, "readableName": "ok"},
        "value": "0",
        "serializedValue": INTEGER_ZERO,
        "exceptionMessage": None,
        "serializedException": None,  # no failure: hadException() is false
        "metadata": {},
        "propagatedVariables": {},
        "output": {"stdoutLogs": "hello\n", "stderrLogs": "note\n"},
        "raw": False,
    }
    bad = await (await api.get(f"{JOBS}/{job_id}/tasks/bad/result")).get_json()
    assert bad["value"] is None and bad["exceptionMessage"] == "exit code 3"
    assert bad["output"]["stdoutLogs"] == "before\n"

    value = await api.get(f"{JOBS}/{job_id}/tasks/ok/result/value")
    assert value.status_code == 200 and value.mimetype == "text/plain"
    assert await text(value) == "0"
    assert await text(await api.get(f"{JOBS}/{job_id}/tasks/bad/result/value")) == "exit code 3"

    result = await (await api.get(f"{JOBS}/{job_id}/result")).get_json()
    assert result["id"] == {"id": job_id, "readableName": "test-job"}
    assert result["jobInfo"]["status"] == "FINISHED"
    assert list(result["allResults"]) == ["ok", "bad", "kept"]
    assert result["allResults"]["ok"] == ok
    assert list(result["preciousResults"]) == ["kept"]
    assert result["preciousResults"]["kept"]["value"] == "0"
    assert list(result["exceptionResults"]) == ["bad"]
    assert result["exceptionResults"]["bad"]["exceptionMessage"] == "exit code 3"
    assert result["resultMap"] == {}

    values = await (await api.get(f"{JOBS}/{job_id}/result/value")).get_json()
    assert values == {"ok": "0", "bad": "exit code 3", "kept": "0"}


async def test_output_spans_retries(api: Api) -> None:
    script = "echo run; echo warn >&2; test -e ../done || { touch ../done; exit 1; }"
    job_id = await api.submit(job_xml([{"name": "A", "bash": script}], max_exec=2, retry_delay="1"))
    assert (await api.wait_status(job_id))["status"] == "FINISHED"
    body = await (await api.get(f"{JOBS}/{job_id}/tasks/A/result")).get_json()
    assert body["value"] == "0" and body["exceptionMessage"] is None
    assert body["output"] == {"stdoutLogs": "run\nrun\n", "stderrLogs": "warn\nwarn\n"}


async def test_failure_reasons(api: Api) -> None:
    xml = job_xml(
        [
            {"name": "slow", "native": ["sleep", "30"], "walltime": "1"},
            {"name": "missing", "native": ["/nonexistent/command-xyz"]},
        ]
    )
    job_id = await api.submit(xml)
    await api.wait_status(job_id)
    result = await (await api.get(f"{JOBS}/{job_id}/result")).get_json()
    assert set(result["exceptionResults"]) == {"slow", "missing"}
    assert "walltime" in result["allResults"]["slow"]["exceptionMessage"]
    assert result["allResults"]["missing"]["exceptionMessage"].startswith("could not start")
    assert result["allResults"]["missing"]["value"] is None


async def test_alive_job_and_task_answer_409(api: Api) -> None:
    script = "echo started; while [ ! -e go ]; do sleep 0.05; done"
    xml = job_xml([{"name": "A", "bash": script}, {"name": "B", "depends": ["A"]}])
    job_id = await api.submit(xml)
    await wait_running(api, job_id, "A")
    for path, status in (
        ("result", None),
        ("result/value", None),
        ("tasks/A/result", "RUNNING"),
        ("tasks/A/result/value", "RUNNING"),
        ("tasks/B/result", None),
    ):
        response = await api.get(f"{JOBS}/{job_id}/{path}")
        assert response.status_code == 409, path
        message = (await response.get_json())["errorMessage"]
        assert "no result yet" in message, message
        if status:
            assert message == f"task A is {status}: no result yet"
    task_dir = api.services.config.process_directory / str(job_id) / "0" / "1"
    (task_dir / "go").touch()
    await api.wait_status(job_id)
    assert (await api.get(f"{JOBS}/{job_id}/result")).status_code == 200
    assert await text(await api.get(f"{JOBS}/{job_id}/tasks/A/result/value")) == "0"


async def test_killed_job_leaves_out_tasks_that_never_ran(api: Api) -> None:
    xml = job_xml([{"name": "A", "native": ["sleep", "30"]}, {"name": "B", "depends": ["A"]}])
    job_id = await api.submit(xml)
    await wait_running(api, job_id, "A")
    assert await (await api.put(f"{JOBS}/{job_id}/kill")).get_json() is True
    await api.wait_status(job_id)
    await api.wait_task(job_id, "A", "ABORTED")
    result = await (await api.get(f"{JOBS}/{job_id}/result")).get_json()
    assert result["jobInfo"]["status"] == "KILLED"
    assert list(result["allResults"]) == ["A"]
    assert result["allResults"]["A"]["value"] is None
    assert list(result["exceptionResults"]) == ["A"]
    never = await api.get(f"{JOBS}/{job_id}/tasks/B/result")
    assert never.status_code == 409
    assert "never ran" in (await never.get_json())["errorMessage"]


async def test_unknown_and_foreign_are_404(api: Api) -> None:
    job_id = await api.submit(job_xml([{"name": "A"}]))
    await api.wait_status(job_id)
    paths = (
        "result",
        "result/value",
        "tasks/A/result",
        "tasks/A/result/value",
        "log/full",
        "tasks/A/result/log/full",
    )
    for path in paths:
        assert (await api.get(f"{JOBS}/{job_id}/{path}")).status_code == 200, path
        assert (await api.get(f"{JOBS}/{job_id}/{path}", user="bob")).status_code == 404, path
        assert (await api.get(f"{JOBS}/999999/{path}")).status_code == 404, path
        assert (await api.get(f"{JOBS}/x/{path}")).status_code == 404, path
        assert (await api.get(f"{JOBS}/{job_id}/{path}", user=None)).status_code == 401, path
        assert (await api.get(f"{JOBS}/{job_id}/{path}", user="root")).status_code == 200, path
    for path in ("tasks/Z/result", "tasks/Z/result/value", "tasks/Z/result/log/full"):
        assert (await api.get(f"{JOBS}/{job_id}/{path}")).status_code == 404, path
    restart = f"{JOBS}/{job_id}/restartAllInErrorTasks"
    assert (await api.put(restart, user="bob")).status_code == 404
    assert (await api.put(f"{JOBS}/999999/restartAllInErrorTasks")).status_code == 404
    # An ended job has no In-Error task left to restart.
    assert (await api.put(restart)).status_code == 409


async def test_restart_all_in_error_tasks(api: Api) -> None:
    script = "echo try; test -e ../ok || { touch ../ok; exit 3; }"
    xml = job_xml(
        [{"name": "A", "bash": script}, {"name": "B", "bash": script}, {"name": "C"}],
        on_error="suspendTask",
    )
    job_id = await api.submit(xml)
    await api.wait_task(job_id, "A", "IN_ERROR")
    await api.wait_task(job_id, "B", "IN_ERROR")
    await api.wait_status(job_id, {"IN_ERROR"})
    path = f"{JOBS}/{job_id}/restartAllInErrorTasks"
    assert (await api.put(path, user="bob")).status_code == 404
    response = await api.put(path)
    assert response.status_code == 200 and await response.get_json() is True
    assert (await api.wait_status(job_id))["status"] == "FINISHED"
    values = await (await api.get(f"{JOBS}/{job_id}/result/value")).get_json()
    assert values == {"A": "0", "B": "0", "C": "0"}
    result = await (await api.get(f"{JOBS}/{job_id}/result")).get_json()
    assert result["exceptionResults"] == {}
    assert result["allResults"]["A"]["output"]["stdoutLogs"] == "try\ntry\n"


async def test_restart_all_without_in_error_tasks_is_false(api: Api) -> None:
    script = "while [ ! -e go ]; do sleep 0.05; done"
    job_id = await api.submit(job_xml([{"name": "A", "bash": script}], on_error="suspendTask"))
    await wait_running(api, job_id, "A")
    response = await api.put(f"{JOBS}/{job_id}/restartAllInErrorTasks")
    assert response.status_code == 200 and await response.get_json() is False
    (api.services.config.process_directory / str(job_id) / "0" / "1" / "go").touch()
    await api.wait_status(job_id)


async def test_full_logs_with_query_session(api: Api) -> None:
    xml = job_xml([{"name": "A", "bash": "echo a; echo ae >&2"}, {"name": "B", "bash": "echo b"}])
    job_id = await api.submit(xml)
    await api.wait_status(job_id)
    client = api.client()
    token = api.tokens["alice"]
    full = await client.get(f"{JOBS}/{job_id}/log/full?sessionid={token}")
    assert full.status_code == 200 and full.mimetype == "text/plain"
    assert await text(full) == "a\nae\nb\n"
    assert await text(full) == await text(await api.get(f"{JOBS}/{job_id}/result/log/all"))
    task = await client.get(f"{JOBS}/{job_id}/tasks/A/result/log/full?sessionid={token}")
    assert await text(task) == "a\nae\n"
    assert "Content-Disposition" not in task.headers
    download = await api.get(f"{JOBS}/{job_id}/tasks/A/result/log/full?destination=file")
    assert download.headers["Content-Disposition"] == f'attachment; filename="job_{job_id}_A.log"'
    assert await text(download) == "a\nae\n"
    # The query token is checked like the header; another user's token sees no job.
    assert (await client.get(f"{JOBS}/{job_id}/log/full?sessionid=garbage")).status_code == 401
    bob = api.tokens["bob"]
    assert (await client.get(f"{JOBS}/{job_id}/log/full?sessionid={bob}")).status_code == 404
    # The query parameter does not open the other endpoints.
    assert (await client.get(f"{JOBS}/{job_id}/result?sessionid={token}")).status_code == 401


async def test_result_output_is_capped(api: Api, monkeypatch: Any) -> None:
    from simple_scheduler.api import outputs

    monkeypatch.setattr(outputs, "MAX_OUTPUT_BYTES", 4)
    job_id = await api.submit(job_xml([{"name": "A", "bash": "echo 123456789"}]))
    await api.wait_status(job_id)
    body = await (await api.get(f"{JOBS}/{job_id}/tasks/A/result")).get_json()
    assert body["output"]["stdoutLogs"] == (
        "[first 6 bytes omitted: result/log/out has them all]\n789\n"
    )
    assert await text(await api.get(f"{JOBS}/{job_id}/tasks/A/result/log/out")) == "123456789\n"


async def test_openapi_lists_the_endpoints(api: Api) -> None:
    spec = await (await api.get("/rest/openapi.json", user=None)).get_json()
    paths = spec["paths"]
    for path, method in (
        ("/rest/scheduler/jobs/{job_id}/result", "get"),
        ("/rest/scheduler/jobs/{job_id}/result/value", "get"),
        ("/rest/scheduler/jobs/{job_id}/tasks/{task_name}/result", "get"),
        ("/rest/scheduler/jobs/{job_id}/tasks/{task_name}/result/value", "get"),
        ("/rest/scheduler/jobs/{job_id}/restartAllInErrorTasks", "put"),
        ("/rest/scheduler/jobs/{job_id}/log/full", "get"),
        ("/rest/scheduler/jobs/{job_id}/tasks/{task_name}/result/log/full", "get"),
    ):
        assert method in paths[path], path
        assert paths[path][method]["tags"] == ["results"]
