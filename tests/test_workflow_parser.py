"""What the parser accepts and the job model it builds."""

from __future__ import annotations

import concurrent.futures
import gc
import io
import threading
import time
import zipfile
from pathlib import Path

import pytest

from simple_scheduler.workflow import (
    Job,
    Limits,
    NativeCommand,
    Script,
    WorkflowError,
    load_workflow_bytes,
    parse_workflow,
)

NS = "urn:proactive:jobdescriptor:3.14"
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def job_xml(tasks: str, attrs: str = 'name="j"', head: str = "", ns: str | None = NS) -> bytes:
    xmlns = f' xmlns="{ns}"' if ns else ""
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<job{xmlns} {attrs}>\n{head}'
        f"<taskFlow>\n{tasks}</taskFlow>\n</job>\n"
    ).encode()


def bash(name: str, code: str = "echo hi", attrs: str = "", inner: str = "") -> str:
    return (
        f'<task name="{name}" {attrs}>{inner}<scriptExecutable><script>'
        f'<code language="bash"><![CDATA[{code}]]></code></script></scriptExecutable></task>\n'
    )


def native(name: str, *argv: str, attrs: str = "", inner: str = "") -> str:
    args = "".join(f'<argument value="{a}"/>' for a in argv[1:])
    return (
        f'<task name="{name}" {attrs}>{inner}<nativeExecutable><staticCommand value="{argv[0]}">'
        f"<arguments>{args}</arguments></staticCommand></nativeExecutable></task>\n"
    )


def depends(*names: str) -> str:
    return "<depends>" + "".join(f'<task ref="{n}"/>' for n in names) + "</depends>"


def parse(data: bytes, **variables: str) -> Job:
    return parse_workflow(data, variables or None)


def test_minimal_job_defaults() -> None:
    job = parse(job_xml(bash("A")))
    assert job.name == "j" and job.priority == "normal"
    assert job.on_task_error == "continueJobExecution" and job.max_number_of_execution == 1
    assert job.task_retry_delay is None and job.project_name is None and job.tags == ()
    assert job.namespace == NS
    (task,) = job.tasks
    assert task.index == 0 and task.line == 4 and task.depends == ()
    assert task.executable == Script("bash", "echo hi")
    assert task.on_task_error is None and task.max_number_of_execution is None
    assert task.walltime is None and task.number_of_nodes == 1
    assert not task.run_as_me and not task.precious_result


@pytest.mark.parametrize(
    "ns",
    [None, "urn:proactive:jobdescriptor:dev", "urn:proactive:jobdescriptor:3.0"]
    + [f"urn:proactive:jobdescriptor:3.{i}" for i in (2, 10, 14)],
)
def test_accepted_namespaces(ns: str | None) -> None:
    assert parse(job_xml(bash("A"), ns=ns)).namespace == ns


def test_diamond_dependencies_and_order() -> None:
    tasks = (
        bash("A")
        + bash("B", inner=depends("A"))
        + bash("C", inner=depends("A"))
        + bash("D", inner=depends("B", "C"))
    )
    job = parse(job_xml(tasks))
    assert [t.depends for t in job.tasks] == [(), (0,), (0,), (1, 2)]
    assert job.topological_order() == [0, 1, 2, 3]
    assert job.children() == [[1, 2], [3], [3], []]


def test_forward_reference_and_duplicate_ref() -> None:
    job = parse(job_xml(bash("late_child", inner=depends("P", "P")) + bash("P")))
    assert job.tasks[0].depends == (1,)
    assert job.topological_order() == [1, 0]


def test_job_attributes() -> None:
    attrs = (
        'name="big" priority="HIGH" onTaskError="suspendTask" maxNumberOfExecution="3" '
        'taskRetryDelay="1:30" projectName="p" tags="a, b,c" restartTaskOnError="anywhere"'
    )
    job = parse(job_xml(bash("A"), attrs=attrs))
    assert job.priority == "high" and job.on_task_error == "suspendTask"
    assert job.max_number_of_execution == 3 and job.task_retry_delay == 90.0
    assert job.project_name == "p" and job.tags == ("a", "b", "c")


def test_legacy_cancel_job_on_error_and_on_task_error_none() -> None:
    assert (
        parse(job_xml(bash("A"), 'name="j" cancelJobOnError="true"')).on_task_error == "cancelJob"
    )
    assert parse(job_xml(bash("A"), 'name="j" cancelJobOnError="false"')).on_task_error == (
        "continueJobExecution"
    )
    both = 'name="j" cancelJobOnError="true" onTaskError="pauseJob"'
    assert parse(job_xml(bash("A"), both)).on_task_error == "pauseJob"
    assert parse(job_xml(bash("A"), 'name="j" onTaskError="none"')).on_task_error == (
        "continueJobExecution"
    )


def test_task_attributes() -> None:
    attrs = (
        'onTaskError="cancelJob" maxNumberOfExecution="4" taskRetryDelay="5" walltime="1:00:00" '
        'runAsMe="true" preciousResult="1" fork="true" preciousLogs="false" numberOfNodes="2"'
    )
    job = parse(job_xml(bash("A", attrs=attrs) + bash("B", attrs='onTaskError="none"')))
    a, b = job.tasks
    assert a.on_task_error == "cancelJob" and a.max_number_of_execution == 4
    assert a.task_retry_delay == 5.0 and a.walltime == 3600.0
    assert a.run_as_me and a.precious_result and a.number_of_nodes == 2
    assert b.on_task_error is None
    assert job.task_on_error(b) == "continueJobExecution" and job.task_on_error(a) == "cancelJob"
    assert job.task_max_number_of_execution(b) == 1


def test_parallel_and_node_access_token() -> None:
    inner = (
        '<genericInformation><info name="NODE_ACCESS_TOKEN" value="tok-${T}"/></genericInformation>'
        '<parallel numberOfNodes="3"><topology><singleHost/></topology></parallel>'
    )
    head = '<variables><variable name="T" value="1"/></variables>'
    (task,) = parse(job_xml(bash("A", inner=inner), head=head)).tasks
    assert task.number_of_nodes == 3 and task.node_access_token == "tok-1"


def test_walltime_precedence() -> None:
    head = '<genericInformation><info name="WALLTIME" value="10:00"/></genericInformation>'
    own_gi = '<genericInformation><info name="WALLTIME" value="30"/></genericInformation>'
    tasks = (
        bash("attr", attrs='walltime="5"', inner=own_gi) + bash("gi", inner=own_gi) + bash("job")
    )
    job = parse(job_xml(tasks, head=head))
    assert [t.walltime for t in job.tasks] == [5.0, 30.0, 600.0]


def test_variables_substitution_rules() -> None:
    head = (
        "<variables>"
        '<variable name="HOME_DIR" value="/srv"/>'
        '<variable name="OUT" value="${HOME_DIR}/out/$PA_JOB_ID"/>'
        '<variable name="RETRIES" value="3" model="PA:INTEGER[1,5]"/>'
        "</variables>"
        '<genericInformation><info name="where" value="$HOME_DIR"/></genericInformation>'
    )
    inner = (
        '<variables><variable name="OUT" value="ignored" inherited="true"/>'
        '<variable name="MINE" value="${OUT}/mine" />'
        '<variable name="HOME_DIR" value="/task-home"/></variables>'
        '<genericInformation><info name="gi" value="${HOME_DIR}"/></genericInformation>'
        '<forkEnvironment workingDir="${HOME_DIR}/wd"><SystemEnvironment>'
        '<variable name="E" value="${MINE}"/></SystemEnvironment></forkEnvironment>'
    )
    tasks = native(
        "A",
        "/bin/echo",
        "${OUT}",
        "$RETRIES",
        attrs='maxNumberOfExecution="${RETRIES}"',
        inner=inner,
    )
    job = parse(job_xml(tasks, attrs='name="job-${RETRIES}"', head=head))
    assert job.name == "job-3"
    assert job.variables == {"HOME_DIR": "/srv", "OUT": "/srv/out/$PA_JOB_ID", "RETRIES": "3"}
    assert job.generic_information == {"where": "/srv"}
    (task,) = job.tasks
    assert task.max_number_of_execution == 3
    assert task.variables == {
        "OUT": "/srv/out/$PA_JOB_ID",
        "MINE": "/srv/out/$PA_JOB_ID/mine",
        "HOME_DIR": "/task-home",
    }
    assert task.generic_information == {"gi": "/task-home"}
    assert task.working_dir == "/task-home/wd"
    assert task.environment == {"E": "/srv/out/$PA_JOB_ID/mine"}
    assert task.executable == NativeCommand(("/bin/echo", "${OUT}", "$RETRIES"))  # raw


def test_submitted_variables_override_and_feed_models() -> None:
    head = '<variables><variable name="N" value="1" model="PA:INTEGER"/></variables>'
    job = parse(job_xml(bash("A"), head=head), N="7", NEW="x")
    assert job.variables == {"N": "7", "NEW": "x"}
    with pytest.raises(WorkflowError, match="'N' fails its model PA:INTEGER"):
        parse(job_xml(bash("A"), head=head), N="seven")


def test_bash_body_is_never_substituted() -> None:
    head = '<variables><variable name="X" value="1"/></variables>'
    (task,) = parse(job_xml(bash("A", code="echo ${X} $X $variables_X"), head=head)).tasks
    assert task.executable == Script("bash", "echo ${X} $X $variables_X")


def test_pre_post_cleaning_scripts() -> None:
    def holder(tag: str, lang: str, code: str) -> str:
        return f'<{tag}><script><code language="{lang}">{code}</code></script></{tag}>'

    task = (
        '<task name="A">' + holder("pre", "sh", "echo pre")
        + '<scriptExecutable><script><code language="Bash">echo main</code></script>'
        + "</scriptExecutable>"
        + '<controlFlow block="none"/>'
        + holder("post", "bash", "echo post") + holder("cleaning", "shell", "\n  #!/bin/sh\necho c")
        + "<metadata><positionTop>1</positionTop></metadata></task>\n"
    )  # fmt: skip
    (t,) = parse(job_xml(task)).tasks
    assert t.pre == Script("sh", "echo pre") and t.post == Script("bash", "echo post")
    assert t.executable == Script("bash", "echo main")
    assert t.cleaning == Script("shell", "#!/bin/sh\necho c")


def test_description_cdata_and_generic_information() -> None:
    head = (
        "<description><![CDATA[ multi\nline ]]></description>"
        '<genericInformation><info name="a" value="1"/><info name="b" value=""/>'
        "</genericInformation>"
    )
    job = parse(job_xml(bash("A"), head=head))
    assert job.description == "multi\nline"
    assert job.generic_information == {"a": "1", "b": ""}
    assert job.task_generic_information(job.tasks[0]) == {"a": "1", "b": ""}


def test_ignored_elements_become_warnings() -> None:
    inner = (
        '<selection><script><code language="groovy">selected=true</code></script></selection>'
        "<inputFiles><files includes='a'/></inputFiles>"
        '<forkEnvironment javaHome="/j"><envScript><script><code language="groovy">x</code>'
        "</script></envScript></forkEnvironment><studioThing/>"
    )
    job = parse(job_xml(bash("A", inner=inner), head="<inputSpace url='x'/>"))
    text = "\n".join(job.warnings)
    for word in ("selection", "inputFiles", "envScript", "studioThing", "inputSpace"):
        assert word in text
    assert job.tasks[0].environment == {}


def test_foreign_namespace_elements_are_ignored() -> None:
    inner = '<x:thing xmlns:x="urn:other"><x:task name="not-a-task"/></x:thing>'
    job = parse(job_xml(bash("A", inner=inner)))
    assert [t.name for t in job.tasks] == ["A"]


def test_seed_format_without_namespace() -> None:
    data = b'<job name="seed"><taskFlow>' + native("a", "true").encode() + b"</taskFlow></job>"
    job = parse(data)
    assert job.namespace is None and job.tasks[0].executable == NativeCommand(("true",))


def test_zip_upload_holding_one_xml() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("job/", "")
        archive.writestr("__MACOSX/._job.xml", "junk")
        archive.writestr("job/job.xml", job_xml(bash("A")))
    data = buffer.getvalue()
    assert load_workflow_bytes(data) == job_xml(bash("A"))
    assert parse(data).tasks[0].name == "A"


def test_bytearray_and_memoryview_inputs() -> None:
    data = job_xml(bash("A"))
    assert parse_workflow(bytearray(data)).name == "j"  # type: ignore[arg-type]
    assert parse_workflow(memoryview(data)).name == "j"  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        parse_workflow(data.decode())  # type: ignore[arg-type]


def test_parses_never_turn_the_gc_off() -> None:
    """Issue 14.10: parses run in worker threads; the cyclic GC is process-wide state, so
    no parse may toggle it: watched while parses run, and after them, it stays on."""
    big = job_xml(
        "".join(bash(f"t{i}", inner=depends(f"t{i - 1}") if i else "") for i in range(3000))
    )
    seen_off = threading.Event()
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            if not gc.isenabled():
                seen_off.set()
            time.sleep(0)

    assert gc.isenabled()
    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            jobs = list(pool.map(lambda _: parse_workflow(big), range(8)))
    finally:
        done.set()
        watcher.join()
    assert all(len(job.tasks) == 3000 for job in jobs)
    assert gc.isenabled() and not seen_off.is_set()


def test_many_tasks_stream_in_batches() -> None:
    """Past the release batch (256 tasks) the tree behind is freed; links still resolve."""
    tasks = bash("t0") + "".join(
        bash(f"t{i}", inner=depends(f"t{i - 1}", "t0")) for i in range(1, 700)
    )
    job = parse_workflow(job_xml(tasks), limits=Limits(max_tasks=700))
    assert len(job.tasks) == 700 and job.tasks[699].depends == (698, 0)
    assert job.topological_order() == list(range(700))


def test_example_diamond() -> None:
    job = parse((EXAMPLES / "diamond.xml").read_bytes())
    assert [t.name for t in job.tasks] == ["A", "B", "C", "D"]
    assert [t.depends for t in job.tasks] == [(), (0,), (0,), (1, 2)]
    assert all(isinstance(t.executable, Script) for t in job.tasks)
