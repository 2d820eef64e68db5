"""Hostile input is refused quickly, with a clear error, and reads nothing else."""

from __future__ import annotations

import io
import itertools
import time
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress

import pytest

from simple_scheduler.workflow import (
    Limits,
    WorkflowError,
    WorkflowTooLarge,
    parse_workflow,
)

NS = "urn:proactive:jobdescriptor:3.14"
TASK = (
    '<task name="A"><scriptExecutable><script><code language="bash">true</code></script>'
    "</scriptExecutable></task>"
)
VALID = f'<job xmlns="{NS}" name="j"><taskFlow>{TASK}</taskFlow></job>'.encode()


@contextmanager
def within(seconds: float) -> Iterator[None]:
    start = time.perf_counter()
    yield
    assert time.perf_counter() - start < seconds


DEFAULT = Limits()


def refused(data: bytes, limits: Limits = DEFAULT) -> WorkflowError:
    with within(1.0), pytest.raises(WorkflowError) as info:
        parse_workflow(data, limits=limits)
    return info.value


def billion_laughs() -> bytes:
    entities = ['<!ENTITY lol0 "lol">'] + [
        f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">' for i in range(1, 10)
    ]
    return (
        '<?xml version="1.0"?>\n<!DOCTYPE job [\n' + "\n".join(entities) + "\n]>\n"
        f'<job xmlns="{NS}" name="&lol9;"><taskFlow>{TASK}</taskFlow></job>'
    ).encode()


def test_billion_laughs() -> None:
    assert "DOCTYPE" in str(refused(billion_laughs()))


def test_xxe_reading_etc_passwd() -> None:
    data = (
        '<?xml version="1.0"?>\n<!DOCTYPE job [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>\n'
        f'<job xmlns="{NS}" name="&xxe;"><taskFlow>{TASK}</taskFlow></job>'
    ).encode()
    err = refused(data)
    assert "DOCTYPE" in str(err) and "root:" not in str(err)


def test_external_dtd_and_parameter_entities() -> None:
    data = (
        b'<?xml version="1.0"?>\n<!-- c -->\n<!DOCTYPE job SYSTEM "http://127.0.0.1:9/x.dtd">\n'
        + VALID
    )
    assert "DOCTYPE" in str(refused(data))
    data = b'<!DOCTYPE job [<!ENTITY % p SYSTEM "file:///etc/passwd"> %p;]>' + VALID
    assert "DOCTYPE" in str(refused(data))


def test_doctype_in_utf16() -> None:
    text = '<?xml version="1.0" encoding="UTF-16"?>\n<!DOCTYPE job [<!ENTITY a "b">]>\n'
    assert "DOCTYPE" in str(refused(text.encode("utf-16") + VALID.decode().encode("utf-16")[2:]))


def test_undeclared_entity_is_a_syntax_error() -> None:
    data = VALID.replace(b'name="j"', b'name="&xxe;"')
    assert "entities are not allowed" in str(refused(data))


def test_doctype_text_inside_cdata_is_harmless() -> None:
    code = "<![CDATA[cat <<EOF\n<!DOCTYPE html>\nEOF]]>"
    job = parse_workflow(VALID.replace(b">true<", f">{code}<".encode()))
    assert "<!DOCTYPE html>" in job.tasks[0].executable.code  # type: ignore[union-attr]


def test_xinclude_is_not_processed() -> None:
    meta = (
        '<metadata><xi:include xmlns:xi="http://www.w3.org/2001/XInclude" '
        'href="/etc/passwd" parse="text"/></metadata>'
    )
    job = parse_workflow(VALID.replace(b"</taskFlow>", f"</taskFlow>{meta}".encode()))
    assert "root:" not in repr(job)


def test_fifty_megabytes_is_refused_before_parsing() -> None:
    data = VALID + b" " * (50 * 1024 * 1024)
    with within(0.5), pytest.raises(WorkflowTooLarge, match="over the limit"):
        parse_workflow(data)


def test_size_limit_is_configurable() -> None:
    with pytest.raises(WorkflowTooLarge):
        parse_workflow(VALID, limits=Limits(max_bytes=len(VALID) - 1))
    assert parse_workflow(VALID, limits=Limits(max_bytes=len(VALID))).name == "j"


def test_very_deep_nesting() -> None:
    data = VALID.replace(b"</taskFlow>", b"</taskFlow>" + b"<a>" * 100_000 + b"</a>" * 100_000)
    assert "nest deeper" in str(refused(data))


def test_depth_limit_outside_and_inside_tasks() -> None:
    deep = "<metadata>" + "<x>" * 40 + "</x>" * 40 + "</metadata>"
    err = refused(VALID.replace(b"</taskFlow>", f"</taskFlow>{deep}".encode()))
    assert isinstance(err, WorkflowTooLarge) and "limit of 32" in str(err)
    inner = TASK.replace("</task>", deep + "</task>")
    tasks = [TASK.replace('"A"', f'"t{i}"') for i in range(300)]
    tasks[3] = inner.replace('"A"', '"t3"')  # freed with the first batch of tasks
    data = f'<job xmlns="{NS}" name="j"><taskFlow>{"".join(tasks)}</taskFlow></job>'.encode()
    assert "nest deeper" in str(refused(data))
    assert parse_workflow(data, limits=Limits(max_depth=60)).tasks


def test_long_attribute() -> None:
    data = VALID.replace(b'name="j"', b'name="j" projectName="' + b"p" * 200_000 + b'"')
    err = refused(data)
    assert isinstance(err, WorkflowTooLarge) and "projectName" in str(err)
    data = VALID.replace(b'name="A"', b'name="A" fork="' + b"t" * 200_000 + b'"')
    assert "'fork'" in str(refused(data))


def test_task_count_limit() -> None:
    tasks = "".join(TASK.replace('"A"', f'"t{i}"') for i in range(11))
    data = f'<job xmlns="{NS}" name="j"><taskFlow>{tasks}</taskFlow></job>'.encode()
    err = refused(data, Limits(max_tasks=10))
    assert isinstance(err, WorkflowTooLarge) and "more than 10 tasks" in str(err)


def test_variable_expansion_bomb() -> None:
    names = [f"v{i}" for i in range(40)]
    decls = (
        "".join(
            f'<variable name="{a}" value="${{{b}}}${{{b}}}"/>' for a, b in itertools.pairwise(names)
        )
        + '<variable name="v39" value="xxxxxxxx"/>'
    )
    data = VALID.replace(b"<taskFlow>", f"<variables>{decls}</variables><taskFlow>".encode())
    assert "longer than" in str(refused(data))


def test_catastrophic_regexp_model_does_not_hang() -> None:
    decl = '<variable name="V" value="' + "a" * 40 + '!" model="PA:REGEXP((a+)+$)"/>'
    data = VALID.replace(b"<taskFlow>", f"<variables>{decl}</variables><taskFlow>".encode())
    with within(1.0):
        parse_workflow(data)


# -- zip uploads ---------------------------------------------------------------------


def zipped(members: dict[str, bytes], method: int = zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", method) as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def test_zip_with_one_xml() -> None:
    assert parse_workflow(zipped({"job.xml": VALID})).name == "j"
    assert parse_workflow(zipped({"whatever": VALID}, zipfile.ZIP_STORED)).name == "j"


@pytest.mark.parametrize(
    ("members", "words"),
    [
        ({}, "exactly one"),
        ({"a.xml": VALID, "b.xml": VALID}, "exactly one"),
        ({"inner.zip": zipped({"job.xml": VALID})}, "another zip"),
        ({"job.xml": b"not xml"}, "not well-formed"),
    ],
)
def test_bad_zip_contents(members: dict[str, bytes], words: str) -> None:
    assert words in str(refused(zipped(members)))


def test_zip_member_count() -> None:
    members = {f"d{i}/": b"" for i in range(20)} | {"job.xml": VALID}
    err = refused(zipped(members))
    assert isinstance(err, WorkflowTooLarge) and "entries" in str(err)


def test_zip_bomb_by_declared_size() -> None:
    bomb = zipped({"job.xml": VALID + b" " * (20 * 1024 * 1024)})
    assert len(bomb) < 100_000
    err = refused(bomb)
    assert isinstance(err, WorkflowTooLarge)


def test_zip_bomb_by_ratio() -> None:
    bomb = zipped({"job.xml": VALID + b" " * (5 * 1024 * 1024)})
    err = refused(bomb, Limits(max_bytes=64 * 1024 * 1024, max_zip_total_bytes=64 * 1024 * 1024))
    assert isinstance(err, WorkflowTooLarge) and "zip bomb" in str(err)


def test_zip_lying_about_its_size() -> None:
    data = bytearray(zipped({"job.xml": VALID + b" " * 5000}))
    # Shrink the declared uncompressed size in both headers: reading must not trust it.
    real = (len(VALID) + 5000).to_bytes(4, "little")
    data = bytearray(bytes(data).replace(real, (100).to_bytes(4, "little")))
    err = refused(bytes(data))
    assert "zip" in str(err)


def test_corrupt_zip() -> None:
    assert "zip" in str(refused(b"PK\x03\x04" + b"\x00" * 200))
    truncated = zipped({"job.xml": VALID * 50})[:-30]
    assert "zip" in str(refused(truncated))


@pytest.mark.parametrize(
    ("model", "value"),
    [
        ("PA:FLOAT", "1" * 120_000 + "x"),
        ("PA:INTEGER", "1" * 120_000 + "x"),
        ("PA:DOUBLE[" + " " * 120_000 + "]", "1"),
        ("PA:REGEXP(" + "+" * 120_000 + ")", "a"),
        ("PA:REGEXP(" + "(a+)" * 200 + ")", "a" * 120_000 + "!"),
        ("PA:REGEXP(" + "(a+)" * 3 + "$)", "a" * 1_000 + "!"),
        ("PA:REGEXP(a*a*$)", "a" * 2_000 + "!"),
        ("PA:LIST(" + "," * 120_000 + ")", "a"),
    ],
)
def test_long_model_inputs_stay_linear(model: str, value: str) -> None:
    decl = f'<variable name="V" value="{value}" model="{model}"/>'
    data = VALID.replace(b"<taskFlow>", f"<variables>{decl}</variables><taskFlow>".encode())
    with within(1.0), suppress(WorkflowError):
        parse_workflow(data)


@pytest.mark.parametrize("attr", ['walltime="1', 'maxNumberOfExecution="9', 'taskRetryDelay="1:'])
def test_long_numbers_stay_linear(attr: str) -> None:
    data = VALID.replace(b'name="A"', f'name="A" {attr}{"1" * 120_000}x"'.encode())
    refused(data)


def test_long_prolog_before_doctype() -> None:
    assert "DOCTYPE" in str(refused(b" \n" * 4_000_000 + b"<!DOCTYPE job>" + VALID))


def test_total_substitution_is_bounded() -> None:
    big = '<variable name="BIG" value="' + "x" * 100_000 + '"/>'
    infos = "".join(f'<info name="i{i}" value="${{BIG}}"/>' for i in range(1_000))
    head = f"<variables>{big}</variables><genericInformation>{infos}</genericInformation>"
    data = VALID.replace(b"<taskFlow>", f"{head}<taskFlow>".encode())
    err = refused(data)
    assert isinstance(err, WorkflowTooLarge) and "whole workflow" in str(err)
    roomy = Limits(max_substituted_bytes=200 * 1024 * 1024)
    assert len(parse_workflow(data, limits=roomy).generic_information) == 1_000


def test_same_command_line_is_checked_once_per_scope() -> None:
    big = '<variable name="BIG" value="' + "x" * 100_000 + '"/>'
    task = (
        '<task name="t{i}"><nativeExecutable><staticCommand value="echo"><arguments>'
        '<argument value="${{BIG}}"/></arguments></staticCommand></nativeExecutable></task>'
    )
    tasks = "".join(task.format(i=i) for i in range(2_000))  # 2,000 x 100 KB if unshared
    data = (
        f'<job xmlns="{NS}" name="j"><variables>{big}</variables><taskFlow>{tasks}</taskFlow></job>'
    )
    with within(1.0):
        assert len(parse_workflow(data.encode()).tasks) == 2_000
