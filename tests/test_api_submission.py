"""submitflat, resubmit and priority changes through the real app."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from apiutil import Api, api_fixture, running_api  # noqa: F401
from harness import Hypervisor
from wfxml import job_xml

from simple_scheduler.store.db import Store

FLAT = "/rest/scheduler/submitflat"


async def submit_flat(api: Api, content: str, name: str = "flat", user: str = "alice") -> Any:
    return await api.client().post(
        FLAT,
        headers=api.auth(user),
        form={"commandFileContent": content, "jobName": name, "selectionScriptContent": ""},
    )


async def out(api: Api, job_id: int, task: str, user: str = "alice") -> str:
    response = await api.get(f"/rest/scheduler/jobs/{job_id}/tasks/{task}/result/log/out", user)
    text: str = await response.get_data(as_text=True)
    return text


# -- submitflat -------------------------------------------------------------------------


async def test_submitflat_runs_each_line_as_argv_without_a_shell(api: Api) -> None:
    content = "# a comment\n\necho 'a b' $HOME\r\n  \nprintf %s| x>y\n"
    response = await submit_flat(api, content, name="flat <&> job")
    assert response.status_code == 200, await response.get_data(as_text=True)
    body = await response.get_json()
    assert body["readableName"] == "flat <&> job"
    job_id = int(body["id"])
    info = await api.wait_status(job_id)
    assert info["status"] == "FINISHED" and info["totalNumberOfTasks"] == 2
    assert await out(api, job_id, "task_1") == "a b $HOME\n"
    assert await out(api, job_id, "task_2") == "x>y|"  # no pipe, no redirection
    state = await (await api.get(f"/rest/scheduler/jobs/{job_id}")).get_json()
    assert [t["name"] for t in state["tasks"].values()] == ["task_1", "task_2"]
    # The stored XML is a real job descriptor: precious results, and it submits again.
    xml = await (await api.get(f"/rest/scheduler/jobs/{job_id}/xml")).get_data()
    assert b'preciousResult="true"' in xml and b"urn:proactive:jobdescriptor" in xml
    again = await api.submit(xml)
    assert (await api.wait_status(again))["status"] == "FINISHED"
    result = await (await api.get(f"/rest/scheduler/jobs/{job_id}/result")).get_json()
    assert set(result["preciousResults"]) == {"task_1", "task_2"}


async def test_submitflat_pads_task_names_to_the_width_of_n(api: Api) -> None:
    response = await submit_flat(api, "\n".join(f"echo {i}" for i in range(1, 12)))
    assert response.status_code == 200, await response.get_data(as_text=True)
    job_id = int((await response.get_json())["id"])
    await api.wait_status(job_id)
    names = await (await api.get(f"/rest/scheduler/jobs/{job_id}/tasks")).get_json()
    assert names["list"] == [f"task_{i:02d}" for i in range(1, 12)]
    assert await out(api, job_id, "task_11") == "11\n"


async def test_submitflat_rejects_bad_input(api: Api) -> None:
    bad = await submit_flat(api, "echo ok\n# fine\necho 'unbalanced\n")
    assert bad.status_code == 400
    assert "line 3" in (await bad.get_json())["errorMessage"]
    for content in ("", "\n  \n# only comments\n"):
        empty = await submit_flat(api, content)
        assert empty.status_code == 400, content
    control = await submit_flat(api, "echo \x01\n")
    assert control.status_code == 400
    unnamed = await submit_flat(api, "echo x", name="")
    assert unnamed.status_code == 400
    anonymous = await api.client().post(FLAT, form={"commandFileContent": "true", "jobName": "x"})
    assert anonymous.status_code == 401
    jobs = await (await api.get("/rest/scheduler/jobs")).get_json()
    assert jobs["size"] == 0


# -- resubmit ---------------------------------------------------------------------------

GREETER = job_xml(
    [
        {"name": "A", "bash": 'echo "$variables_WHO $variables_OTHER"'},
        {"name": "B", "depends": ["A"], "bash": "echo B"},
    ],
    name="greeter",
    variables={"WHO": "world", "OTHER": "x"},
)


async def test_resubmit_with_matrix_variables(api: Api) -> None:
    first = await api.submit(GREETER, path="/rest/scheduler/submit;OTHER=orig")
    await api.wait_status(first)
    assert await out(api, first, "A") == "world orig\n"
    response = await api.get(f"/rest/scheduler/jobs/{first}/resubmit;WHO=again")
    assert response.status_code == 200, await response.get_data(as_text=True)
    body = await response.get_json()
    second = int(body["id"])
    assert second != first and body["readableName"] == "greeter"
    info = await api.wait_status(second)
    assert info["status"] == "FINISHED" and info["jobOwner"] == "alice"
    # The original submit-time value (OTHER) is kept, the matrix one (WHO) wins.
    assert info["variables"] == {"WHO": "again", "OTHER": "orig"}
    assert await out(api, second, "A") == "again orig\n"
    names = await (await api.get(f"/rest/scheduler/jobs/{second}/tasks")).get_json()
    assert names["list"] == ["A", "B"]
    # Without matrix parameters: the same variables as the job resubmitted.
    plain = await (await api.get(f"/rest/scheduler/jobs/{second}/resubmit")).get_json()
    await api.wait_status(int(plain["id"]))
    assert await out(api, int(plain["id"]), "A") == "again orig\n"


async def test_resubmit_access_and_batch(api: Api) -> None:
    alices = await api.submit(GREETER)
    flat = int((await (await submit_flat(api, "echo hi", name="f")).get_json())["id"])
    await api.wait_status(alices)
    await api.wait_status(flat)
    other = await api.get(f"/rest/scheduler/jobs/{alices}/resubmit", user="bob")
    assert other.status_code == 404
    missing = await api.get("/rest/scheduler/jobs/999/resubmit")
    assert missing.status_code == 404
    batch_other = await api.client().post(
        f"/rest/scheduler/jobs/resubmit?jobsid={flat}&jobsid={alices}", headers=api.auth("bob")
    )
    assert batch_other.status_code == 404
    assert (await (await api.get("/rest/scheduler/jobs", user="bob")).get_json())["size"] == 0

    # An admin may resubmit anyone's job: the new jobs are the admin's, in request order.
    batch = await api.client().post(
        f"/rest/scheduler/jobs/resubmit?jobsid={flat}&jobsid={alices}", headers=api.auth("root")
    )
    assert batch.status_code == 200, await batch.get_data(as_text=True)
    answer = await batch.get_json()
    assert [item["readableName"] for item in answer] == ["f", "greeter"]
    for item in answer:
        info = await api.wait_status(int(item["id"]))
        assert info["jobOwner"] == "root" and info["status"] == "FINISHED"
        assert "jobsid" not in info["genericInformation"]
    assert await out(api, int(answer[0]["id"]), "task_1", user="root") == "hi\n"
    none = await api.client().post("/rest/scheduler/jobs/resubmit", headers=api.auth())
    assert none.status_code == 400


# -- priority ---------------------------------------------------------------------------


@pytest.fixture(name="api1")
async def one_worker_api(
    store: Store, hypervisor: Hypervisor, short_tmp: Path
) -> AsyncIterator[Api]:
    async with running_api(store, hypervisor, short_tmp, workers=1) as api:
        yield api


async def queued_behind_a_blocker(api: Api, go: Path) -> tuple[int, int, int]:
    """A job holding the one worker until `go` exists, then two short jobs queued behind
    it, "earlier" first: (blocker, earlier, later)."""
    blocker = await api.submit(
        job_xml([{"name": "block", "bash": f"while [ ! -e {go} ]; do sleep 0.02; done"}])
    )
    await api.wait_task(blocker, "block", "RUNNING")
    earlier = await api.submit(job_xml([{"name": "t", "bash": "sleep 0.2"}], name="earlier"))
    later = await api.submit(job_xml([{"name": "t", "bash": "sleep 0.2"}], name="later"))
    return blocker, earlier, later


async def test_raised_priority_overtakes_pending_jobs(api1: Api, short_tmp: Path) -> None:
    api = api1
    go = short_tmp / "go"
    blocker, earlier, later = await queued_behind_a_blocker(api, go)
    raised = await api.put(f"/rest/scheduler/jobs/{later}/priority/byname/HIGH", user="root")
    assert raised.status_code == 204, await raised.get_data(as_text=True)
    assert await raised.get_data() == b""
    info = await (await api.get(f"/rest/scheduler/jobs/{later}/info")).get_json()
    assert info["priority"] == "HIGH" and info["status"] == "PENDING"
    go.touch()
    for job_id in (blocker, earlier, later):
        assert (await api.wait_status(job_id))["status"] == "FINISHED"
    first = await api.wait_task(later, "t", "FINISHED")
    second = await api.wait_task(earlier, "t", "FINISHED")
    assert first["taskInfo"]["startTime"] < second["taskInfo"]["startTime"]
    assert first["taskInfo"]["finishedTime"] <= second["taskInfo"]["startTime"]


async def test_lowered_priority_lets_pending_jobs_pass(api1: Api, short_tmp: Path) -> None:
    """Lowering works too: the task's old, better-ranked heap entry is skipped."""
    api = api1
    go = short_tmp / "go"
    blocker, earlier, later = await queued_behind_a_blocker(api, go)
    lowered = await api.put(f"/rest/scheduler/jobs/{earlier}/priority/byname/lowest")
    assert lowered.status_code == 204
    go.touch()
    for job_id in (blocker, earlier, later):
        await api.wait_status(job_id)
    first = await api.wait_task(later, "t", "FINISHED")
    second = await api.wait_task(earlier, "t", "FINISHED")
    assert first["taskInfo"]["finishedTime"] <= second["taskInfo"]["startTime"]


async def test_priority_change_rules(api: Api) -> None:
    sleeper = await api.submit(job_xml([{"name": "s", "bash": "sleep 30"}], name="sleeper"))
    base = f"/rest/scheduler/jobs/{sleeper}/priority/byname"
    for name in ("HIGH", "HIGHEST"):
        forbidden = await api.put(f"{base}/{name}")
        assert forbidden.status_code == 403, name
        assert (await forbidden.get_json())["httpErrorCode"] == 403
    bad = await api.put(f"{base}/URGENT")
    assert bad.status_code == 400
    assert "URGENT" in (await bad.get_json())["errorMessage"]
    assert (await api.put(f"{base}/LOW", user="bob")).status_code == 404
    assert (await api.put("/rest/scheduler/jobs/999/priority/byname/LOW")).status_code == 404
    for name in ("LOW", "IDLE", "NORMAL"):
        assert (await api.put(f"{base}/{name}")).status_code == 204, name
        info = await (await api.get(f"/rest/scheduler/jobs/{sleeper}/info")).get_json()
        assert info["priority"] == name
    assert (await api.put(f"{base}/HIGHEST", user="root")).status_code == 204
    state = await (await api.get(f"/rest/scheduler/jobs/{sleeper}")).get_json()
    assert state["priority"] == "HIGHEST"
    assert (await api.put(f"/rest/scheduler/jobs/{sleeper}/kill")).status_code == 200
    await api.wait_status(sleeper)
    finished = await api.put(f"{base}/LOW")
    assert finished.status_code == 409
    info = await (await api.get(f"/rest/scheduler/jobs/{sleeper}/info")).get_json()
    assert info["priority"] == "HIGHEST"


async def test_only_an_admin_sets_a_high_priority_wherever_it_is_set(api: Api) -> None:
    """Issue 14.5: the XML's priority, directly or through a variable, follows the rule of
    the priority endpoint: 403 for a user, nothing stored; allowed for an admin."""
    jobs = await (await api.get("/rest/scheduler/jobs", user="root")).get_json()
    for priority in ("highest", "HIGH", "${P}"):
        xml = job_xml([{"name": "t"}], priority=priority, variables={"P": "highest"})
        refused = await api.post_workflow("/rest/scheduler/submit", xml)
        assert refused.status_code == 403, priority
        assert "HIGH" in (await refused.get_json())["errorMessage"]
    low = await api.submit(job_xml([{"name": "t"}], priority="${P}", variables={"P": "low"}))
    await api.wait_status(low)
    # Resubmit with a variable raising it, alone or in a batch: refused, none stored.
    raised = await api.get(f"/rest/scheduler/jobs/{low}/resubmit;P=highest")
    assert raised.status_code == 403
    admins = await api.submit(job_xml([{"name": "t"}], priority="highest"), user="root")
    info = await api.wait_status(admins)
    assert info["priority"] == "HIGHEST"
    again = await api.get(f"/rest/scheduler/jobs/{admins}/resubmit", user="root")
    assert again.status_code == 200
    after = await (await api.get("/rest/scheduler/jobs", user="root")).get_json()
    assert after["size"] == jobs["size"] + 3  # low, admins, again: no refused one stored
