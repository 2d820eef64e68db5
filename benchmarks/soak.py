"""Soak: many clients for minutes, with crashes, against the real server (issue 14).

A reliability benchmark, not a speed one: N clients (default 32) drive a real
`run-server` over REST for `--seconds` (default 600), each on its own keep-alive
connection, mixing what users do: submit small jobs (a diamond-less fork of three bash
tasks: `a` then `b` and `c`), poll their info, read task logs, list jobs. A client keeps at
most a few of its jobs unfinished (it polls instead of submitting), so the load stays
steady instead of queueing without bound. During the run the benchmark SIGKILLs one task
monitor (at 30%) and the hypervisor (at 60%), found by their process titles among this
run's processes; the server must carry on, relaunch its hypervisor, lose nothing and run
nothing twice.

Every task appends "<job id> <task name>" to a ledger file as its first act, so after a
drain period the ledger says which tasks ran twice; jobs acknowledged by a 200 to submit
but not ended by then are lost. Also reported: requests, errors (non-2xx or no answer),
p50/p99 per operation, server and hypervisor RSS at start, after warm-up, middle and end
(`rss_growth_ratio` = server end / after warm-up). CPU per request, of the server, of
the hypervisor (with its fork server and monitors' reaping, not the tasks) and of this
benchmark's own clients, says where a 2-core machine's time goes: the clients share it.

Targets: errors 0, lost 0, twice 0, submit_p99_ms <= 100, read_p99_ms <= 100,
rss_growth_ratio <= 1.2.

    .venv/bin/python benchmarks/soak.py [--seconds 600] [--clients 32] [--workers 8]

Last line, one JSON object: {"benchmark": "soak", "requests", "errors", "submit_p99_ms",
"read_p99_ms", "rss_growth_ratio", "lost", "twice"}.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import os
import random
import signal
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import NS, LiveServer

TERMINAL = {"FINISHED", "CANCELED", "FAILED", "KILLED"}
TASKS = ("a", "b", "c")
MAX_OPEN = 3  # unfinished jobs per client before it stops submitting
MONITOR = "simple-scheduler: monitor"
HYPERVISOR = "simple-scheduler: hypervisor"
# Operation mix, by weight; reads are what users do most.
OPS = {"submit": 3, "info": 4, "log": 2, "list": 1}
READS = ("info", "log", "list")


def job_xml(ledger: Path) -> bytes:
    """Three bash tasks, `b` and `c` after `a`; each first appends its id to the ledger.

    `a` sleeps 0.1 s so that monitors are alive whenever the benchmark looks for one.
    """

    def task(name: str, extra: str, depends: str = "") -> str:
        deps = f'<depends><task ref="{depends}"/></depends>' if depends else ""
        code = f'echo "$PA_JOB_ID {name}" >> {ledger}; echo out-{name}; {extra}'
        return (
            f'<task name="{name}">{deps}<scriptExecutable><script><code language="bash">'
            f"{code}</code></script></scriptExecutable></task>"
        )

    tasks = task("a", "sleep 0.1") + task("b", "true", "a") + task("c", "true", "a")
    return f'<job xmlns="{NS}" name="soak"><taskFlow>{tasks}</taskFlow></job>'.encode()


@dataclass
class Stats:
    """What all clients saw: latencies per operation, errors, jobs and their ends."""

    latency: dict[str, list[float]] = field(default_factory=lambda: collections.defaultdict(list))
    errors: collections.Counter[str] = field(default_factory=collections.Counter)
    error_samples: list[str] = field(default_factory=list)
    acknowledged: set[int] = field(default_factory=set)
    ended: dict[int, dict[str, Any]] = field(default_factory=dict)  # job id -> last info

    def error(self, op: str, what: str) -> None:
        self.errors[op] += 1
        if len(self.error_samples) < 10:
            self.error_samples.append(f"{op}: {what}")


class Client:
    """One user session on one keep-alive connection, running the operation mix."""

    def __init__(self, base: str, token: str, xml: bytes, stats: Stats, rng: random.Random):
        self.http = httpx.AsyncClient(
            base_url=f"{base}/rest/scheduler",
            headers={"sessionid": token},
            timeout=60,
            limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
        )
        self.xml, self.stats, self.rng = xml, stats, rng
        self.open: list[int] = []  # submitted, not seen ended
        self.done: list[int] = []  # seen ended: their logs are complete

    async def call(
        self,
        op: str,
        method: str,
        url: str,
        files: dict[str, tuple[str, bytes, str]] | None = None,
        params: dict[str, int] | None = None,
    ) -> httpx.Response | None:
        start = time.perf_counter()
        try:
            answer = await self.http.request(method, url, files=files, params=params)
        except httpx.HTTPError as exc:
            self.stats.error(op, f"{type(exc).__name__}: {exc}")
            return None
        self.stats.latency[op].append((time.perf_counter() - start) * 1000)
        if answer.status_code >= 300:
            self.stats.error(op, f"{answer.status_code} {answer.text[:200]}")
            return None
        return answer

    async def submit(self) -> None:
        files = {"file": ("soak.xml", self.xml, "application/xml")}
        answer = await self.call("submit", "POST", "/submit", files=files)
        if answer is not None:
            job_id = int(answer.json()["id"])
            self.stats.acknowledged.add(job_id)
            self.open.append(job_id)

    async def info(self, job_id: int) -> None:
        answer = await self.call("info", "GET", f"/jobs/{job_id}/info")
        if answer is not None:
            info = answer.json()
            if info["status"] in TERMINAL and job_id in self.open:
                self.open.remove(job_id)
                self.done.append(job_id)
                self.stats.ended[job_id] = info

    async def step(self) -> None:
        op = self.rng.choices(list(OPS), weights=list(OPS.values()))[0]
        if op == "submit" and len(self.open) >= MAX_OPEN:
            op = "info"
        if op == "log" and not self.done:
            op = "info"
        if op == "info" and not (self.open or self.done):
            op = "submit"
        if op == "submit":
            await self.submit()
        elif op == "info":
            await self.info(self.open[0] if self.open else self.rng.choice(self.done))
        elif op == "log":
            job_id, task = self.rng.choice(self.done[-50:]), self.rng.choice(TASKS)
            await self.call("log", "GET", f"/jobs/{job_id}/tasks/{task}/result/log/all")
        else:
            await self.call("list", "GET", "/jobsinfo", params={"index": 0, "limit": 20})

    async def run(self, until: float) -> None:
        while time.monotonic() < until:
            await self.step()

    async def drain(self, until: float) -> None:
        """After the load: poll this client's unfinished jobs until they end or time is up."""
        while self.open and time.monotonic() < until:
            for job_id in list(self.open):
                await self.info(job_id)
            if self.open:
                await asyncio.sleep(0.2)


def rss_mb(proc: psutil.Process | None) -> float | None:
    if proc is None:
        return None
    try:
        return float(proc.memory_info().rss) / 2**20
    except psutil.Error:
        return None


def cpu_s(proc: psutil.Process | None) -> float:
    """User + system CPU seconds of `proc` so far (0 once it is gone)."""
    if proc is None:
        return 0.0
    try:
        times = proc.cpu_times()
    except psutil.Error:
        return 0.0
    return float(times.user + times.system)


def percentile(values: list[float], q: int) -> float:
    if len(values) < 2:
        return values[0] if values else 0.0
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


async def soak(args: argparse.Namespace, server: LiveServer) -> dict[str, object]:
    ledger_dir = server.root / "ledger"
    ledger_dir.mkdir(mode=0o777)
    os.chmod(server.root, 0o755)  # tasks may one day run as another user: let them write
    ledger = ledger_dir / "ledger.txt"
    ledger.touch(mode=0o666)
    os.chmod(ledger, 0o666)
    xml = job_xml(ledger)
    stats = Stats()
    assert server.proc is not None
    web = psutil.Process(server.proc.pid)

    def hypervisor() -> psutil.Process | None:
        found = server.processes(HYPERVISOR)
        return found[0] if found else None

    rss: dict[str, tuple[float | None, float | None]] = {}

    def sample(label: str) -> None:
        rss[label] = (rss_mb(web), rss_mb(hypervisor()))
        server_mb, hv_mb = rss[label]
        print(
            f"  [{label}] server RSS {server_mb or 0:.0f} MB, hypervisor RSS {hv_mb or 0:.1f} MB,"
            f" {sum(len(v) for v in stats.latency.values())} requests,"
            f" {sum(stats.errors.values())} errors, {len(stats.acknowledged)} jobs acknowledged",
            flush=True,
        )

    sample("start")
    async with httpx.AsyncClient(base_url=f"{server.base}/rest/scheduler", timeout=30) as login:
        tokens = []
        for _ in range(args.clients):
            answer = await login.post(
                "/login", data={"username": server.user, "password": server.password}
            )
            answer.raise_for_status()
            tokens.append(answer.text.strip())
    seed = random.Random(args.seed)
    clients = [Client(server.base, t, xml, stats, random.Random(seed.random())) for t in tokens]
    began = time.monotonic()
    until = began + args.seconds
    # CPU seconds over the load: the server, each hypervisor (one is killed), the clients.
    cpu_start = (cpu_s(web), time.process_time())
    hypervisor_cpu: dict[int, float] = {}

    def note_hypervisor_cpu() -> None:
        found = hypervisor()
        if found is not None:
            hypervisor_cpu[found.pid] = max(hypervisor_cpu.get(found.pid, 0.0), cpu_s(found))

    note_hypervisor_cpu()
    hypervisor_at_start = dict(hypervisor_cpu)
    warmup = min(60.0, max(5.0, args.seconds * 0.1))
    events: list[str] = []

    async def kill_one(title: str, at: float) -> None:
        """SIGKILL one process of this run titled `title`, at `at` s; retry up to 10 s."""
        await asyncio.sleep(max(0.0, began + at - time.monotonic()))
        give_up = time.monotonic() + 10
        while time.monotonic() < give_up:
            found = server.processes(title)
            if found:
                victim = random.choice(found)
                with contextlib.suppress(psutil.Error):
                    name = " ".join(victim.cmdline())
                    victim.send_signal(signal.SIGKILL)
                    events.append(f"{time.monotonic() - began:.1f}s SIGKILL {victim.pid} {name}")
                    print(f"  {events[-1]}", flush=True)
                    return
            await asyncio.sleep(0.05)
        events.append(f"no {title!r} process found to kill")
        print(f"  {events[-1]}", flush=True)

    async def timeline() -> None:
        marks = [(warmup, "after warm-up"), (args.seconds / 2, "middle")]
        for at, label in marks:
            await asyncio.sleep(max(0.0, began + at - time.monotonic()))
            sample(label)

    async def watch_hypervisor_cpu() -> None:
        """Its CPU until it is killed, and its successor's: sampled every second."""
        while time.monotonic() < until:
            note_hypervisor_cpu()
            await asyncio.sleep(1.0)

    print(
        f"{args.clients} clients for {args.seconds:g} s, {args.workers} workers; warm-up"
        f" {warmup:g} s; SIGKILL a monitor at 30% and the hypervisor at 60%",
        flush=True,
    )
    await asyncio.gather(
        *(c.run(until) for c in clients),
        kill_one(MONITOR, args.seconds * 0.3),
        kill_one(HYPERVISOR, args.seconds * 0.6),
        timeline(),
        watch_hypervisor_cpu(),
    )
    note_hypervisor_cpu()
    server_cpu = cpu_s(web) - cpu_start[0]
    client_cpu = time.process_time() - cpu_start[1]
    hv_cpu = sum(hypervisor_cpu.values()) - sum(hypervisor_at_start.values())
    sample("end")
    requests = sum(len(v) for v in stats.latency.values()) + sum(stats.errors.values())
    load_s = time.monotonic() - began
    drain_until = time.monotonic() + args.drain
    await asyncio.gather(*(c.drain(drain_until) for c in clients))
    for client in clients:
        await client.http.aclose()
    replaced = hypervisor()
    events.append(f"hypervisor at the end: {replaced.pid if replaced else 'none'}")

    # Tasks run twice: a (job, task) with more than one line in the ledger.
    lines = collections.Counter(tuple(x.split()) for x in ledger.read_text().splitlines())
    twice = sum(1 for n in lines.values() if n > 1)
    lost = sorted(stats.acknowledged - stats.ended.keys())
    statuses = collections.Counter(str(info["status"]) for info in stats.ended.values())
    with_failures = sum(
        1
        for info in stats.ended.values()
        if info["numberOfFaultyTasks"] + info["numberOfFailedTasks"]
    )
    # A job that ended FINISHED with no failed task must have left each task's line once.
    clean = [
        j
        for j, info in stats.ended.items()
        if info["status"] == "FINISHED"
        and not info["numberOfFaultyTasks"] + info["numberOfFailedTasks"]
    ]
    missing = sum(1 for j in clean for t in TASKS if (str(j), t) not in lines)

    print()
    print(f"{'operation':<8} {'count':>8} {'errors':>7} {'p50 ms':>8} {'p99 ms':>8}")
    for op in OPS:
        values = stats.latency[op]
        print(
            f"{op:<8} {len(values):8d} {stats.errors[op]:7d}"
            f" {percentile(values, 50):8.1f} {percentile(values, 99):8.1f}"
        )
    reads = [x for op in READS for x in stats.latency[op]]
    print(f"{requests} requests in {load_s:.0f} s ({requests / load_s:.0f}/s)")
    for sample_line in stats.error_samples:
        print(f"  error: {sample_line}")
    per = 1000 / max(1, requests)
    print(
        f"CPU over the load: server {server_cpu:.1f} s ({server_cpu * per:.2f} ms/request,"
        f" {100 * server_cpu / load_s:.0f}% of a core), hypervisor {hv_cpu:.1f} s,"
        f" clients {client_cpu:.1f} s ({client_cpu * per:.2f} ms/request,"
        f" {100 * client_cpu / load_s:.0f}% of a core); load average"
        f" {' '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )
    for label, (server_mb, hv_mb) in rss.items():
        print(f"RSS {label:<14} server {server_mb or 0:6.1f} MB   hypervisor {hv_mb or 0:5.1f} MB")
    for event in events:
        print(f"event: {event}")
    print(
        f"jobs: {len(stats.acknowledged)} acknowledged, {len(stats.ended)} ended"
        f" ({dict(statuses)}; {with_failures} with a failed or faulty task), {len(lost)} lost"
        f"{' ' + str(lost[:20]) if lost else ''}; ledger: {sum(lines.values())} task runs,"
        f" {twice} run twice, {missing} missing from cleanly finished jobs"
    )
    warm = rss["after warm-up"][0]
    end = rss["end"][0]
    growth = end / warm if end and warm else None
    return {
        "benchmark": "soak",
        "requests": requests,
        "errors": sum(stats.errors.values()),
        "submit_p99_ms": round(percentile(stats.latency["submit"], 99), 1),
        "read_p99_ms": round(percentile(reads, 99), 1),
        "rss_growth_ratio": None if growth is None else round(growth, 3),
        "lost": len(lost),
        "twice": twice,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=600.0, help="load duration")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--workers", type=int, default=8, help="the server's nb_of_workers")
    parser.add_argument("--drain", type=float, default=60.0, help="seconds to let jobs end")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", action="store_true", help="keep the data folder")
    args = parser.parse_args()
    server = LiveServer("ss-soak-", {"nb_of_workers": str(args.workers), "kill_grace_s": "1"})
    try:
        server.start()
        result = asyncio.run(soak(args, server))
        if args.keep:
            print(f"data kept in {server.root}")
        print(json.dumps(result))
    finally:
        server.stop(keep_files=args.keep)


if __name__ == "__main__":
    main()
