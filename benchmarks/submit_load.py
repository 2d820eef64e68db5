"""Submits under load: 32 clients each submit a small job, then read its info, N times.

Starts the real `simple-scheduler run-server` (as api_load.py does) and drives `--clients`
keep-alive HTTP/1.1 connections over loopback, each doing `--per-client` rounds of
`POST /scheduler/submit` (a one-task XML job, `true`) then `GET /jobs/{id}/info`.
Reports p50/p99 of each; issue 14.11 measured submits at 400-470 ms p50 where reads took
6-28 ms. Last line, one JSON object:
{"benchmark": "submit_load", "submits", "submit_p50_ms", "submit_p99_ms", "read_p50_ms",
"read_p99_ms", "submits_per_s"}.

    .venv/bin/python benchmarks/submit_load.py [--clients 32] [--per-client 40]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time

from api_load import SETTINGS
from harness import LiveServer

JOB = (
    b'<?xml version="1.0" encoding="UTF-8"?>'
    b'<job xmlns="urn:proactive:jobdescriptor:3.14" name="small"><taskFlow>'
    b'<task name="t"><nativeExecutable><staticCommand value="true"/></nativeExecutable></task>'
    b"</taskFlow></job>"
)


async def read_answer(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    return head, await reader.readexactly(length)


async def drive(
    port: int, token: str, clients: int, rounds: int
) -> tuple[list[float], list[float]]:
    submit = (
        f"POST /rest/scheduler/submit HTTP/1.1\r\nHost: 127.0.0.1\r\nsessionid: {token}\r\n"
        f"Content-Type: application/xml\r\nContent-Length: {len(JOB)}\r\n\r\n"
    ).encode() + JOB
    submits: list[float] = []
    reads: list[float] = []

    async def one() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            for _ in range(rounds):
                start = time.perf_counter()
                writer.write(submit)
                head, body = await read_answer(reader)
                submits.append(time.perf_counter() - start)
                if not head.startswith(b"HTTP/1.1 200"):
                    raise RuntimeError(f"submit: {head[:80]!r} {body[:200]!r}")
                job_id = json.loads(body)["id"]
                start = time.perf_counter()
                writer.write(
                    f"GET /rest/scheduler/jobs/{job_id}/info HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                    f"sessionid: {token}\r\n\r\n".encode()
                )
                head, body = await read_answer(reader)
                reads.append(time.perf_counter() - start)
                if not head.startswith(b"HTTP/1.1 200"):
                    raise RuntimeError(f"info: {head[:80]!r}")
        finally:
            writer.close()

    await asyncio.gather(*(one() for _ in range(clients)))
    return submits, reads


def percentiles(latencies: list[float]) -> tuple[float, float]:
    cuts = statistics.quantiles(latencies, n=100)
    return cuts[49] * 1000, cuts[98] * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--per-client", type=int, default=40)
    args = parser.parse_args()
    server = LiveServer("ss-bench-", SETTINGS, admin=False)
    try:
        server.start()
        token = server.login()
        asyncio.run(drive(server.port, token, 4, 5))  # warm-up
        began = time.perf_counter()
        submits, reads = asyncio.run(drive(server.port, token, args.clients, args.per_client))
        elapsed = time.perf_counter() - began
        s50, s99 = percentiles(submits)
        r50, r99 = percentiles(reads)
        print(f"{len(submits)} submits by {args.clients} clients in {elapsed:.1f} s")
        print(f"submit  p50 {s50:7.1f} ms   p99 {s99:7.1f} ms")
        print(f"read    p50 {r50:7.1f} ms   p99 {r99:7.1f} ms")
        print(
            json.dumps(
                {
                    "benchmark": "submit_load",
                    "submits": len(submits),
                    "submit_p50_ms": round(s50, 1),
                    "submit_p99_ms": round(s99, 1),
                    "read_p50_ms": round(r50, 1),
                    "read_p99_ms": round(r99, 1),
                    "submits_per_s": round(len(submits) / elapsed, 1),
                }
            )
        )
    finally:
        server.stop()


if __name__ == "__main__":
    main()
