"""API load: `GET /scheduler/jobs/{id}/info` vs a trivial endpoint, same server stack.

Starts the real `simple-scheduler run-server` on a temporary data folder, submits a job of
10 busy tasks (`sleep`), then drives 32 keep-alive HTTP/1.1 connections for `--seconds`
against the job's info (login, token check, one indexed read, JSON) and, in the same run,
against `GET /rest/health` (no auth, no database: the Quart + Hypercorn floor), in
alternating slices of about 2 s so background load weighs on both alike. The client
is a minimal raw-socket HTTP/1.1 loop so that it costs less than the server it measures.

Goal: ratio >= 0.6 of the trivial endpoint's rate, p99 <= 50 ms. Last line, one JSON
object: {"benchmark": "api_load", "rps", "p50_ms", "p99_ms", "trivial_rps", "ratio"}.

    .venv/bin/python benchmarks/api_load.py [--seconds 20] [--connections 32]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

import psutil

BUSY_JOB = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    '<job xmlns="urn:proactive:jobdescriptor:3.14" name="busy"><taskFlow>'
    + "".join(
        f'<task name="busy{i}"><scriptExecutable><script><code language="bash">sleep 600'
        "</code></script></scriptExecutable></task>"
        for i in range(10)
    )
    + "</taskFlow></job>"
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}/rest"
        self.env = dict(
            os.environ,
            SIMPLE_SCHEDULER_DATA_DIR=str(root / "data"),
            SIMPLE_SCHEDULER_PORT=str(self.port),
            SIMPLE_SCHEDULER_BCRYPT_ROUNDS="4",
            SIMPLE_SCHEDULER_NB_OF_WORKERS="16",
            SIMPLE_SCHEDULER_KILL_GRACE_S="1",
            SIMPLE_SCHEDULER_LOG_LEVEL="WARNING",  # no access log line per request
        )
        self.env.pop("SIMPLE_SCHEDULER_CONFIG", None)
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        cmd = [sys.executable, "-m", "simple_scheduler"]
        subprocess.run(
            [*cmd, "create-user", "bench", "bench-pw"],
            cwd=self.root,
            env=self.env,
            check=True,
            capture_output=True,
        )
        with (self.root / "server.log").open("ab") as log:
            self.proc = subprocess.Popen(
                [*cmd, "run-server"], cwd=self.root, env=self.env, stdout=log, stderr=log
            )
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(OSError):
                urllib.request.urlopen(f"{self.base}/health", timeout=1).read()
                return
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"server did not start; see {self.root / 'server.log'}")
            time.sleep(0.05)

    def request(
        self,
        method: str,
        path: str,
        data: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> bytes:
        req = urllib.request.Request(
            f"{self.base}{path}", data=data, method=method, headers=headers or {}
        )
        with urllib.request.urlopen(req, timeout=10) as response:
            body: bytes = response.read()
            return body

    def stop(self) -> None:
        """SIGTERM the server, then everything it left running in our folder."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(20)
        for proc in psutil.process_iter(["pid"]):
            with contextlib.suppress(psutil.Error, OSError):
                if proc.pid != os.getpid() and proc.cwd().startswith(str(self.root)):
                    proc.kill()


async def hammer(
    port: int, path: str, headers: dict[str, str], connections: int, seconds: float
) -> list[float]:
    """Keep-alive GETs on `connections` sockets for `seconds`; returns latencies (s)."""
    extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{extra}\r\n".encode()
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds

    async def one() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while time.perf_counter() < deadline:
                start = time.perf_counter()
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                if not head.startswith(b"HTTP/1.1 200"):
                    raise RuntimeError(f"unexpected answer: {head[:80]!r}")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                await reader.readexactly(length)
                latencies.append(time.perf_counter() - start)
        finally:
            writer.close()

    await asyncio.gather(*(one() for _ in range(connections)))
    return latencies


def summary(name: str, latencies: list[float], seconds: float) -> tuple[float, float, float]:
    rps = len(latencies) / seconds
    cuts = statistics.quantiles(latencies, n=100)
    p50, p99 = cuts[49] * 1000, cuts[98] * 1000
    print(f"{name:<28} {rps:9.0f} req/s   p50 {p50:6.2f} ms   p99 {p99:6.2f} ms")
    return rps, p50, p99


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="ss-bench-", dir="/tmp"))
    server = Server(root)
    try:
        server.start()
        token = server.request(
            "POST",
            "/scheduler/login",
            urllib.parse.urlencode({"username": "bench", "password": "bench-pw"}).encode(),
            {"Content-Type": "application/x-www-form-urlencoded"},
        ).decode()
        auth = {"sessionid": token}
        job = json.loads(
            server.request(
                "POST",
                "/scheduler/submit",
                BUSY_JOB.encode(),
                {**auth, "Content-Type": "application/xml"},
            )
        )
        job_id = job["id"]
        deadline = time.monotonic() + 30
        while True:  # wait until the 10 tasks are really running
            info = json.loads(server.request("GET", f"/scheduler/jobs/{job_id}/info", headers=auth))
            if info["numberOfRunningTasks"] == 10:
                break
            if time.monotonic() > deadline:
                raise SystemExit(f"tasks did not start: {info['status']}")
            time.sleep(0.1)
        print(
            f"server on port {server.port}, job {job_id} with 10 busy tasks, "
            f"{args.connections} connections, {args.seconds:g} s per endpoint"
        )
        # Alternate short slices of the two endpoints so that background load on the
        # machine weighs on both alike.
        rounds = max(1, round(args.seconds / 2))
        slice_s = args.seconds / rounds
        info_lat: list[float] = []
        trivial_lat: list[float] = []
        info_path = f"/rest/scheduler/jobs/{job_id}/info"
        for _ in range(rounds):
            info_lat += asyncio.run(hammer(server.port, info_path, auth, args.connections, slice_s))
            trivial_lat += asyncio.run(
                hammer(server.port, "/rest/health", {}, args.connections, slice_s)
            )
        rps, p50, p99 = summary("GET /scheduler/jobs/{id}/info", info_lat, args.seconds)
        trivial_rps, _, _ = summary("GET /health (trivial)", trivial_lat, args.seconds)
        ratio = rps / trivial_rps
        print(f"ratio {ratio:.2f} (goal >= 0.6), p99 {p99:.1f} ms (goal <= 50)")
        print(
            json.dumps(
                {
                    "benchmark": "api_load",
                    "rps": round(rps, 1),
                    "p50_ms": round(p50, 2),
                    "p99_ms": round(p99, 2),
                    "trivial_rps": round(trivial_rps, 1),
                    "ratio": round(ratio, 3),
                }
            )
        )
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
