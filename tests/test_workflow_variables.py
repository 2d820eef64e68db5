"""Variable substitution, system variables, models, and the dependency graph."""

from __future__ import annotations

import pytest

from simple_scheduler.workflow import (
    SYSTEM_VARIABLES,
    SubstitutionTooLarge,
    find_cycles,
    script_environment,
    substitute,
    system_variables,
    task_id,
    topological_order,
)
from simple_scheduler.workflow.variables import resolve
from simple_scheduler.workflow.varmodels import check_model


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("${A}", "a"),
        ("$A", "a"),
        ("x${A}y$A.z", "xay$A.z"),  # `$A.z` names the variable "A.z", which is unknown
        ("$A-$B", "$A-b"),  # "A-" is a name too (ProActive's NCName rule)
        ("${A}-${B}", "a-b"),
        ("${UNKNOWN} $UNKNOWN", "${UNKNOWN} $UNKNOWN"),
        ("$$ $ ${ } ${} $", "$$ $ ${ } ${} $"),
        ("${pa.home}/bin ${PA_HOME}", "/opt/pa/bin /opt/pa"),
        ("$variables_A", "$variables_A"),
        ("${NESTED}", "a/b"),
        ("${SELF}", "${SELF}"),
    ],
)
def test_substitute(text: str, expected: str) -> None:
    variables = {"A": "a", "B": "b", "pa.home": "/opt/pa", "NESTED": "${A}/$B", "SELF": "${SELF}"}
    assert substitute(text, variables) == expected


def test_substitute_leaves_loops_as_written() -> None:
    assert substitute("${P}", {"P": "<${Q}>", "Q": "[${P}]"}) == "<[${P}]>"


def test_substitution_budget() -> None:
    assert substitute("$A", {"A": "x" * 100}, max_length=100) == "x" * 100
    with pytest.raises(SubstitutionTooLarge):
        substitute("$A$A", {"A": "x" * 100}, max_length=150)
    chain = {f"v{i}": f"${{v{i + 1}}}${{v{i + 1}}}" for i in range(30)} | {"v30": ""}
    assert substitute("${v0}", chain) == ""  # memoised: no 2**30 work for an empty result


def test_resolve_keeps_order_and_uses_outer() -> None:
    assert list(resolve({"b": "$a", "a": "1"})) == ["b", "a"]
    assert resolve({"x": "${job}/x"}, {"job": "/j"}) == {"x": "/j/x"}


def test_system_variables() -> None:
    values = system_variables(12, "diamond", task_id(12, 3), "D", "alice", scheduler_home="/s")
    assert values == {
        "PA_JOB_ID": "12",
        "PA_JOB_NAME": "diamond",
        "PA_TASK_ID": "12t3",
        "PA_TASK_NAME": "D",
        "PA_TASK_ITERATION": "0",
        "PA_TASK_REPLICATION": "0",
        "PA_USER": "alice",
        "PA_NODESNUMBER": "1",
        "PA_SCHEDULER_HOME": "/s",
    }
    assert set(values) <= set(SYSTEM_VARIABLES)
    assert substitute("out-${PA_JOB_ID}-$PA_TASK_NAME", values) == "out-12-D"


def test_script_environment() -> None:
    env = script_environment({"X": "1"}, {"k": "v"})
    assert env == {"variables_X": "1", "genericInformation_k": "v"}


@pytest.mark.parametrize(
    ("model", "good", "bad"),
    [
        ("PA:INTEGER", ["0", "-7", "+3", "2147483647"], ["1.0", "", "2147483648", "1_0", "٣"]),
        ("PA:Integer[1,10]", ["1", "10"], ["0", "11"]),
        ("PA:INTEGER[5,]", ["5", "99999"], ["4"]),
        ("PA:LONG", ["9223372036854775807"], ["9223372036854775808", "x"]),
        ("PA:FLOAT", ["1", "1.5", ".5", "1e3", "2.5f"], ["1,5", "nan", "inf", ""]),
        ("PA:DOUBLE[-1,1]", ["-1", "0.5", "1"], ["1.01"]),
        ("PA:BOOLEAN", ["true", "False"], ["yes", "1"]),
        ("PA:LIST(a, b ,c)", ["a", "b", "c"], ["d", ""]),
        ("PA:REGEXP(^[a-z]+\\d?$)", ["abc", "ab1"], ["ABC", "a12"]),
        ("PA:NOT_EMPTY_STRING", ["x"], ["", "  "]),
        ("PA:URL", ["anything"], []),
        ("PA:CREDENTIAL", ["anything"], []),
        ("free text", ["anything"], []),
    ],
)
def test_models(model: str, good: list[str], bad: list[str]) -> None:
    for value in good:
        assert check_model(model, value) is None, value
    for value in bad:
        assert check_model(model, value) is not None, value


def test_catastrophic_regexp_is_not_evaluated() -> None:
    assert check_model("PA:REGEXP((a+)+$)", "a" * 64 + "!") is None
    assert check_model("PA:REGEXP((a|aa)*$)", "a" * 64 + "!") is None
    assert check_model("PA:REGEXP((a+)(a+)(a+)(a+)$)", "a" * 200 + "!") is None  # unchecked
    assert check_model("PA:REGEXP([a-z]+)", "a" * 3000 + "!") is not None  # cheap: checked


def test_topological_order_and_cycles() -> None:
    assert topological_order([[], [0], [0], [1, 2]]) == [0, 1, 2, 3]
    assert topological_order([[1], []]) == [1, 0]
    with pytest.raises(ValueError):
        topological_order([[1], [0]])
    (cycle,) = find_cycles([[2], [0], [1], [2]])
    assert cycle == [0, 1, 2, 0]


def test_graph_of_100000_tasks_needs_no_recursion() -> None:
    n = 100_000
    chain = [[i - 1] if i else [] for i in range(n)]
    assert topological_order(chain) == list(range(n))
    looped = [[n - 1], *chain[1:]]
    (cycle,) = find_cycles(looped)
    assert len(cycle) == n + 1 and cycle[0] == cycle[-1] == 0
