"""Property tests: random DAGs round-trip; random damage raises only WorkflowError."""

from __future__ import annotations

import copy
from pathlib import Path
from xml.sax.saxutils import quoteattr

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from simple_scheduler.workflow import (
    Executable,
    NativeCommand,
    Script,
    WorkflowError,
    parse_workflow,
)

NS = "urn:proactive:jobdescriptor:3.14"
CORPUS = Path(__file__).resolve().parents[2] / "shared" / "workflows" / "proactive"
PROPERTY = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Text XML 1.0 can carry unchanged: no control characters (attribute values would be
# normalised), no surrogates, no noncharacters.
xml_text = st.text(st.characters(blacklist_categories=("Cc", "Cs", "Cn")), max_size=20)
names = st.text(
    st.characters(whitelist_categories=("Lu", "Ll", "Nd"), whitelist_characters="_-."),
    min_size=1,
    max_size=12,
).filter(lambda n: n not in (".", ".."))
commands = xml_text.filter(lambda s: bool(s.strip()))
native = st.builds(lambda c, a: NativeCommand((c, *a)), commands, st.lists(xml_text, max_size=4))
bash_code = st.text(
    st.characters(blacklist_categories=("Cc", "Cs", "Cn"), whitelist_characters="\n"),
    max_size=60,
).filter(lambda c: "]]>" not in c)
scripts = st.builds(
    lambda code, lang: Script(lang, code), bash_code, st.sampled_from(["bash", "sh"])
)
executables: st.SearchStrategy[Executable] = st.one_of(native, scripts)


@st.composite
def dags(draw: st.DrawFn) -> tuple[list[str], list[list[int]], list[int], list[Executable]]:
    """(names, parents by task id, document order of ids, executables)."""
    n = draw(st.integers(1, 25))
    task_names = draw(st.lists(names, min_size=n, max_size=n, unique=True))
    parents = [
        draw(st.lists(st.integers(0, i - 1), max_size=4, unique=True)) if i else []
        for i in range(n)
    ]
    order = draw(st.permutations(range(n)))  # shuffled: depends may point forward
    return task_names, parents, list(order), [draw(executables) for _ in range(n)]


def executable_xml(executable: Executable) -> str:
    if isinstance(executable, NativeCommand):
        args = "".join(f"<argument value={quoteattr(a)}/>" for a in executable.argv[1:])
        return (
            f"<nativeExecutable><staticCommand value={quoteattr(executable.argv[0])}>"
            f"<arguments>{args}</arguments></staticCommand></nativeExecutable>"
        )
    return (
        f'<scriptExecutable><script><code language="{executable.language}">'
        f"<![CDATA[{executable.code}]]></code></script></scriptExecutable>"
    )


def dag_xml(
    task_names: list[str], parents: list[list[int]], order: list[int], exes: list[Executable]
) -> bytes:
    tasks = []
    for tid in order:
        refs = "".join(f"<task ref={quoteattr(task_names[p])}/>" for p in parents[tid])
        depends = f"<depends>{refs}</depends>" if refs else ""
        tasks.append(
            f"<task name={quoteattr(task_names[tid])}>{depends}{executable_xml(exes[tid])}</task>"
        )
    return f'<job xmlns="{NS}" name="random"><taskFlow>{"".join(tasks)}</taskFlow></job>'.encode()


@PROPERTY
@given(dags())
def test_random_dags_round_trip(
    dag: tuple[list[str], list[list[int]], list[int], list[Executable]],
) -> None:
    task_names, parents, order, exes = dag
    job = parse_workflow(dag_xml(task_names, parents, order, exes))
    position = {tid: k for k, tid in enumerate(order)}
    assert [t.name for t in job.tasks] == [task_names[tid] for tid in order]
    for k, task in enumerate(job.tasks):
        tid = order[k]
        assert task.index == k
        assert task.depends == tuple(position[p] for p in parents[tid])
        assert task.executable == exes[tid]
    seen: set[int] = set()
    for index in job.topological_order():
        assert set(job.tasks[index].depends) <= seen
        seen.add(index)
    assert len(seen) == len(job.tasks)


# -- random damage --------------------------------------------------------------------

BASE = [
    dag_xml(["A", "B", "C", "D"], [[], [0], [0], [1, 2]], [0, 1, 2, 3],
            [NativeCommand(("echo", "${X}")), Script("bash", "echo"), Script("sh", "x"),
             NativeCommand(("true",))]),
    f"""<job xmlns="{NS}" name="j" priority="high" tags="a,b" onTaskError="cancelJob">
  <variables><variable name="X" value="1" model="PA:INTEGER[0,9]"/>
  <variable name="Y" value="${{X}}$X" model="PA:LIST(11,2)"/></variables>
  <genericInformation><info name="WALLTIME" value="1:00"/></genericInformation>
  <taskFlow><task name="t" walltime="5" maxNumberOfExecution="${{X}}">
  <variables><variable name="Z" value="z" inherited="true"/></variables>
  <genericInformation><info name="NODE_ACCESS_TOKEN" value="$Y"/></genericInformation>
  <depends><task ref="u"/></depends><parallel numberOfNodes="2"/>
  <forkEnvironment workingDir="/tmp"><SystemEnvironment><variable name="E" value="$X"/>
  </SystemEnvironment></forkEnvironment>
  <pre><script><code language="bash">echo</code></script></pre>
  <scriptExecutable><script><code language="shell">#!/bin/sh
true</code></script></scriptExecutable><controlFlow block="none"/>
  <post><script><code language="sh">x</code></script></post></task>
  <task name="u"><nativeExecutable><staticCommand value="ls"><arguments>
  <argument value="-l"/></arguments></staticCommand></nativeExecutable></task>
  </taskFlow><metadata><visualization><![CDATA[<html/>]]></visualization></metadata></job>
""".encode(),
]  # fmt: skip
if CORPUS.is_dir():
    BASE += [p.read_bytes() for p in sorted(CORPUS.glob("*.xml"))]

TAGS = [
    "job", "taskFlow", "task", "depends", "variables", "variable", "genericInformation",
    "info", "scriptExecutable", "nativeExecutable", "javaExecutable", "staticCommand",
    "arguments", "argument", "script", "code", "file", "pre", "post", "cleaning",
    "controlFlow", "if", "loop", "replicate", "parallel", "forkEnvironment", "metadata",
]  # fmt: skip
ATTRIBUTES = [
    "name", "ref", "value", "language", "model", "inherited", "walltime", "taskRetryDelay",
    "maxNumberOfExecution", "onTaskError", "priority", "tags", "runAsMe", "numberOfNodes",
    "workingDir", "cancelJobOnError", "url", "block",
]  # fmt: skip
VALUES = st.one_of(
    xml_text,
    st.sampled_from(["", "0", "-1", "1:99", "${X}", "$", "${", "true", "none", "PA:INTEGER",
                     "PA:REGEXP(()", "PA:LIST(", "groovy", "bash", "shell", "A", "t", "u"]),
)  # fmt: skip


@st.composite
def damaged_bytes(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(BASE)))
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(data)))
        op = draw(st.sampled_from(["delete", "insert", "replace", "truncate"]))
        if op == "delete":
            del data[at : at + draw(st.integers(1, 20))]
        elif op == "insert":
            data[at:at] = draw(st.binary(max_size=12) | st.sampled_from([b"<", b">", b"&", b'"']))
        elif op == "replace" and at < len(data):
            data[at] = draw(st.integers(0, 255))
        else:
            del data[at:]
    return bytes(data)


@st.composite
def damaged_trees(draw: st.DrawFn) -> bytes:
    root = etree.fromstring(draw(st.sampled_from(BASE)))
    for _ in range(draw(st.integers(1, 4))):
        elements = [e for e in root.iter() if isinstance(e.tag, str)]
        element = draw(st.sampled_from(elements))
        op = draw(st.sampled_from(["remove", "attribute", "rename", "duplicate", "move", "text"]))
        parent = element.getparent()
        if op == "remove" and parent is not None:
            parent.remove(element)
        elif op == "attribute":
            element.set(draw(st.sampled_from(ATTRIBUTES)), draw(VALUES))
        elif op == "rename":
            element.tag = etree.QName(
                NS if draw(st.booleans()) else None, draw(st.sampled_from(TAGS))
            ).text
        elif op == "duplicate" and parent is not None:
            parent.append(copy.deepcopy(element))
        elif op == "move" and parent is not None:
            target = draw(st.sampled_from(elements))
            if element not in target.iterancestors() and target is not element:
                target.append(element)
        elif op == "text":
            element.text = draw(VALUES)
    return etree.tostring(root)


def only_workflow_errors(data: bytes, variables: dict[str, str] | None = None) -> None:
    try:
        parse_workflow(data, variables)
    except WorkflowError as err:
        assert err.problems and str(err)


@PROPERTY
@given(damaged_bytes())
def test_damaged_bytes_raise_only_workflow_error(data: bytes) -> None:
    only_workflow_errors(data)


@PROPERTY
@given(damaged_trees(), st.dictionaries(xml_text, xml_text, max_size=3))
def test_damaged_trees_raise_only_workflow_error(data: bytes, variables: dict[str, str]) -> None:
    only_workflow_errors(data, variables)
