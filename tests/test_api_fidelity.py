"""What ProActive's Java and Python clients read, against the DTO field lists of
PROACTIVE.md section 6 (and 1.1), through the real app.

The Java-serialized result values and exceptions are read back by the JDK's own
`ObjectInputStream` (skipped, saying so, when no `java` is installed).
"""

from __future__ import annotations

import base64
import shutil
import subprocess
import textwrap
from pathlib import Path
from typing import Any

import pytest
from apiutil import Api, api_fixture  # noqa: F401
from wfxml import job_xml

from simple_scheduler.api import javaser

JOBS = "/rest/scheduler/jobs"
EXC = "org.ow2.proactive_grid_cloud_portal.scheduler.exception."

JOB_INFO_FIELDS = {
    "submittedTime", "startTime", "finishedTime", "inErrorTime", "removedTime",
    "status", "jobId", "priority", "jobOwner", "tenant", "projectName", "description",
    "bucketName", "label", "toBeRemoved", "parentId", "childrenCount", "submissionMode",
    "startAt", "totalNumberOfTasks", "numberOfPendingTasks", "numberOfRunningTasks",
    "numberOfFinishedTasks", "numberOfFailedTasks", "numberOfFaultyTasks",
    "numberOfInErrorTasks", "genericInformation", "variables", "detailedVariables",
    "signals", "resultMapPresent", "preciousTasks", "cumulatedCoreTime", "numberOfNodes",
    "numberOfNodesInParallel", "domain",
}  # fmt: skip
JOB_STATE_FIELDS = {
    "id", "name", "owner", "priority", "projectName", "tenant", "genericInformation",
    "jobInfo", "tasks", "domain",
}  # fmt: skip
TASK_STATE_FIELDS = {
    "name", "description", "tag", "iterationIndex", "replicationIndex",
    "maxNumberOfExecution", "maxNumberOfExecutionOnFailure", "numberOfNodesNeeded",
    "parallelEnvironment", "genericInformation", "taskInfo",
}  # fmt: skip
TASK_INFO_FIELDS = {
    "jobId", "taskId", "startTime", "finishedTime", "scheduledTime", "inErrorTime",
    "executionDuration", "taskStatus", "executionHostName", "numberOfExecutionLeft",
    "numberOfExecutionOnFailureLeft", "progress", "variables",
}  # fmt: skip

WORKFLOW = b"""<?xml version="1.0" encoding="UTF-8"?>
<job xmlns="urn:proactive:jobdescriptor:3.14" name="fidelity">
  <variables>
    <variable name="COUNT" value="3" model="PA:INTEGER[1,10]" description="how many"
              group="sizes" advanced="true" hidden="false"/>
    <variable name="PLAIN" value="p"/>
  </variables>
  <genericInformation><info name="START_AT" value="2030-01-02T03:04:05Z"/></genericInformation>
  <taskFlow>
    <task name="ok" preciousResult="true">
      <variables><variable name="OWN" value="mine" inherited="false"/></variables>
      <scriptExecutable><script><code language="bash">exit 0</code></script></scriptExecutable>
    </task>
    <task name="bad">
      <selection><script><code language="groovy">selected = true</code></script></selection>
      <scriptExecutable><script><code language="bash">exit 3</code></script></scriptExecutable>
    </task>
  </taskFlow>
</job>"""


async def json_of(response: Any) -> Any:
    return await response.get_json()


async def test_dto_shapes_and_values(api: Api) -> None:
    job_id = await api.submit(WORKFLOW)
    info = await api.wait_status(job_id)
    assert set(info) >= JOB_INFO_FIELDS
    assert info["jobId"] == {"id": job_id, "readableName": "fidelity"}
    assert info["startAt"] == 1893553445000  # epoch ms of START_AT
    assert info["preciousTasks"] == ["ok"]
    count = info["detailedVariables"]["COUNT"]
    assert count == {
        "name": "COUNT",
        "value": "3",
        "model": "PA:INTEGER[1,10]",
        "description": "how many",
        "group": "sizes",
        "advanced": True,
        "hidden": False,
    }
    assert info["detailedVariables"]["PLAIN"]["model"] is None

    state = await json_of(await api.get(f"{JOBS}/{job_id}"))
    assert set(state) >= JOB_STATE_FIELDS
    assert state["id"] == job_id and isinstance(state["id"], int)
    for task in state["tasks"].values():
        assert set(task) >= TASK_STATE_FIELDS
        assert set(task["taskInfo"]) >= TASK_INFO_FIELDS
    ok = state["tasks"]["0"]["taskInfo"]
    assert ok["variables"] == {"COUNT": "3", "PLAIN": "p", "OWN": "mine"}
    assert isinstance(ok["taskId"]["id"], int) and isinstance(ok["jobId"]["id"], int)

    listed = await json_of(await api.get("/rest/scheduler/jobsinfo"))
    assert listed["list"][0]["jobInfo"]["preciousTasks"] == ["ok"]


async def test_validate_returns_warnings_and_models(api: Api) -> None:
    response = await api.post_workflow("/rest/scheduler/validate", WORKFLOW)
    result = await json_of(response)
    assert result["valid"] is True
    assert any("selection" in w for w in result["warnings"])
    assert result["updatedModels"] == {"COUNT": "PA:INTEGER[1,10]", "PLAIN": None}
    assert result["updatedGroups"]["COUNT"] == "sizes"
    assert result["updatedAdvanced"] == {"COUNT": True, "PLAIN": False}


async def test_connected_is_exactly_true_or_false(api: Api) -> None:
    for path in ("/rest/common/connected", "/rest/scheduler/isconnected"):
        assert await (await api.get(path)).get_data(as_text=True) == "true"
        assert await (await api.get(path, user=None)).get_data(as_text=True) == "false"


async def test_error_answers_name_proactive_exceptions(api: Api) -> None:
    async def exception_of(response: Any, status: int) -> str:
        assert response.status_code == status, await response.get_data(as_text=True)
        return str((await response.get_json())["exceptionClass"])

    job_id = await api.submit(job_xml([{"name": "a", "bash": "sleep 30"}]))
    await api.wait_task(job_id, "a", "RUNNING")
    assert await exception_of(await api.get(f"{JOBS}/{job_id}", user=None), 401) == (
        EXC + "NotConnectedRestException"
    )
    assert await exception_of(await api.get(f"{JOBS}/999999"), 404) == (
        EXC + "UnknownJobRestException"
    )
    assert await exception_of(await api.get(f"{JOBS}/{job_id}", user="bob"), 404) == (
        EXC + "UnknownJobRestException"
    )
    assert await exception_of(await api.get(f"{JOBS}/{job_id}/tasks/nope"), 404) == (
        EXC + "UnknownTaskRestException"
    )
    high = await api.put(f"{JOBS}/{job_id}/priority/byname/HIGHEST")
    assert await exception_of(high, 403) == EXC + "PermissionRestException"
    bad = await api.post_workflow("/rest/scheduler/submit", b"<job>")
    assert await exception_of(bad, 400) == EXC + "JobCreationRestException"
    assert (await json_of(await api.put(f"{JOBS}/{job_id}/kill"))) is True
    again = await api.put(f"{JOBS}/{job_id}/kill")
    assert await exception_of(again, 409) == EXC + "JobAlreadyFinishedRestException"


async def test_revisionjobsinfo_filters_and_pages(api: Api) -> None:
    done = await api.submit(job_xml([{"name": "a", "bash": "true"}], name="done-job"))
    await api.wait_status(done)
    alive = await api.submit(job_xml([{"name": "a", "bash": "sleep 30"}], name="alive-job"))
    await api.wait_task(alive, "a", "RUNNING")
    await api.submit(job_xml([{"name": "b", "bash": "true"}], name="bobs"), user="bob")

    async def listing(query: str, user: str = "alice") -> list[dict[str, Any]]:
        page = await json_of(await api.get(f"/rest/scheduler/revisionjobsinfo?{query}", user))
        assert isinstance(page["revision"], int)
        assert list(page["map"]) == [str(page["revision"])]
        items: list[dict[str, Any]] = page["map"][str(page["revision"])]
        return items

    everything = await listing("myjobs=true")
    assert [j["jobInfo"]["jobId"]["id"] for j in everything] == [alive, done]
    running = await listing("pending=false&finished=false")
    assert [j["jobid"] for j in running] == [str(alive)]
    assert [j["jobid"] for j in await listing("jobName=done-job")] == [str(done)]
    assert len(await listing("index=1&limit=1")) == 1
    # A user lists only their own jobs, whatever they ask; an admin may list everybody's.
    assert {j["jobOwner"] for j in await listing("myjobs=false")} == {"alice"}
    assert {j["jobOwner"] for j in await listing("myjobs=false", "root")} == {"alice", "bob"}
    await api.put(f"{JOBS}/{alive}/kill")


async def test_server_log(api: Api) -> None:
    job_id = await api.submit(job_xml([{"name": "a", "bash": "exit 4"}], name="logged"))
    await api.wait_status(job_id)
    response = await api.get(f"{JOBS}/{job_id}/log/server")
    assert response.status_code == 200
    text = await response.get_data(as_text=True)
    lines = text.splitlines()
    assert "submitted by alice" in lines[0]
    assert any(f"task {job_id}t0 (a) FAULTY, exit code 4: exit code 4" in line for line in lines)
    assert lines[-1].endswith(f"job {job_id} FINISHED")


READER = textwrap.dedent(
    """
    import java.io.*;
    import java.util.Base64;
    public class Read {
        public static void main(String[] args) throws Exception {
            BufferedReader in = new BufferedReader(new InputStreamReader(System.in));
            String line;
            while ((line = in.readLine()) != null) {
                byte[] data = Base64.getDecoder().decode(line.trim());
                Object o = new ObjectInputStream(new ByteArrayInputStream(data)).readObject();
                String text = o instanceof Throwable ? ((Throwable) o).getMessage() : o.toString();
                System.out.println(o.getClass().getName() + "|" + text);
            }
        }
    }
    """
)


async def test_serialized_results_read_by_the_jdk(api: Api, tmp_path: Path) -> None:
    java = shutil.which("java")
    if java is None:
        pytest.skip("no JDK: cannot check the Java serialization")
    xml = job_xml([{"name": "ok", "bash": "exit 0"}, {"name": "bad", "bash": "exit 3"}])
    job_id = await api.submit(xml)
    await api.wait_status(job_id)
    ok = await json_of(await api.get(f"{JOBS}/{job_id}/tasks/ok/result"))
    bad = await json_of(await api.get(f"{JOBS}/{job_id}/tasks/bad/result"))
    assert ok["serializedException"] is None and bad["serializedValue"] is None
    reason = "a reason with ünïcödé, a NUL \x00 and 🙂"

    crafted = javaser.b64(javaser.exception(reason))
    source = tmp_path / "Read.java"
    source.write_text(READER)
    values = [ok["serializedValue"], bad["serializedException"], crafted]
    values.append(javaser.b64(javaser.integer(-7)))
    run = subprocess.run(
        [java, str(source)],
        input="\n".join(values) + "\n",
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert run.stdout.splitlines() == [
        "java.lang.Integer|0",
        "java.lang.Exception|exit code 3",
        f"java.lang.Exception|{reason}",
        "java.lang.Integer|-7",
    ]
    assert base64.b64decode(ok["serializedValue"])[:2] == b"\xac\xed"


async def test_a_submitted_job_is_listed_without_reading_its_document_back(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its details (precious tasks, declared variables) are stored with it at submission:
    a listing, what clients poll, reads them from the listed rows, nothing per job (a
    cache filled after the commit missed for jobs listed in between)."""
    job_id = await api.submit(WORKFLOW)

    async def no_reads(*args: object) -> object:
        raise AssertionError("the job's details were read back from the store")

    from simple_scheduler.store import jobstore

    monkeypatch.setattr(jobstore, "job_document", no_reads)
    monkeypatch.setattr(jobstore, "precious_task_names", no_reads)
    monkeypatch.setattr(jobstore, "stored_details", no_reads)
    api.services.job_details.clear()
    listing = await json_of(await api.get("/rest/scheduler/jobsinfo?limit=5"))
    [item] = [i for i in listing["list"] if int(i["jobid"]) == job_id]
    assert item["jobInfo"]["preciousTasks"] == ["ok"]
    assert item["jobInfo"]["detailedVariables"]["COUNT"]["model"] == "PA:INTEGER[1,10]"


async def test_a_job_stored_without_details_shows_them_all_the_same(api: Api) -> None:
    """Jobs submitted before `jobs.details` existed: read from their tasks and XML."""
    job_id = await api.submit(WORKFLOW)
    await api.wait_status(job_id)
    await api.services.store.execute(
        "UPDATE jobs SET details = NULL WHERE id = :id", {"id": job_id}
    )
    api.services.job_details.clear()
    info = await json_of(await api.get(f"{JOBS}/{job_id}/info"))
    listing = await json_of(await api.get("/rest/scheduler/jobsinfo?limit=5"))
    [item] = [i for i in listing["list"] if int(i["jobid"]) == job_id]
    for shown in (info, item["jobInfo"]):
        assert shown["preciousTasks"] == ["ok"]
        assert shown["detailedVariables"]["COUNT"]["model"] == "PA:INTEGER[1,10]"
