"""Executor throughput: N `/bin/true` tasks through the hypervisor vs a Popen loop.

Both sides keep W tasks in flight and give each task its own directory with stdout and
stderr files. Then the monitor's private memory: 100 `sleep` tasks, 2,000 more tasks
pushed through, and the largest USS (/proc/PID/smaps_rollup) among the sleepers'
monitors. The last line is one JSON object.

    python benchmarks/executor_throughput.py --tasks 2000 --workers 10
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time

from simple_scheduler.backend import Exited, Lost, TaskSpec
from simple_scheduler.hypervisor import spawn_hypervisor
from simple_scheduler.hypervisor_client import HypervisorClient


def uss_kib(pid: int) -> int:
    total = 0
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            if line.startswith(("Private_Clean:", "Private_Dirty:", "Private_Hugetlb:")):
                total += int(line.split()[1])
    return total


class Runner:
    """Spawns through one client with a bounded number in flight, waits for each exit."""

    def __init__(self, client: HypervisorClient, root: str) -> None:
        self.client = client
        self.root = root
        self.waiters: dict[str, asyncio.Future[None]] = {}
        self.pump = asyncio.create_task(self._pump())

    async def _pump(self) -> None:
        async for event in self.client.events():
            if isinstance(event, Exited | Lost):
                fut = self.waiters.pop(event.key, None)
                if fut is not None and not fut.done():
                    fut.set_result(None)

    def spec(self, key: str, argv: list[str]) -> TaskSpec:
        return TaskSpec(key=key, job_id=1, task_name=key, argv=argv,
                        env={"PATH": "/usr/bin:/bin"}, task_dir=os.path.join(self.root, key))

    async def run_one(self, key: str, argv: list[str]) -> None:
        fut = asyncio.get_running_loop().create_future()
        self.waiters[key] = fut
        await self.client.spawn(self.spec(key, argv))
        await fut
        await self.client.release(key)

    async def run_many(self, prefix: str, n: int, workers: int) -> float:
        queue = iter(range(n))

        async def worker() -> None:
            for i in queue:
                await self.run_one(f"{prefix}{i}", ["/bin/true"])

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(workers)))
        return time.perf_counter() - t0


async def hypervisor_side(sock: str, root: str, n: int, workers: int) -> tuple[float, int]:
    client = await HypervisorClient.connect(sock)
    runner = Runner(client, os.path.join(root, "tasks"))
    await runner.run_many("warm", 50, workers)
    elapsed = await runner.run_many("t", n, workers)

    # Monitor memory: 100 sleepers, 2,000 more tasks, then the largest sleeper USS.
    for i in range(100):
        await client.spawn(runner.spec(f"sleep{i}", ["sleep", "600"]))
    await runner.run_many("after", 2000, workers)
    records = [r for r in await client.list() if r.key.startswith("sleep")]
    worst = max(uss_kib(int(r.extra["monitor_pid"])) for r in records)
    for r in records:
        await client.kill(r.key, grace=1.0)
    await asyncio.sleep(0.5)
    for r in await client.list():
        await client.release(r.key)
    runner.pump.cancel()
    await client.close()
    return n / elapsed, worst


def baseline(root: str, n: int, workers: int) -> float:
    """The same tasks through subprocess.Popen, W in flight, each with its own files."""
    running: dict[int, subprocess.Popen[bytes]] = {}
    t0 = time.perf_counter()
    for i in range(n):
        if len(running) >= workers:
            pid, status = os.wait()
            proc = running.pop(pid)
            proc.returncode = os.waitstatus_to_exitcode(status)
        d = os.path.join(root, str(i))
        os.makedirs(d)
        with open(os.path.join(d, "stdout"), "wb") as out, \
                open(os.path.join(d, "stderr"), "wb") as err:
            proc = subprocess.Popen(["/bin/true"], stdin=subprocess.DEVNULL, stdout=out,
                                    stderr=err, cwd=d)
        running[proc.pid] = proc
    while running:
        pid, status = os.wait()
        running.pop(pid).returncode = os.waitstatus_to_exitcode(status)
    return n / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=10)
    parser.add_argument("--no-fsync", action="store_true",
                        help="monitors skip the status file's fsync")
    args = parser.parse_args()

    root = tempfile.mkdtemp(prefix="ss-bench-", dir="/tmp")
    sock = os.path.join(root, "h.sock")
    proc = spawn_hypervisor(sock, os.path.join(root, "pd"), fsync=not args.no_fsync)
    try:
        rate, worst_uss = asyncio.run(hypervisor_side(sock, os.path.join(root, "pd"),
                                                      args.tasks, args.workers))
        base = baseline(os.path.join(root, "baseline"), args.tasks, args.workers)
    finally:
        proc.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=10)
        shutil.rmtree(root, ignore_errors=True)
    print(f"hypervisor {rate:.0f} tasks/s, Popen baseline {base:.0f} tasks/s, "
          f"largest sleeping monitor USS {worst_uss} KiB")
    print(json.dumps({
        "benchmark": "executor_throughput",
        "tasks": args.tasks,
        "workers": args.workers,
        "tasks_per_s": round(rate, 1),
        "baseline_tasks_per_s": round(base, 1),
        "ratio": round(rate / base, 3),
        "monitor_uss_kib": worst_uss,
        "fsync": not args.no_fsync,
    }))


if __name__ == "__main__":
    main()
