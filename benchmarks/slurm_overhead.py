"""Slurm overhead: our Slurm backend vs plain `sbatch`, in the same run.

Both sides run the same work on the same live cluster, alternately: N independent
`true` tasks (our scheduler with `nb_of_workers = 0`, so Slurm does the queuing; versus
an `sbatch --wrap true` loop waited for with `squeue`), and a chain of M tasks (our
`depends`; versus `sbatch --dependency=afterok:<previous>`). Slurm starts jobs on its
scheduling tick (about once a second here), which dominates both sides: the targets say
our layer adds nothing measurable on top (ratio >= 0.9, edge_ratio <= 1.0).

Where an edge's time goes (medians over the chain's edges, from the files each side
leaves): ours = `react` (the parent's status written -> the child's script written, i.e.
noticing the end, committing, dispatching) + `launch` (script written -> the child's
start mark: sbatch, Slurm's queue and tick, slurmd's launch); sbatch = `gap` (a parent's
end -> its child's start, all Slurm's: dependency release, tick, launch).

Needs a live Slurm (`.ci/slurm-up.sh`). Last line, one JSON object:
{"benchmark": "slurm_overhead", "ours_tasks_per_s", "sbatch_tasks_per_s", "ratio",
 "ours_s_per_edge", "sbatch_s_per_edge", "edge_ratio", "ours_react_s", "ours_launch_s",
 "sbatch_gap_s"}.

    .venv/bin/python benchmarks/slurm_overhead.py [--tasks 500] [--chain 50] [--small]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from scheduler_throughput import chain, independent

from simple_scheduler.execution.slurm import SCRIPT, STARTED, SlurmBackend, SlurmSettings
from simple_scheduler.execution.taskdir import LocalTaskFiles, read_status
from simple_scheduler.scheduler import Scheduler
from simple_scheduler.store.db import Store
from simple_scheduler.store.migrate import migrate
from simple_scheduler.workflow import parse_workflow


def sbatch(*args: str) -> str:
    out = subprocess.run(["sbatch", "--parsable", *args], capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"sbatch failed: {out.stderr.strip()}")
    return out.stdout.strip().split(";", 1)[0]


def wait_gone(ids: set[str], poll: float = 0.2) -> None:
    """Until none of `ids` is pending or running (one squeue call per poll)."""
    while ids:
        out = subprocess.run(
            ["squeue", "--me", "-h", "-o", "%i"], capture_output=True, text=True, check=True
        ).stdout.split()
        ids &= set(out)
        if ids:
            time.sleep(poll)


def sbatch_independent(root: Path, n: int) -> float:
    out = root / f"plain-{time.monotonic_ns()}"
    out.mkdir()
    started = time.perf_counter()
    ids = {sbatch(f"--output={out}/%j.out", "--wrap", "true") for _ in range(n)}
    wait_gone(ids)
    return time.perf_counter() - started


#: The plain chain's job prints its start and end (epoch seconds), for the edge's gap.
STAMPED = "date +%s.%N; date +%s.%N"


def sbatch_chain(root: Path, n: int) -> tuple[float, float]:
    """The chain's time, and the median gap from a job's end to its child's start."""
    out = root / f"chain-{time.monotonic_ns()}"
    out.mkdir()
    started = time.perf_counter()
    previous = sbatch(f"--output={out}/%j.out", "--wrap", STAMPED)
    ids = [previous]
    for _ in range(n - 1):
        previous = sbatch(
            f"--output={out}/%j.out", f"--dependency=afterok:{previous}", "--wrap", STAMPED
        )
        ids.append(previous)
    wait_gone(set(ids))
    elapsed = time.perf_counter() - started
    stamps = [[float(x) for x in (out / f"{i}.out").read_text().split()] for i in ids]
    gap = statistics.median(stamps[i + 1][0] - stamps[i][1] for i in range(n - 1))
    return elapsed, gap


def our_edges(pdir: Path, n: int) -> tuple[float, float]:
    """Medians of `react` and `launch` over our chain's edges (job 1, tasks 0..n-1)."""
    react, launch = [], []
    for i in range(1, n):
        parent = read_status(str(pdir / "1" / str(i - 1) / "1"))
        child = pdir / "1" / str(i) / "1"
        assert parent is not None
        written = (child / SCRIPT).stat().st_mtime
        react.append(written - parent.end_time)
        launch.append(float((child / STARTED).read_text()) - written)
    return statistics.median(react), statistics.median(launch)


async def ours(root: Path, xml: bytes, poll: float) -> float:
    root.mkdir(parents=True)
    store = await Store.open(f"sqlite+aiosqlite:///{root / 'db.sqlite'}")
    await migrate(store)
    pdir = str(root / "tasks")
    settings = SlurmSettings(poll_interval_s=poll)

    async def connect() -> SlurmBackend:
        return await SlurmBackend.connect(pdir, settings)

    s = Scheduler(
        store,
        connect,
        files=LocalTaskFiles(pdir),
        nb_of_workers=0,
        base_env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
    )
    await s.start()
    try:
        started = time.perf_counter()
        job_id = await s.submit(parse_workflow(xml), "bench", "")
        status = await s.wait_job(job_id, timeout=7200)
        assert status == "FINISHED", status
        return time.perf_counter() - started
    finally:
        await s.stop()
        await store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tasks", type=int, default=500)
    parser.add_argument("--chain", type=int, default=50)
    parser.add_argument("--small", action="store_true", help="quick run: 100 tasks, chain 10")
    parser.add_argument("--poll", type=float, default=0.2, help="our squeue interval (s)")
    args = parser.parse_args()
    if args.small:
        args.tasks, args.chain = 100, 10
    root = Path(tempfile.mkdtemp(prefix="ss-slurm-bench-", dir="/tmp"))
    try:
        t_plain = sbatch_independent(root, args.tasks)
        print(f"sbatch: {args.tasks} tasks in {t_plain:.1f} s", flush=True)
        t_ours = asyncio.run(ours(root / "ours-1", independent(args.tasks), args.poll))
        print(f"ours:   {args.tasks} tasks in {t_ours:.1f} s", flush=True)
        c_plain, gap = sbatch_chain(root, args.chain)
        print(f"sbatch: chain of {args.chain} in {c_plain:.1f} s (gap {gap:.3f} s)", flush=True)
        c_ours = asyncio.run(ours(root / "ours-2", chain(args.chain), args.poll))
        react, launch = our_edges(root / "ours-2" / "tasks", args.chain)
        print(
            f"ours:   chain of {args.chain} in {c_ours:.1f} s "
            f"(react {react:.3f} s + launch {launch:.3f} s)",
            flush=True,
        )
    finally:
        shutil.rmtree(root, ignore_errors=True)
    edges = max(1, args.chain - 1)
    print(
        json.dumps(
            {
                "benchmark": "slurm_overhead",
                "ours_tasks_per_s": round(args.tasks / t_ours, 2),
                "sbatch_tasks_per_s": round(args.tasks / t_plain, 2),
                "ratio": round(t_plain / t_ours, 3),
                "ours_s_per_edge": round(c_ours / edges, 3),
                "sbatch_s_per_edge": round(c_plain / edges, 3),
                "edge_ratio": round(c_ours / c_plain, 3),
                "ours_react_s": round(react, 3),
                "ours_launch_s": round(launch, 3),
                "sbatch_gap_s": round(gap, 3),
            }
        )
    )


if __name__ == "__main__":
    main()
