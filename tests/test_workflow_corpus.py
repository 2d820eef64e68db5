"""The ProActive compatibility corpus: every file gets the outcome its INDEX.md gives.

The files live outside the repository (`../shared/workflows/proactive`); these tests
skip when it is absent and run in CI, where it is present.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from lxml import etree

from simple_scheduler.workflow import (
    Job,
    NativeCommand,
    Script,
    WorkflowError,
    parse_workflow,
    substitute,
)

NO_COMMENTS = etree.XMLParser(remove_comments=True)
CORPUS = Path(__file__).resolve().parents[2] / "shared" / "workflows" / "proactive"
pytestmark = pytest.mark.skipif(
    not (CORPUS / "INDEX.md").is_file(), reason=f"compatibility corpus not found at {CORPUS}"
)


def read(name: str) -> bytes:
    return (CORPUS / name).read_bytes()


def parse(name: str, **variables: str) -> Job:
    return parse_workflow(read(name), variables or None)


def rejected(name: str) -> WorkflowError:
    with pytest.raises(WorkflowError) as info:
        parse(name)
    return info.value


def without_tasks(name: str, *tasks: str) -> bytes:
    """The file with some tasks removed, to check what the rest would do."""
    root = etree.fromstring(read(name), NO_COMMENTS)
    for task in [t for t in root.iter("{*}task") if t.get("name") in tasks]:
        parent = task.getparent()
        assert parent is not None
        parent.remove(task)
    return etree.tostring(root)


def index_outcomes() -> dict[str, str]:
    """file -> "run" | "reject", from the INDEX.md table."""
    rows = re.findall(
        r"^\| `([^`]+)` \|[^|]*\| (run|reject)\b", (CORPUS / "INDEX.md").read_text(), re.M
    )
    return dict(rows)


def test_index_lists_every_file() -> None:
    assert set(index_outcomes()) == {p.name for p in CORPUS.glob("*.xml")}


@pytest.mark.parametrize(
    "name", sorted(p.name for p in CORPUS.glob("*.xml")) if CORPUS.is_dir() else []
)
def test_outcome_matches_index(name: str) -> None:
    """Every file parses or is refused as INDEX.md says, never with another exception."""
    expected = index_outcomes()[name]
    if expected == "run":
        assert parse(name).tasks
    else:
        err = rejected(name)
        assert err.problems and all(p.message for p in err.problems)


def test_script_bash() -> None:
    (task,) = parse("studio-script_bash.xml").tasks
    assert isinstance(task.executable, Script)
    assert task.executable.language == "bash"
    assert task.executable.code.strip() == "ls -la"


def test_script_shell_keeps_its_interpreter_line_first() -> None:
    (task,) = parse("studio-script_shell.xml").tasks
    assert isinstance(task.executable, Script)
    assert task.executable.language == "shell"
    assert task.executable.code.startswith("#!/bin/ksh\n")


def test_job_no_variables() -> None:
    job = parse("job_no_variables.xml")
    assert job.name == "NoJobVariables" and job.variables == {}
    assert job.description == "NoVariablesTestJob"
    (task,) = job.tasks
    assert task.description == "The simplest task, ran by a bash engine."


def test_variables_keep_declared_order() -> None:
    job = parse("job_variables_order.xml")
    assert list(job.variables) == [f"var_{i}" for i in range(1, 7)]
    assert list(parse("job_variables_order.xml", var_3="x", extra="y").variables) == [
        *(f"var_{i}" for i in range(1, 7)),
        "extra",
    ]


def test_global_variables_and_generic_information() -> None:
    job = parse("job_with_global_variables_and_gi.xml")
    assert job.variables["job_var_referencing_global_var"] == "${referenced_global_var}"
    assert job.generic_information["gen_info_referencing_global_var"] == "${referenced_global_var}"
    job = parse("job_with_global_variables_and_gi.xml", referenced_global_var="g", global_var="s")
    assert job.variables["job_var_referencing_global_var"] == "g"
    assert job.variables["global_var"] == "s"
    assert job.generic_information["gen_info_referencing_global_var"] == "g"
    assert job.generic_information["gen_info"] == "gen_info_value"


def test_metadata_is_ignored() -> None:
    job = parse("job_with_metadata.xml")
    assert [t.name for t in job.tasks] == ["Linux_Bash_Task"] and job.warnings == ()


def test_empty_tag_is_rejected() -> None:
    (problem,) = rejected("job_with_invalid_tags.xml").problems
    assert "empty tag" in problem.message and "aa,bb," in problem.message
    assert problem.line == 4


def test_javascript_task_is_named() -> None:
    (problem,) = rejected("Job_SCHEDULING_2034_unix.xml").problems
    assert problem.task == "verify_task" and "'javascript'" in problem.message
    job = parse_workflow(without_tasks("Job_SCHEDULING_2034_unix.xml", "verify_task"))
    (task,) = job.tasks
    assert task.executable == NativeCommand(("/bin/bash", "-c", "echo $variables_var"))
    # At run time `$variables_var` is unknown to substitution, so bash reads it from env.
    argv = [substitute(a, job.variables) for a in task.executable.argv]
    assert argv[2] == "echo $variables_var" and job.variables == {"var": "var-value"}
    assert task.precious_result


def test_groovy_task_is_named_and_walltime_read() -> None:
    (problem,) = rejected("Job_PropagatedVariables_Timeout.xml").problems
    assert problem.task == "read_var" and "'groovy'" in problem.message
    job = parse_workflow(without_tasks("Job_PropagatedVariables_Timeout.xml", "read_var"))
    assert job.tasks[0].walltime == 5.0
    assert job.tasks[0].executable == NativeCommand(("sleep", "30"))


def test_working_dir_from_submitted_variables() -> None:
    job = parse("Job_test_workingDir_static_command.xml", WDIR="/tmp/wd", EXEC_PATH="/bin/pwd")
    (task,) = job.tasks
    assert task.working_dir == "/tmp/wd"
    assert task.executable == NativeCommand(("${EXEC_PATH}", "${WDIR}"))  # raw until run time
    argv = [substitute(a, job.variables | task.variables) for a in task.executable.argv]
    assert argv == ["/bin/pwd", "/tmp/wd"]
    # Without submitted values the self-references stay as written (no loop, no error).
    assert parse("Job_test_workingDir_static_command.xml").variables["WDIR"] == "${WDIR}"


def test_java_executables_are_rejected_by_task() -> None:
    problems = rejected("Job_Coverage.xml").problems
    assert [p.task for p in problems] == ["task1", "task2", "task3", "task4", "task5"]
    assert all("javaExecutable" in p.message for p in problems)


def test_native_ping_with_integer_variable() -> None:
    job = parse("examples-native_task_linux.xml")
    (task,) = job.tasks
    assert task.executable == NativeCommand(("ping", "-c", "${NUMBER_OF_PING}", "127.0.0.1"))
    assert substitute(task.executable.argv[2], job.variables) == "4"
    assert job.tags == ("Linux",) and job.max_number_of_execution == 2
    with pytest.raises(WorkflowError, match=r"NUMBER_OF_PING.*PA:INTEGER"):
        parse("examples-native_task_linux.xml", NUMBER_OF_PING="four")


def test_native_date_with_studio_metadata() -> None:
    (task,) = parse("examples-native_task.xml").tasks
    assert task.executable == NativeCommand(("date",))
    assert task.generic_information["task.icon"].endswith("native_task.png")


def test_ipython_cluster_list_model() -> None:
    job = parse("examples-Start_IPython_Cluster.xml")
    (task,) = job.tasks
    assert isinstance(task.executable, Script)
    assert "$variables_IPCLUSTER_PATH" in task.executable.code  # never substituted
    assert job.tags == ("In Memory", "Cluster", "IPython")
    assert parse("examples-Start_IPython_Cluster.xml", IPCLUSTER_PATH="ipcluster")
    with pytest.raises(WorkflowError, match=r"IPCLUSTER_PATH.*PA:LIST"):
        parse("examples-Start_IPython_Cluster.xml", IPCLUSTER_PATH="/bin/sh")


def test_replicate_is_rejected_until_control_flow_exists() -> None:
    (problem,) = rejected("examples-Install_Serf.xml").problems
    assert problem.task == "Split" and "replicate" in problem.message


def test_mixed_java_tasks_and_legacy_cancel_job_on_error() -> None:
    problems = rejected("studio-Job_mixed.xml").problems
    assert [p.task for p in problems] == ["task1", "task3"]
    job = parse_workflow(without_tasks("studio-Job_mixed.xml", "task1", "task3", "task4"))
    assert job.on_task_error == "cancelJob"
    assert job.project_name == "myProject"


def test_native_diamond_with_one_java_task() -> None:
    (problem,) = rejected("studio-Job_nativ.xml").problems
    assert problem.task == "task3" and problem.line == 45
    root = etree.fromstring(read("studio-Job_nativ.xml"), NO_COMMENTS)
    for task in root.iter("{*}task"):
        if task.get("name") == "task3":
            java = next(c for c in task if etree.QName(c).localname == "javaExecutable")
            native = etree.SubElement(task, etree.QName(root, "nativeExecutable"))
            etree.SubElement(native, etree.QName(root, "staticCommand"), value="true")
            task.remove(java)
    job = parse_workflow(etree.tostring(root))
    assert job.on_task_error == "continueJobExecution"
    assert [t.depends for t in job.tasks] == [(), (0,), (0,), (1, 2)]
    assert job.topological_order() == [0, 1, 2, 3]
