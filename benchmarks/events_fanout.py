"""Events fan-out: does following a job over the events WebSocket slow scheduling?

The real server (`simple-scheduler run-server`, W workers) runs the scheduler
benchmark's job of N independent `/bin/true` tasks (N = 10,000; 2,000 with --small)
with no subscriber, then with S WebSocket subscribers (default 200), interleaved over
--rounds rounds in the same run. Throughput is the server's own measure: the job's
`finishedTime - submittedTime` from `/jobs/{id}/info`.

Subscriber profile (say which, since it decides the load): S sessions subscribe as
ProActive's smart proxy does (`myEventsOnly: true`, all events). `--owner-subscribers`
of them (default 10) belong to the job's owner and receive every event of the job (a
dashboard, a CLI `watch`, smart proxies; the first two decode every frame to measure its
lag, the others count them); the others belong to another user, as when
hundreds of users follow their own jobs, and receive heartbeats only. Every one of them
is registered on the bus the scheduler publishes into.

The machine is shared and its load swings: next to the wall-clock ratio, the web
process's CPU time per task with and without subscribers says what the events cost the
server itself.

Event lag: for each task event received by an owner subscriber, the receive time minus
the time of the change it reports (`scheduledTime` for RUNNING, `finishedTime` for the
end, both stamped by the server or the monitor): it includes the batching window, the
commit, the encoding and the WebSocket.

usage: python benchmarks/events_fanout.py [--small] [--subscribers 200]
    [--owner-subscribers 10] [--workers 10] [--rounds 1]
Last line: {"benchmark":"events_fanout","tasks_per_s_0","tasks_per_s_200","ratio",
            "events_per_s","p99_event_lag_ms"}
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import os
import statistics
import struct
import time

import httpx
import orjson
import psutil
from harness import LiveServer, job_xml, native_task

#: Owner subscribers that decode every frame for its lag (the others count frames):
#: the benchmark's own CPU competes with the server's on this machine.
MEASURED = 2


def workflow(n: int) -> bytes:
    return job_xml("fanout", [native_task(f"t{i}") for i in range(n)])


async def login(client: httpx.AsyncClient, user: str) -> str:
    response = await client.post("/scheduler/login", data={"username": user, "password": "pw"})
    response.raise_for_status()
    return response.text


class Subscriber:
    """One WebSocket subscriber, written lean so that the benchmark's own CPU (on the same
    machine) stays small: a plain asyncio stream, the RFC 6455 handshake and frame
    parsing by hand, no permessage-deflate (ProActive's client, wasync, does not
    negotiate it). Owner subscribers keep every task event's lag."""

    def __init__(self, port: int, token: str, measure: bool) -> None:
        self.port, self.token, self.measure = port, token, measure
        self.frames = 0
        self.first_at = self.last_at = 0.0
        self.lags_ms: list[float] = []
        #: (receive time, lag) of each measured event, for the per-second lag profile
        self.timeline: list[tuple[float, float]] = []
        self.ready = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    async def run(self) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        try:
            key = base64.b64encode(os.urandom(16)).decode()
            writer.write(
                (
                    "GET /rest/scheduler/events HTTP/1.1\r\n"
                    f"Host: 127.0.0.1:{self.port}\r\nUpgrade: websocket\r\n"
                    f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                    f"Sec-WebSocket-Version: 13\r\nsessionid: {self.token}\r\n\r\n"
                ).encode()
            )
            head = await reader.readuntil(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 101"), head
            payload = b'{"myEventsOnly": true, "events": []}'
            mask = os.urandom(4)
            masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
            writer.write(bytes((0x81, 0x80 | len(payload))) + mask + masked)
            buffer = bytearray()
            none_seen = False
            while True:
                chunk = await reader.read(1 << 20)
                if not chunk:
                    return
                buffer += chunk
                at = 0
                while len(buffer) - at >= 2:
                    size, header = buffer[at + 1] & 0x7F, 2
                    if size == 126:
                        if len(buffer) - at < 4:
                            break
                        size, header = struct.unpack_from(">H", buffer, at + 2)[0], 4
                    elif size == 127:
                        if len(buffer) - at < 10:
                            break
                        size, header = struct.unpack_from(">Q", buffer, at + 2)[0], 10
                    if len(buffer) - at < header + size:
                        break
                    opcode, final = buffer[at] & 0x0F, buffer[at] & 0x80
                    begin, at = at + header, at + header + size
                    if opcode == 8:
                        return
                    if not final:  # a big message's first fragments: count it at its end
                        continue
                    if not none_seen:
                        none_seen = True
                        self.ready.set()
                    elif size != 1 or buffer[begin] != 0x58:  # not the heartbeat "X"
                        self.frames += 1
                        if self.measure and opcode == 1:  # a whole message in one frame
                            self.on_event(bytes(buffer[begin:at]))
                del buffer[:at]
                if self.frames:
                    self.last_at = time.perf_counter()
                    self.first_at = self.first_at or self.last_at
        finally:
            writer.close()

    def on_event(self, body: bytes) -> None:
        now = time.time() * 1000
        if not body.startswith(b'{"action":"TASK_STATE_UPDATED"'):
            return  # not measured: decoding a big job's 7.6 MB JobStateData here would
            # delay this process's next reads by as much (it runs 200 subscribers)
        data = orjson.loads(body)["data"]
        status = data.get("taskStatus")
        if status == "RUNNING":
            self.lags_ms.append(now - data["scheduledTime"])
        elif status == "FINISHED":
            self.lags_ms.append(now - data["finishedTime"])
        else:
            return
        self.timeline.append((now, self.lags_ms[-1]))


def cpu_s(server: LiveServer) -> float:
    """The web process's CPU time so far (its threads included)."""
    assert server.proc is not None
    times = psutil.Process(server.proc.pid).cpu_times()
    return float(times.user + times.system)


async def run_job(client: httpx.AsyncClient, n: int) -> tuple[int, float]:
    """Submit, wait for the end; the job's id and the server's tasks per second for it."""
    response = await client.post(
        "/scheduler/submit", files={"file": ("job.xml", workflow(n), "application/xml")}
    )
    response.raise_for_status()
    job_id = response.json()["id"]
    while True:
        info = (await client.get(f"/scheduler/jobs/{job_id}/info")).json()
        if info["status"] in ("FINISHED", "CANCELED", "FAILED", "KILLED"):
            break
        await asyncio.sleep(0.25)
    assert info["status"] == "FINISHED" and info["numberOfFaultyTasks"] == 0, info
    return job_id, n / ((info["finishedTime"] - info["submittedTime"]) / 1000)


async def remove(client: httpx.AsyncClient, job_id: int) -> None:
    """Remove a measured job and its files, so every round starts from the same disk."""
    (await client.delete(f"/scheduler/jobs/{job_id}")).raise_for_status()


async def measure(args: argparse.Namespace, server: LiveServer) -> dict[str, float]:
    n = 2000 if args.small else 10_000
    url = f"{server.base}/rest"
    async with httpx.AsyncClient(base_url=url, timeout=600) as anon:
        owner_token = await login(anon, "bench")
        watcher_tokens = [await login(anon, "watcher") for _ in range(args.subscribers)]
    without: list[float] = []
    with_subs: list[float] = []
    lags: list[float] = []
    #: lags of each subscriber's second half of the job, past the submission's burst
    later: list[float] = []
    events_per_s: list[float] = []
    #: the web process's CPU ms per task (its own cost, whatever else loads the machine)
    cpu_without: list[float] = []
    cpu_with: list[float] = []
    async with httpx.AsyncClient(
        base_url=url, headers={"sessionid": owner_token}, timeout=600
    ) as client:
        await remove(client, (await run_job(client, 200))[0])  # warm-up
        for round_ in range(args.rounds):
            cpu = cpu_s(server)
            job_id, rate = await run_job(client, n)
            without.append(rate)
            cpu_without.append((cpu_s(server) - cpu) * 1000 / n)
            await remove(client, job_id)
            print(f"round {round_}: 0 subscribers: {without[-1]:.0f} tasks/s", flush=True)
            owners = min(args.owner_subscribers, args.subscribers)
            subs = [
                Subscriber(server.port, owner_token, i < MEASURED)
                if i < owners
                else Subscriber(server.port, watcher_tokens[i], False)
                for i in range(args.subscribers)
            ]
            for sub in subs:
                sub.task = asyncio.create_task(sub.run())
            await asyncio.wait_for(asyncio.gather(*(s.ready.wait() for s in subs)), 120)
            cpu = cpu_s(server)
            job_id, rate = await run_job(client, n)
            with_subs.append(rate)
            expected = 1 + 2 * n + 2  # submitted (with the tasks' first status),
            # 2 per task (running, finished), the job's running and finished
            deadline = time.monotonic() + 60
            while any(s.frames < expected for s in subs[:owners]):
                assert time.monotonic() < deadline, [s.frames for s in subs[:owners]]
                await asyncio.sleep(0.05)
            cpu_with.append((cpu_s(server) - cpu) * 1000 / n)
            # Delivery rate: every subscriber's events over the time they arrived in.
            frames = sum(s.frames for s in subs)
            window = max(s.last_at for s in subs) - min(s.first_at for s in subs[:owners])
            events_per_s.append(frames / window)
            profile: dict[int, list[float]] = {}
            first = min((t for sub in subs for t, _ in sub.timeline), default=0.0)
            for sub in subs:
                lags.extend(sub.lags_ms)
                later.extend(sub.lags_ms[len(sub.lags_ms) // 2 :])
                for t, lag in sub.timeline:
                    profile.setdefault(int((t - first) / 1000), []).append(lag)
            print(
                "lag by second (max ms): "
                + " ".join(f"{k}s:{max(v):.0f}" for k, v in sorted(profile.items())),
                flush=True,
            )
            for sub in subs:
                assert sub.task is not None
                sub.task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await sub.task
            await remove(client, job_id)
            print(
                f"round {round_}: {args.subscribers} subscribers ({owners} following the"
                f" job): {with_subs[-1]:.0f} tasks/s, {events_per_s[-1]:.0f} events/s"
                f" delivered",
                flush=True,
            )
    lags.sort()
    later.sort()
    return {
        "p99_second_half": later[int(0.99 * (len(later) - 1))] if later else float("nan"),
        "tasks_per_s_0": statistics.median(without),
        "tasks_per_s_n": statistics.median(with_subs),
        "events_per_s": statistics.median(events_per_s),
        "p99": lags[int(0.99 * (len(lags) - 1))] if lags else float("nan"),
        "cpu_0": statistics.median(cpu_without),
        "cpu_n": statistics.median(cpu_with),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--small", action="store_true", help="2,000 tasks instead of 10,000")
    parser.add_argument("--subscribers", type=int, default=200)
    parser.add_argument("--owner-subscribers", type=int, default=10)
    parser.add_argument("--workers", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--dir", default="/tmp")
    args = parser.parse_args()
    server = LiveServer(
        "ss-fanout-",
        {"nb_of_workers": str(args.workers)},
        "bench",
        "pw",
        admin=False,
        more_users={"watcher": "pw"},
        folder=args.dir,
    )
    try:
        server.start()
        result = asyncio.run(measure(args, server))
    finally:
        server.stop()
    print(
        orjson.dumps(
            {
                "benchmark": "events_fanout",
                "tasks_per_s_0": round(result["tasks_per_s_0"], 1),
                "tasks_per_s_200": round(result["tasks_per_s_n"], 1),
                "ratio": round(result["tasks_per_s_n"] / result["tasks_per_s_0"], 3),
                "events_per_s": round(result["events_per_s"], 1),
                "p99_event_lag_ms": round(result["p99"], 1),
                "p99_event_lag_ms_second_half": round(result["p99_second_half"], 1),
                "server_cpu_ms_per_task_0": round(result["cpu_0"], 3),
                "server_cpu_ms_per_task_200": round(result["cpu_n"], 3),
                "subscribers": args.subscribers,
                "owner_subscribers": min(args.owner_subscribers, args.subscribers),
                "tasks": 2000 if args.small else 10_000,
            }
        ).decode()
    )


if __name__ == "__main__":
    main()
