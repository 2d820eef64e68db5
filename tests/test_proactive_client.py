"""ProActive's own Python client (`proactive` on PyPI) against a real server.

The client drives ProActive's Java REST client and smart proxy through py4j: `connect()`
logs in and opens the events WebSocket, jobs go in as XML files or as models built in
Python (exported to XML by ProActive's Java code), and results, outputs, states and
errors come back through ProActive's own DTO and exception classes. Nothing here is ours
but the server: a field or an error shape the Java code cannot read fails these tests.

The JVM is Debian's (Java 17). ProActive's client reads error bodies with Jackson 1.9,
which needs `--add-opens java.base/java.lang` on Java >= 16 to rebuild a Throwable;
without it every error reaches the user as a bare `NotFoundException`, whatever the
server sends (README: API, "ProActive clients").
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import proactive  # type: ignore[import-untyped]
import pytest
from harness import kill_under, new_token, short_tmp, wait_for
from py4j.protocol import Py4JJavaError  # type: ignore[import-untyped]
from test_e2e import Server

WORKFLOWS = Path(__file__).resolve().parents[2] / "shared" / "workflows" / "proactive"
JAVA_OPTS = ["--add-opens=java.base/java.lang=ALL-UNNAMED"]


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    token = new_token()
    with short_tmp("pa-") as root:
        srv = Server(root, token)
        try:
            srv.cli("create-user", "alice", "alice-pw")
            srv.start()
            yield srv
        finally:
            srv.kill()
            kill_under(root, token)


@pytest.fixture(scope="module")
def gateway(server: Server) -> Iterator[Any]:
    """One JVM for the module (it takes seconds to start), logged in as alice."""
    gw = proactive.ProActiveGateway(server.url.removesuffix("/rest"), javaopts=list(JAVA_OPTS))
    jvm: subprocess.Popen[bytes] = gw.runtime_gateway.java_process
    try:
        gw.connect(username="alice", password="alice-pw")
        yield gw
    finally:
        try:
            gw.disconnect()
        finally:
            gw.terminate()  # asks the JVM to stop; wait until it has, no java outlives us
            try:
                jvm.wait(30)
            except subprocess.TimeoutExpired:
                jvm.kill()
                jvm.wait(30)


def bash_task(gw: Any, name: str, code: str) -> Any:
    task = gw.createTask(gw.getProactiveScriptLanguage().linux_bash())
    task.setTaskName(name)
    task.setTaskImplementation(code)
    return task


def test_connect_opens_the_session_and_the_event_stream(gateway: Any) -> None:
    """`connect()` used to fail at once: the smart proxy opens /rest/scheduler/events."""
    assert gateway.isConnected()
    assert gateway.getProactiveClient().isConnected()


def test_a_corpus_workflow_runs_and_its_output_comes_back(gateway: Any) -> None:
    job_id = gateway.submitWorkflowFromFile(str(WORKFLOWS / "examples-native_task.xml"))
    assert int(gateway.getJobResult(job_id, 60_000)) == 0  # the task's exit code
    assert gateway.isJobFinished(str(job_id))
    output = gateway.printJobOutput(job_id, 60_000)
    assert "UTC" in output or ":" in output, output  # `date` printed something


def test_a_job_built_in_python_runs_in_order_with_typed_results(gateway: Any) -> None:
    job = gateway.createJob()
    job.setJobName("built-in-python")
    first = bash_task(gateway, "hello", "echo hello-from-bash")
    second = bash_task(gateway, "after", "echo after-$variables_PA_TASK_NAME; exit 3")
    second.addDependency(first)
    job.addTask(first)
    job.addTask(second)
    job_id = gateway.submitJob(job)
    gateway.getJobResult(job_id, 60_000)

    client = gateway.getProactiveClient()
    state = client.getJobState(str(job_id))
    assert state.getStatus().toString() == "Finished"
    statuses = {t.getName(): t.getStatus().toString() for t in state.getTasks()}
    assert statuses == {"hello": "Finished", "after": "Faulty"}
    assert gateway.printJobOutput(job_id, 60_000).split() == ["hello-from-bash", "after-after"]

    ok, failed = (
        client.getTaskResult(str(job_id), "hello"),
        client.getTaskResult(str(job_id), "after"),
    )
    assert not ok.hadException()
    assert int(ok.value()) == 0
    assert failed.hadException()
    results = client.getJobResult(str(job_id)).getAllResults()
    assert set(results.keySet()) == {"hello", "after"}


def test_kill_through_the_client_ends_the_job_killed(gateway: Any) -> None:
    job = gateway.createJob()
    job.setJobName("to-kill")
    job.addTask(bash_task(gateway, "sleepy", "sleep 300"))
    job_id = str(gateway.submitJob(job))
    client = gateway.getProactiveClient()

    def running() -> bool:
        return bool(client.getJobState(job_id).getStatus().toString() == "Running")

    wait_for(running, 30, "the job to run")
    assert client.killJob(job_id)
    state = client.getJobState(job_id)
    assert state.getStatus().toString() == "Killed"
    assert [t.getStatus().toString() for t in state.getTasks()] == ["Aborted"]


def test_errors_reach_the_client_as_proactives_typed_exceptions(gateway: Any) -> None:
    client = gateway.getProactiveClient()
    with pytest.raises(Py4JJavaError) as unknown_job:
        client.getJobState("987654")
    assert unknown_job.value.java_exception.getClass().getName() == (
        "org.ow2.proactive.scheduler.common.exception.UnknownJobException"
    )
    assert "987654" in unknown_job.value.java_exception.getMessage()

    job_id = gateway.submitWorkflowFromFile(str(WORKFLOWS / "examples-native_task.xml"))
    gateway.getJobResult(job_id, 60_000)
    with pytest.raises(Py4JJavaError) as unknown_task:
        client.getTaskResult(str(job_id), "no-such-task")
    assert unknown_task.value.java_exception.getClass().getName() == (
        "org.ow2.proactive.scheduler.common.exception.UnknownTaskException"
    )


def test_listing_reads_the_users_jobs(gateway: Any) -> None:
    job_id = gateway.submitWorkflowFromFile(str(WORKFLOWS / "examples-native_task.xml"))
    gateway.getJobResult(job_id, 60_000)
    listed = gateway.getAllJobs(finished=True, running=True, pending=True)
    ids = {int(job.getJobId().value()) for job in listed}
    assert int(job_id) in ids


def test_the_event_stream_survives_a_big_job(server: Server, gateway: Any) -> None:
    """The client refuses WebSocket frames over 10,240 bytes by dropping the connection
    (its smart proxy then reconnects, and misses what came meanwhile): a 40-task job's
    JOB_SUBMITTED (~60 KB) must reach it without a reconnection."""

    def subscriptions() -> int:
        return server.log.read_text().count("events subscriber of alice connected")

    wait_for(lambda: subscriptions() >= 1, 30, "the client's subscription")
    before = subscriptions()
    job = gateway.createJob()
    job.setJobName("forty")
    for i in range(40):
        job.addTask(bash_task(gateway, f"t{i}", "true"))
    gateway.getJobResult(gateway.submitJob(job), 60_000)
    # A dropped stream reconnects at once; by the time a second job has gone through
    # submit and result, a reconnection would have been logged.
    gateway.getJobResult(
        gateway.submitWorkflowFromFile(str(WORKFLOWS / "examples-native_task.xml")), 60_000
    )
    assert subscriptions() == before
