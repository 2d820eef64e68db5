"""Benchmark: parse + validate generated workflows of 1,000 / 10,000 / 100,000 tasks.

Shapes: a chain, a wide fan-out/fan-in (one source, N-2 parallel tasks, one sink) and a
random DAG (each task depends on up to 3 earlier ones). Prints the time per task for
each; the last line is one JSON object with the worst shape for each figure:

    {"benchmark": "parse_workflow", "seconds_10000": s, "per_task_us_1000": a,
     "per_task_us_100000": b, "ratio_100000_vs_1000": b/a}

Run: .venv/bin/python benchmarks/parse_workflow.py [--quick]
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import sys
import time
from collections.abc import Callable
from xml.sax.saxutils import quoteattr

from simple_scheduler.workflow import Limits, parse_workflow

NAMESPACE = "urn:proactive:jobdescriptor:3.14"
#: Generated 100,000-task documents are ~25 MB: lift the size limit, keep the others.
LIMITS = Limits(max_bytes=512 * 1024 * 1024)


def chain(n: int) -> list[list[int]]:
    return [[i - 1] if i else [] for i in range(n)]


def fan(n: int) -> list[list[int]]:
    middle = list(range(1, n - 1))
    return [[]] + [[0] for _ in middle] + [middle]


def random_dag(n: int, seed: int = 42) -> list[list[int]]:
    rng = random.Random(seed)
    return [sorted(set(rng.sample(range(i), min(i, rng.randint(0, 3))))) for i in range(n)]


SHAPES: dict[str, Callable[[int], list[list[int]]]] = {
    "chain": chain,
    "fan": fan,
    "random": random_dag,
}


def workflow_xml(parents: list[list[int]]) -> bytes:
    """A realistic document: variables, a native task every other task, bash otherwise."""
    out = [
        f'<?xml version="1.0" encoding="UTF-8"?>\n<job xmlns="{NAMESPACE}" name="bench" '
        'priority="normal" onTaskError="continueJobExecution" maxNumberOfExecution="2">\n'
        '  <variables><variable name="GREETING" value="hello" model="PA:NOT_EMPTY_STRING"/>'
        "</variables>\n  <taskFlow>\n"
    ]
    for i, ps in enumerate(parents):
        out.append(f'    <task name="t{i}" maxNumberOfExecution="2" fork="true">\n')
        if ps:
            refs = "".join(f'<task ref="t{p}"/>' for p in ps)
            out.append(f"      <depends>{refs}</depends>\n")
        if i % 2:
            out.append(
                '      <nativeExecutable><staticCommand value="echo"><arguments>'
                f'<argument value="${{GREETING}}"/><argument value={quoteattr(str(i))}/>'
                "</arguments></staticCommand></nativeExecutable>\n"
            )
        else:
            out.append(
                '      <scriptExecutable><script><code language="bash"><![CDATA[\n'
                f'echo "$variables_GREETING {i}"\n]]></code></script></scriptExecutable>\n'
            )
        out.append("    </task>\n")
    out.append("  </taskFlow>\n</job>\n")
    return "".join(out).encode()


def best_of(data: bytes, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        gc.collect()  # start each run from the same heap, not the last run's garbage
        start = time.perf_counter()
        job = parse_workflow(data, limits=LIMITS)
        job.topological_order()
        best = min(best, time.perf_counter() - start)
        del job  # freeing the previous job must not count against the next run
    return best


def main() -> None:
    args = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    args.add_argument("--quick", action="store_true", help="1 run per size (CI smoke test)")
    quick = args.parse_args().quick
    sizes = {1_000: 1 if quick else 30, 10_000: 1 if quick else 10, 100_000: 1 if quick else 3}
    seconds: dict[tuple[str, int], float] = {}
    for size, repeats in sizes.items():
        for shape, make in SHAPES.items():
            data = workflow_xml(make(size))
            elapsed = best_of(data, repeats)
            seconds[shape, size] = elapsed
            print(
                f"{shape:>6} {size:>7} tasks {len(data) / 1e6:6.1f} MB  {elapsed:8.4f} s  "
                f"{elapsed / size * 1e6:6.2f} us/task",
                flush=True,
            )

    def worst(size: int) -> float:
        return max(seconds[shape, size] for shape in SHAPES)

    per_1k = worst(1_000) / 1_000 * 1e6
    per_100k = worst(100_000) / 100_000 * 1e6
    result = {
        "benchmark": "parse_workflow",
        "seconds_10000": round(worst(10_000), 4),
        "per_task_us_1000": round(per_1k, 3),
        "per_task_us_100000": round(per_100k, 3),
        "ratio_100000_vs_1000": round(per_100k / per_1k, 3),
    }
    sys.stdout.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
