"""Every validation error names the problem, the task and the XML line; all at once."""

from __future__ import annotations

import pytest

from simple_scheduler.workflow import Limits, Problem, WorkflowError, parse_workflow

NS = "urn:proactive:jobdescriptor:dev"


def job_xml(tasks: str, attrs: str = 'name="j"', head: str = "") -> bytes:
    return (
        f'<?xml version="1.0"?>\n<job xmlns="{NS}" {attrs}>\n{head}'
        f"<taskFlow>\n{tasks}</taskFlow>\n</job>\n"
    ).encode()


def bash(
    name: str, attrs: str = "", inner: str = "", lang: str = "bash", code: str = "true"
) -> str:
    return (
        f'<task name="{name}" {attrs}>{inner}<scriptExecutable><script>'
        f'<code language="{lang}">{code}</code></script></scriptExecutable></task>\n'
    )


def depends(*names: str) -> str:
    return "<depends>" + "".join(f'<task ref="{n}"/>' for n in names) + "</depends>"


DEFAULT = Limits()


def problems(data: bytes, limits: Limits = DEFAULT, **variables: str) -> list[Problem]:
    with pytest.raises(WorkflowError) as info:
        parse_workflow(data, variables or None, limits)
    assert info.value.problems
    assert str(info.value) == "\n".join(str(p) for p in info.value.problems)
    return info.value.problems


def one(data: bytes, **variables: str) -> Problem:
    (problem,) = problems(data, DEFAULT, **variables)
    return problem


def line_of(data: bytes, marker: str) -> int:
    return data[: data.index(marker.encode())].count(b"\n") + 1


def test_problem_text() -> None:
    assert str(Problem("depends on unknown task 'Z'", "B", 12)) == (
        "line 12, task 'B': depends on unknown task 'Z'"
    )
    assert str(Problem("bad", None, 3)) == "line 3: bad"
    assert str(Problem("bad")) == "bad"
    assert str(WorkflowError("whole")) == "whole"


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"", "empty"),
        (b"   \n ", "empty"),
        (b"not xml at all", "not well-formed"),
        (b"<job name='j'><taskFlow>", "not well-formed"),
        (b"\xff\xfe\x00garbage", "not"),
        (b'<workflow name="x"/>', "<workflow>, expected <job>"),
    ],
)
def test_not_a_job_document(data: bytes, words: str) -> None:
    assert words in one(data).message


def test_syntax_error_has_a_line() -> None:
    problem = one(b'<job name="j">\n<taskFlow>\n<task name="a">\n</job>')
    assert problem.line == 4 and "not well-formed XML" in problem.message


def test_unsupported_namespace() -> None:
    data = (
        b'<job xmlns="urn:proactive:jobdescriptor:9.9" name="j"><taskFlow>'
        + bash("A").encode()
        + b"</taskFlow></job>"
    )
    assert "unsupported namespace" in one(data).message


def test_missing_and_empty_task_flow() -> None:
    assert "no <taskFlow>" in one(f'<job xmlns="{NS}" name="j"/>'.encode()).message
    assert "<taskFlow> has no tasks" in one(job_xml("")).message


def test_missing_job_name() -> None:
    assert "no name" in one(job_xml(bash("A"), attrs="")).message


def test_duplicate_task_names() -> None:
    data = job_xml(bash("A") + bash("A"))
    problem = one(data)
    assert problem.task == "A" and problem.line == 5 and "line 4" in problem.message


def test_unknown_dependency_names_task_and_line() -> None:
    data = job_xml(bash("A") + bash("B", inner="\n" + depends("Z")))
    line = line_of(data, 'ref="Z"')
    assert str(one(data)) == f"line {line}, task 'B': depends on unknown task 'Z'"


def test_cycle_is_spelled_out() -> None:
    data = job_xml(
        bash("A", inner=depends("C"))
        + bash("B", inner=depends("A"))
        + bash("C", inner=depends("B"))
    )
    problem = one(data)
    assert problem.message == "dependency cycle: A -> B -> C -> A"
    assert problem.task == "A" and problem.line == 4


def test_self_dependency_and_two_cycles() -> None:
    data = job_xml(
        bash("S", inner=depends("S"))
        + bash("X", inner=depends("Y"))
        + bash("Y", inner=depends("X"))
        + bash("ok", inner=depends("S"))
    )
    messages = sorted(p.message for p in problems(data))
    assert messages == ["dependency cycle: S -> S", "dependency cycle: X -> Y -> X"]


def test_no_executable_and_two_executables() -> None:
    data = job_xml(
        '<task name="none"><description>d</description></task>\n'
        '<task name="two"><nativeExecutable><staticCommand value="a"/></nativeExecutable>'
        '<nativeExecutable><staticCommand value="b"/></nativeExecutable></task>\n'
    )
    first, second = problems(data)
    assert first.task == "none" and "no executable" in first.message
    assert second.task == "two" and "2 executables" in second.message


@pytest.mark.parametrize(
    "language", ["groovy", "javascript", "cpython", "python", "ruby", "R", "powershell", "cmd"]
)
def test_unsupported_languages_are_named(language: str) -> None:
    problem = one(job_xml(bash("T", lang=language)))
    assert problem.task == "T" and f"'{language}'" in problem.message
    assert "not supported" in problem.message


def test_unsupported_language_in_pre_post_cleaning() -> None:
    inner = '<pre><script><code language="groovy">x</code></script></pre>'
    problem = one(job_xml(bash("T", inner=inner)))
    assert "<pre> script" in problem.message and "'groovy'" in problem.message


def test_missing_language() -> None:
    data = job_xml(
        '<task name="T"><scriptExecutable><script><code>true</code></script>'
        "</scriptExecutable></task>"
    )
    assert "(none given)" in one(data).message


def test_java_executable() -> None:
    data = job_xml('<task name="J">\n<javaExecutable class="org.Foo"/></task>\n')
    problem = one(data)
    assert (
        problem.task == "J"
        and problem.line == 5
        and "javaExecutable (class org.Foo)" in problem.message
    )


@pytest.mark.parametrize(
    ("attr", "kind"), [('url="http://x/s.sh"', "url"), ('path="/x/s.sh"', "file")]
)
def test_script_loaded_from_elsewhere(attr: str, kind: str) -> None:
    data = job_xml(
        f'<task name="F"><scriptExecutable><script><file {attr} language="bash"/></script>'
        "</scriptExecutable></task>"
    )
    problem = one(data)
    assert problem.task == "F" and f"loaded from a {kind}" in problem.message


@pytest.mark.parametrize("action", ["if", "replicate", "loop"])
def test_control_flow_actions(action: str) -> None:
    inner = (
        f'<controlFlow block="start"><{action} target="A"><script>'
        f'<code language="groovy">x</code></script></{action}></controlFlow>'
    )
    data = job_xml(
        '<task name="A"><scriptExecutable><script><code language="bash">true</code></script>'
        f"</scriptExecutable>\n{inner}</task>\n"
    )
    problem = one(data)
    assert problem.task == "A" and problem.line == 5 and f"<{action}>" in problem.message


def test_native_command_problems() -> None:
    data = job_xml(
        '<task name="a"><nativeExecutable><staticCommand value=""/></nativeExecutable></task>\n'
        '<task name="b"><nativeExecutable/></task>\n'
        '<task name="c"><nativeExecutable><dynamicCommand/></nativeExecutable></task>\n'
        '<task name="d"><nativeExecutable><staticCommand value="x"><arguments><argument/>'
        "</arguments></staticCommand></nativeExecutable></task>\n"
    )
    found = problems(data)
    assert [p.task for p in found] == ["a", "b", "c", "d"]
    assert "no value" in found[0].message and "no <staticCommand>" in found[1].message
    assert "dynamicCommand" in found[2].message and "without a value" in found[3].message


def test_shell_needs_an_interpreter_line() -> None:
    assert "#!" in one(job_xml(bash("S", lang="shell", code="ls"))).message


@pytest.mark.parametrize(
    ("attrs", "words"),
    [
        ('priority="urgent"', "priority must be one of"),
        ('onTaskError="explode"', "onTaskError must be one of"),
        ('maxNumberOfExecution="two"', "must be an integer"),
        ('maxNumberOfExecution="0"', "between 1"),
        ('taskRetryDelay="soon"', "duration"),
        ('restartTaskOnError="nowhere"', "restartTaskOnError"),
        ('cancelJobOnError="maybe"', "true or false"),
        ('tags=",a"', "empty tag"),
    ],
)
def test_bad_job_attributes(attrs: str, words: str) -> None:
    problem = one(job_xml(bash("A"), attrs=f'name="j" {attrs}'))
    assert words in problem.message and problem.task is None and problem.line == 2


@pytest.mark.parametrize(
    ("attrs", "words"),
    [
        ('onTaskError="cancel"', "onTaskError must be one of"),
        ('maxNumberOfExecution="-1"', "between 1"),
        ('maxNumberOfExecution="99999999999"', "between 1"),
        ('walltime="abc"', "duration"),
        ('walltime="1:99"', "below 60"),
        ('walltime="0"', "longer than 0"),
        ('taskRetryDelay="1:2:3:4"', "duration"),
        ('runAsMe="yes"', "true or false"),
        ('fork="often"', "true or false"),
        ('numberOfNodes="0"', "between 1"),
    ],
)
def test_bad_task_attributes(attrs: str, words: str) -> None:
    problem = one(job_xml(bash("T", attrs=attrs)))
    assert words in problem.message and problem.task == "T" and problem.line == 4


def test_bad_walltime_generic_information() -> None:
    head = '<genericInformation><info name="WALLTIME" value="forever"/></genericInformation>'
    assert "WALLTIME" in one(job_xml(bash("A"), head=head)).message


def test_variable_substituted_into_bad_number() -> None:
    head = '<variables><variable name="N" value="lots"/></variables>'
    problem = one(job_xml(bash("T", attrs='maxNumberOfExecution="${N}"'), head=head))
    assert "'lots'" in problem.message and problem.task == "T"


@pytest.mark.parametrize(
    ("model", "value"),
    [
        ("PA:INTEGER", "1.5"),
        ("PA:INTEGER", "99999999999"),
        ("PA:INTEGER[0,10]", "11"),
        ("PA:LONG", "x"),
        ("PA:FLOAT", "1,5"),
        ("PA:DOUBLE[0.5,1]", "0.1"),
        ("PA:BOOLEAN", "yes"),
        ("PA:LIST(a,b)", "c"),
        ("PA:REGEXP([a-z]+)", "ABC"),
        ("PA:NOT_EMPTY_STRING", "  "),
        ("PA:INTEGER[oops]", "1"),
        ("PA:REGEXP(()", "x"),
    ],
)
def test_variable_models(model: str, value: str) -> None:
    data = job_xml(
        bash("A"),
        head=f'<variables><variable name="V" value="{value}" model="{model}"/></variables>',
    )
    problem = one(data)
    assert problem.message.startswith(f"variable 'V' fails its model {model}")
    assert problem.line == 3


def test_task_variable_models_name_the_task() -> None:
    inner = '<variables><variable name="V" value="x" model="PA:INTEGER"/></variables>'
    problem = one(job_xml(bash("T", inner=inner)))
    assert problem.task == "T" and "'V'" in problem.message


def test_bad_task_names_and_variables() -> None:
    data = job_xml(
        bash("a/b")
        + '<task><nativeExecutable><staticCommand value="x"/></nativeExecutable></task>\n'
        + bash(
            "ok",
            inner='<variables><variable name="v" value="1"/>'
            '<variable name="v" value="2"/></variables>',
        )
    )
    found = problems(data)
    assert found[0].task == "a/b" and "'/'" in found[0].message
    assert "task #2 has no name" in found[1].message
    assert found[2].task == "ok" and "declared twice" in found[2].message


def test_bad_submitted_variables() -> None:
    assert "invalid name" in one(job_xml(bash("A")), **{"A=B": "x"}).message
    with pytest.raises(WorkflowError, match="string"):
        parse_workflow(job_xml(bash("A")), {"n": 1})  # type: ignore[dict-item]


def test_every_problem_in_one_pass() -> None:
    data = job_xml(
        bash("A", attrs='walltime="x"')
        + bash("B", inner=depends("nope"), lang="groovy")
        + '<task name="C"><javaExecutable class="C"/></task>\n'
        + bash("A"),
        attrs='name="j" priority="max"',
    )
    found = problems(data)
    assert [(p.task, p.line) for p in found] == [
        (None, 2),
        ("A", 4),
        ("B", 5),
        ("C", 6),
        ("A", 7),
        ("B", 5),
    ]
    assert "duplicate" in found[4].message and "unknown task 'nope'" in found[5].message


def test_problem_count_is_capped() -> None:
    data = job_xml("".join(bash(f"t{i}", attrs='walltime="x"') for i in range(10)))
    found = problems(data, Limits(max_problems=3))
    assert len(found) == 4 and found[-1].message == "... and 7 more problems"
