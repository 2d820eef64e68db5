"""Scheduler throughput: store + scheduler + hypervisor, no HTTP, against a Popen baseline.

Runs, with W workers: one job of N independent `/bin/true` tasks (N = 1,000 and 10,000),
a chain of 200 dependent tasks (per-edge latency: one task's end to the next one's start,
from the monitors' own timestamps), and a fan-out/fan-in of 10,000. In the same run, the
executor benchmark's Popen baseline (same N, same W, output to files), interleaved with
the N = 1,000 job over --rounds rounds; the ratio compares medians.

usage: python benchmarks/scheduler_throughput.py [--workers 10] [--small] [--database-url URL]
The store is a SQLite file in the run's folder unless --database-url names another
(e.g. an empty PostgreSQL database: postgresql://user@/bench?host=/run/postgresql).
Last line: one JSON object (see the issue).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from executor_throughput import baseline as popen_baseline

from simple_scheduler.execution.launcher import HypervisorArgs
from simple_scheduler.execution.taskdir import read_status
from simple_scheduler.scheduler import Scheduler
from simple_scheduler.server import local_scheduler
from simple_scheduler.store.db import Store
from simple_scheduler.store.dbengine import engine_of
from simple_scheduler.store.migrate import migrate
from simple_scheduler.workflow import parse_workflow

NS = "urn:proactive:jobdescriptor:3.14"


def native(name: str, depends: list[str] = ()) -> str:  # type: ignore[assignment]
    deps = ""
    if depends:
        deps = "<depends>" + "".join(f'<task ref="{d}"/>' for d in depends) + "</depends>"
    return (
        f'<task name="{name}">{deps}<nativeExecutable>'
        '<staticCommand value="/bin/true"/></nativeExecutable></task>'
    )


def workflow(tasks: list[str]) -> bytes:
    return (f'<job xmlns="{NS}" name="bench"><taskFlow>{"".join(tasks)}</taskFlow></job>').encode()


def independent(n: int) -> bytes:
    return workflow([native(f"t{i}") for i in range(n)])


def chain(n: int) -> bytes:
    return workflow([native(f"t{i}", [f"t{i - 1}"] if i else []) for i in range(n)])


def fan(n: int) -> bytes:
    middle = [native(f"m{i}", ["root"]) for i in range(n - 2)]
    names = [f"m{i}" for i in range(n - 2)]
    return workflow([native("root"), *middle, native("join", names)])


def start_hypervisor(root: Path) -> tuple[subprocess.Popen[bytes], str, Path]:
    sock = str(root / "hv.sock")
    pdir = root / "tasks"
    pdir.mkdir()
    proc = subprocess.Popen(
        HypervisorArgs(sock, str(pdir)).command(),
        cwd=root,
        start_new_session=True,
    )
    for _ in range(1000):
        try:
            with socket.socket(socket.AF_UNIX) as s:
                s.connect(sock)
            break
        except OSError:
            time.sleep(0.01)
    return proc, sock, pdir


async def run_job(s: Scheduler, xml: bytes) -> tuple[int, float]:
    job = parse_workflow(xml)
    started = time.perf_counter()
    job_id = await s.submit(job, "bench", "")
    status = await s.wait_job(job_id, timeout=3600)
    elapsed = time.perf_counter() - started
    assert status == "FINISHED", status
    return job_id, elapsed


def chain_latency_ms(pdir: Path, job_id: int, n: int) -> float:
    times = []
    for i in range(n):
        status = read_status(str(pdir / str(job_id) / str(i) / "1"))
        assert status is not None
        times.append((status.start_time, status.end_time))
    gaps = [times[i + 1][0] - times[i][1] for i in range(n - 1)]
    return 1000 * sum(gaps) / len(gaps)


async def measure(args: argparse.Namespace, root: Path, sock: str, pdir: Path) -> dict[str, float]:
    store = await Store.open(args.database_url or f"sqlite+aiosqlite:///{root / 'db.sqlite'}")
    await migrate(store)

    s = local_scheduler(
        store,
        sock,
        process_directory=pdir,
        nb_of_workers=args.workers,
        kill_grace=1.0,
        base_env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
    )
    await s.start()
    small, large = (200, 2000) if args.small else (1000, 10000)
    try:
        await run_job(s, independent(100))  # warm-up: first connections, first directories
        smalls, baselines = [], []
        for round_ in range(args.rounds):
            # Interleaved with the baseline: this machine's load drifts between runs.
            baselines.append(
                small / popen_baseline(str(root / "popen" / str(round_)), small, args.workers)
            )
            _, t = await run_job(s, independent(small))
            smalls.append(small / t)
            print(
                f"round {round_}: independent {small}: {smalls[-1]:.0f} tasks/s,"
                f" Popen {baselines[-1]:.0f} tasks/s",
                flush=True,
            )
        t_small = small / statistics.median(smalls)
        _, t_large = await run_job(s, independent(large))
        print(f"independent {large}: {large / t_large:.0f} tasks/s", flush=True)
        chain_id, t_chain = await run_job(s, chain(200))
        per_edge = chain_latency_ms(pdir, chain_id, 200)
        print(f"chain 200: {per_edge:.2f} ms per edge ({t_chain:.2f} s in all)", flush=True)
        _, t_fan = await run_job(s, fan(large))
        print(f"fan-out/fan-in {large}: {large / t_fan:.0f} tasks/s", flush=True)
    finally:
        await s.stop()
        await store.close()
    return {
        "baseline": statistics.median(baselines),
        "small": small / t_small,
        "large": large / t_large,
        "per_edge": per_edge,
        "ratio_per_task": (t_large / large) / (t_small / small),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workers", type=int, default=10)
    parser.add_argument("--small", action="store_true", help="quick run: 200 / 2,000 tasks")
    parser.add_argument("--dir", default="/tmp", help="where task directories go")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved baseline rounds")
    parser.add_argument(
        "--database-url", default=None, help="the store (default: a SQLite file in the run folder)"
    )
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="ss-bench-", dir=args.dir))
    proc, sock, pdir = start_hypervisor(root)
    try:
        result = asyncio.run(measure(args, root, sock, pdir))
        baseline = result["baseline"]
    finally:
        proc.kill()
        proc.wait()
        shutil.rmtree(root, ignore_errors=True)
    print(
        json.dumps(
            {
                "benchmark": "scheduler_throughput",
                "database": engine_of(args.database_url) if args.database_url else "sqlite",
                "tasks_per_s_1000": round(result["small"], 1),
                "tasks_per_s_10000": round(result["large"], 1),
                "baseline_tasks_per_s": round(baseline, 1),
                "ratio_vs_baseline": round(result["small"] / baseline, 3),
                "chain_ms_per_edge": round(result["per_edge"], 3),
                "ratio_10000_vs_1000_per_task": round(result["ratio_per_task"], 3),
            }
        )
    )


if __name__ == "__main__":
    main()
