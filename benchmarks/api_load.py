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
import json
import statistics
import time

from harness import LiveServer

#: The server's settings: room for the 10 busy tasks, and kills that do not wait long.
SETTINGS = {"nb_of_workers": "16", "kill_grace_s": "1"}

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
    server = LiveServer("ss-bench-", SETTINGS, admin=False)
    try:
        server.start()
        token = server.login()
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


if __name__ == "__main__":
    main()
