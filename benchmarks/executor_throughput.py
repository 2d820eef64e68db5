"""Executor throughput: N `/bin/true` tasks through the hypervisor vs a Popen loop.

Both sides keep W tasks in flight and give each task its own directory with stdout and
stderr files. The two run interleaved, in R rounds of about N/R tasks each (who goes
first alternates), so both see the same machine: on a shared machine the load of other
processes, and the file system's state (ext4 without a journal scans recently deleted
inodes on every inode allocation, and that backlog drains over tens of seconds), drift
within seconds; one long run of each, one after the other, measures the drift as much
as the executors. `--rounds 1` runs them one after the other. CPU per task (all the
processes of each side, from /proc and getrusage) is reported too: it is much steadier
than the rates on a loaded machine.

Then the monitor's private memory: 100 `sleep` tasks, 2,000 more tasks pushed through,
and the largest USS (/proc/PID/smaps_rollup) among the sleepers' monitors. The last line
is one JSON object.

    python benchmarks/executor_throughput.py --tasks 2000 --workers 10
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field

from simple_scheduler.execution.backend import Exited, Lost, TaskSpec
from simple_scheduler.execution.client import HypervisorClient
from simple_scheduler.execution.launcher import spawn_hypervisor
from simple_scheduler.execution.taskdir import mark_top_directory


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
        self.releases: set[asyncio.Task[None]] = set()
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
        # Like the scheduler: the slot is free once the task ended; the release is
        # bookkeeping that travels behind it (and is awaited before the clock stops).
        release = asyncio.create_task(self.client.release(key))
        self.releases.add(release)
        release.add_done_callback(self.releases.discard)

    async def run_many(self, prefix: str, n: int, workers: int) -> float:
        queue = iter(range(n))

        async def worker() -> None:
            for i in queue:
                await self.run_one(f"{prefix}{i}", ["/bin/true"])

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(workers)))
        await asyncio.gather(*self.releases)
        return time.perf_counter() - t0


def process_cpu_s(pid: int, children: bool = False) -> float:
    """utime + stime (+ cutime + cstime: reaped descendants) of `pid`, in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = sum(int(x) for x in fields[11:15 if children else 13])
    return ticks / os.sysconf("SC_CLK_TCK")


def own_cpu_s(who: int = resource.RUSAGE_SELF) -> float:
    r = resource.getrusage(who)
    return r.ru_utime + r.ru_stime


@dataclass
class Totals:
    tasks: int = 0
    seconds: float = 0.0
    cpu_s: dict[str, float] = field(default_factory=dict)  #: per process kind

    def add(self, part: str, seconds: float) -> None:
        self.cpu_s[part] = self.cpu_s.get(part, 0.0) + seconds

    def cpu_ms_per_task(self) -> dict[str, float]:
        return {k: round(1000 * v / self.tasks, 3) for k, v in self.cpu_s.items()}


async def compare(sock: str, hv_pid: int, root: str, n: int, workers: int,
                  rounds: int) -> tuple[Totals, Totals, int]:
    """(hypervisor totals, Popen totals, largest sleeping monitor USS in KiB)."""
    client = await HypervisorClient.connect(sock)
    runner = Runner(client, os.path.join(root, "tasks"))
    with open(f"/proc/{hv_pid}/task/{hv_pid}/children") as f:
        fork_server = int(f.read().split()[0])
    await runner.run_many("warm", 50, workers)
    baseline(os.path.join(root, "baseline", "warm"), 50, workers)

    hv, base = Totals(), Totals()
    # The hypervisor and the fork server (whose reaped children are the monitors and
    # their tasks) work for this side only: their totals are read once, around it all.
    hv_cpu0 = process_cpu_s(hv_pid)
    fs_cpu0 = process_cpu_s(fork_server)
    mon_cpu0 = process_cpu_s(fork_server, children=True) - fs_cpu0
    for rnd in range(rounds):
        m = n // rounds + (1 if rnd < n % rounds else 0)
        for side in ((hv, base) if rnd % 2 == 0 else (base, hv)):
            c0, k0 = own_cpu_s(), own_cpu_s(resource.RUSAGE_CHILDREN)
            if side is hv:
                side.seconds += await runner.run_many(f"r{rnd}-", m, workers)
                side.add("client", own_cpu_s() - c0)
            else:
                side.seconds += baseline(os.path.join(root, "baseline", str(rnd)), m, workers)
                side.add("parent", own_cpu_s() - c0)
                side.add("tasks", own_cpu_s(resource.RUSAGE_CHILDREN) - k0)
            side.tasks += m
    await asyncio.sleep(0.5)  # the last monitors fsync after their report, then exit
    hv.add("hypervisor", process_cpu_s(hv_pid) - hv_cpu0)
    fs_cpu = process_cpu_s(fork_server)
    hv.add("fork_server", fs_cpu - fs_cpu0)
    hv.add("monitors_and_tasks", process_cpu_s(fork_server, children=True) - fs_cpu - mon_cpu0)

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
    return hv, base, worst


def baseline(root: str, n: int, workers: int) -> float:
    """The same tasks through subprocess.Popen, W in flight, each with its own files.

    `root` is laid out like a job under the process directory: its parent gets the mark
    the hypervisor gives its process directory (`mark_top_directory`), so both sides
    get the same inode placement. Returns the seconds it took.
    """
    os.makedirs(root, exist_ok=True)
    mark_top_directory(os.path.dirname(root))
    running: dict[int, subprocess.Popen[bytes]] = {}

    def reap() -> None:
        pid, status = os.wait()
        proc = running.pop(pid, None)  # (None: not ours, e.g. the hypervisor)
        if proc is not None:
            proc.returncode = os.waitstatus_to_exitcode(status)

    t0 = time.perf_counter()
    for i in range(n):
        while len(running) >= workers:
            reap()
        d = os.path.join(root, str(i))
        os.mkdir(d)
        with open(os.path.join(d, "stdout"), "wb") as out, \
                open(os.path.join(d, "stderr"), "wb") as err:
            proc = subprocess.Popen(["/bin/true"], stdin=subprocess.DEVNULL, stdout=out,
                                    stderr=err, cwd=d)
        running[proc.pid] = proc
    while running:
        reap()
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=10,
                        help="interleave the two sides in this many rounds (1: in turn)")
    parser.add_argument("--dir", default="/tmp",
                        help="where both sides create their task directories; the cost of "
                        "an inode allocation depends a lot on where (see above)")
    parser.add_argument("--no-fsync", action="store_true",
                        help="monitors skip the status file's fsync")
    parser.add_argument("--task-cgroups", action="store_true",
                        help="a cgroup per task, as the server's hypervisor does (where a "
                        "writable cgroup v2 hierarchy exists)")
    args = parser.parse_args()

    root = tempfile.mkdtemp(prefix="ss-bench-", dir=args.dir)
    sock = os.path.join(root, "h.sock")
    proc = spawn_hypervisor(
        sock, os.path.join(root, "pd"), fsync=not args.no_fsync, task_cgroups=args.task_cgroups
    )
    try:
        hv, base, worst_uss = asyncio.run(compare(sock, proc.pid, os.path.join(root, "pd"),
                                                  args.tasks, args.workers,
                                                  max(1, args.rounds)))
    finally:
        proc.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=10)
        shutil.rmtree(root, ignore_errors=True)
    rate, base_rate = hv.tasks / hv.seconds, base.tasks / base.seconds
    hv_cpu, base_cpu = sum(hv.cpu_ms_per_task().values()), sum(base.cpu_ms_per_task().values())
    print(f"hypervisor {rate:.0f} tasks/s ({hv_cpu:.2f} CPU ms/task), Popen baseline "
          f"{base_rate:.0f} tasks/s ({base_cpu:.2f} CPU ms/task), "
          f"largest sleeping monitor USS {worst_uss} KiB")
    print(json.dumps({
        "benchmark": "executor_throughput",
        "tasks": args.tasks,
        "workers": args.workers,
        "rounds": max(1, args.rounds),
        "tasks_per_s": round(rate, 1),
        "baseline_tasks_per_s": round(base_rate, 1),
        "ratio": round(rate / base_rate, 3),
        "cpu_ms_per_task": round(hv_cpu, 3),
        "baseline_cpu_ms_per_task": round(base_cpu, 3),
        "cpu_ms_per_task_parts": hv.cpu_ms_per_task(),
        "baseline_cpu_ms_per_task_parts": base.cpu_ms_per_task(),
        "monitor_uss_kib": worst_uss,
        "fsync": not args.no_fsync,
        "task_cgroups": args.task_cgroups,
        "dir": args.dir,
    }))


if __name__ == "__main__":
    main()
