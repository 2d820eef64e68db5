"""Task listings, task state and task actions through the real app."""

from __future__ import annotations

from apiutil import Api, api_fixture  # noqa: F401
from wfxml import job_xml

MANY = job_xml([{"name": f"t{i:03d}", "bash": "true"} for i in range(300)], name="many")


async def test_task_listings_are_paged(api: Api) -> None:
    job_id = await api.submit(MANY)
    names = await (await api.get(f"/rest/scheduler/jobs/{job_id}/tasks")).get_json()
    assert names["size"] == 300 and len(names["list"]) == 100
    assert names["list"][0] == "t000"
    page = await api.get(f"/rest/scheduler/jobs/{job_id}/tasks/paginated?offset=290&limit=50")
    assert (await page.get_json())["list"] == [f"t{i}" for i in range(290, 300)]
    capped = await api.get(f"/rest/scheduler/jobs/{job_id}/taskstates/paginated?limit=1000")
    body = await capped.get_json()
    assert len(body["list"]) == 256 and body["size"] == 300
    first = await (await api.get(f"/rest/scheduler/jobs/{job_id}/taskstates")).get_json()
    assert len(first["list"]) == 100
    assert first["list"][0]["name"] == "t000"
    assert first["list"][0]["taskInfo"]["taskId"] == {"id": 0, "readableName": "t000"}
    bad = await api.get(f"/rest/scheduler/jobs/{job_id}/tasks/paginated?offset=-1")
    assert bad.status_code == 400
    await api.wait_status(job_id, timeout=60)


async def test_one_task_state(api: Api) -> None:
    job_id = await api.submit(job_xml([{"name": "A", "bash": "exit 3"}]))
    await api.wait_status(job_id)
    state = await (await api.get(f"/rest/scheduler/jobs/{job_id}/tasks/A")).get_json()
    info = state["taskInfo"]
    assert state["name"] == "A" and info["taskStatus"] == "FAULTY"
    assert info["exitCode"] == 3 and "exit code 3" in info["statusReason"]
    assert info["jobId"]["id"] == job_id
    assert info["numberOfExecutionLeft"] == 0
    assert info["executionDuration"] >= 0 and info["startTime"] > 0
    missing = await api.get(f"/rest/scheduler/jobs/{job_id}/tasks/nope")
    assert missing.status_code == 404
    assert "nope" in (await missing.get_json())["errorMessage"]
    assert (await api.put(f"/rest/scheduler/jobs/{job_id}/tasks/nope/kill")).status_code == 404
    other = await api.get(f"/rest/scheduler/jobs/{job_id}/tasks/A", user="bob")
    assert other.status_code == 404


async def test_kill_and_restart_a_running_task(api: Api) -> None:
    xml = job_xml(
        [{"name": "long", "bash": "sleep 30"}, {"name": "after", "depends": ["long"]}],
        max_exec=2,
    )
    job_id = await api.submit(xml)
    await api.wait_task(job_id, "long", "RUNNING")
    not_running = await api.put(f"/rest/scheduler/jobs/{job_id}/tasks/after/kill")
    assert not_running.status_code == 409
    restart = await api.put(f"/rest/scheduler/jobs/{job_id}/tasks/long/restart")
    assert await restart.get_json() is True
    state = await api.wait_task(job_id, "long", "WAITING_ON_ERROR")
    assert state["taskInfo"]["statusReason"] == "restarted by user"
    await api.wait_task(job_id, "long", "RUNNING", timeout=15)
    killed = await api.put(f"/rest/scheduler/jobs/{job_id}/tasks/long/kill")
    assert await killed.get_json() is True
    state = await api.wait_task(job_id, "long", "FAULTY")
    assert state["taskInfo"]["statusReason"] == "killed by user"
    assert (await api.wait_status(job_id))["status"] == "FINISHED"
    idle = await api.put(f"/rest/scheduler/jobs/{job_id}/tasks/long/restart")
    assert idle.status_code == 409  # the job has ended


async def test_restart_without_an_execution_left_says_false_and_the_task_ends(api: Api) -> None:
    """Issue 14.12: ProActive's restartTask uses up the execution; with none left (the
    default maxNumberOfExecution 1) the task is killed, not restarted: the answer is
    false, the task ends FAULTY and, by the default policy, its dependent runs."""
    xml = job_xml([{"name": "long", "bash": "sleep 30"}, {"name": "after", "depends": ["long"]}])
    job_id = await api.submit(xml)
    await api.wait_task(job_id, "long", "RUNNING")
    restart = await api.put(f"/rest/scheduler/jobs/{job_id}/tasks/long/restart")
    assert restart.status_code == 200 and await restart.get_json() is False
    state = await api.wait_task(job_id, "long", "FAULTY")
    assert state["taskInfo"]["statusReason"] == "restarted by user"
    assert state["taskInfo"]["numberOfExecutionLeft"] == 0
    info = await api.wait_status(job_id)
    assert info["status"] == "FINISHED" and info["numberOfFaultyTasks"] == 1
    after = await api.get(f"/rest/scheduler/jobs/{job_id}/tasks/after")
    assert (await after.get_json())["taskInfo"]["taskStatus"] == "FINISHED"
    spec = await (await api.get("/rest/openapi.json", user=None)).get_json()
    text = spec["paths"]["/rest/scheduler/jobs/{job_id}/tasks/{task_name}/restart"]["put"]
    assert "no execution left" in text["description"]


async def test_in_error_tasks(api: Api) -> None:
    xml = job_xml(
        [
            {"name": "flaky", "bash": "test -e ../ok || { touch ../ok; exit 1; }"},
            {"name": "broken", "bash": "exit 2"},
            {"name": "child", "depends": ["broken"], "bash": "echo child"},
        ],
        on_error="suspendTask",
    )
    job_id = await api.submit(xml)
    await api.wait_task(job_id, "flaky", "IN_ERROR")
    await api.wait_task(job_id, "broken", "IN_ERROR")
    assert (await api.wait_status(job_id, {"IN_ERROR"}))["numberOfInErrorTasks"] == 2
    wrong = await api.put(f"/rest/scheduler/jobs/{job_id}/tasks/child/finishInErrorTask")
    assert wrong.status_code == 409
    restarted = await api.put(f"/rest/scheduler/jobs/{job_id}/tasks/flaky/restartInErrorTask")
    assert await restarted.get_json() is True
    await api.wait_task(job_id, "flaky", "FINISHED")
    finished = await api.put(f"/rest/scheduler/jobs/{job_id}/tasks/broken/finishInErrorTask")
    assert await finished.get_json() is True
    await api.wait_task(job_id, "child", "FINISHED")
    assert (await api.wait_status(job_id))["status"] == "FINISHED"


async def test_task_paging_rejects_huge_offsets(api: Api) -> None:
    job_id = await api.submit(job_xml([{"name": "A", "bash": "true"}], name="one"))
    huge = "9" * 23  # overflowed SQLite's INTEGER: was a 500
    for listing in ("tasks/paginated", "taskstates/paginated"):
        for query in (f"offset={huge}", f"limit={huge}", "offset=%C2%B2"):
            response = await api.get(f"/rest/scheduler/jobs/{job_id}/{listing}?{query}")
            assert response.status_code == 400, (listing, query)
            body = await response.get_json()
            assert body["httpErrorCode"] == 400
            assert "query parameter" in body["errorMessage"]
    await api.wait_status(job_id)
