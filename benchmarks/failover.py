"""Failover: a standby taking over from a SIGKILLed leader vs restarting the same server.

Two `run-server`s share a PostgreSQL database, a process directory and the key files,
with the Slurm backend; one Slurm task runs throughout (every new leader adopts it).
Each round, alternately:

- takeover: SIGKILL the leader while the standby runs; time until the standby's
  `/rest/health` says `"role": "leader"` (it took the lock, adopted the Slurm jobs and
  schedules);
- restart (the baseline, what a single server gets from systemd, less `RestartSec`):
  SIGKILL the (now sole) leader and start it again; time until it answers as leader.

The killed server then comes back as the next standby. `ratio` is restart / takeover
(how many times faster the standby is). Needs a live Slurm (`.ci/slurm-up.sh`); the
PostgreSQL is a private one (`tests/pgserver.py`) unless --database-url names an empty
database. Last line, one JSON object:
{"benchmark": "failover", "rounds", "takeover_s", "takeover_max_s", "restart_s", "ratio"}.

    .venv/bin/python benchmarks/failover.py [--rounds 5] [--database-url URL]
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from harness import LiveServer

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))


def role(server: LiveServer) -> str | None:
    try:
        with urllib.request.urlopen(f"{server.base}/rest/health", timeout=1) as response:
            return str(json.loads(response.read())["role"])
    except OSError:
        return None


def until_leader(server: LiveServer, since: float, timeout: float = 60.0) -> float:
    """Seconds from `since` until `server` answers as the leader."""
    while role(server) != "leader":
        if time.monotonic() - since > timeout:
            raise SystemExit(f"no leader after {timeout} s; see {server.log_path}")
        time.sleep(0.02)
    return time.monotonic() - since


def kill(server: LiveServer) -> None:
    assert server.proc is not None
    server.proc.send_signal(signal.SIGKILL)
    server.proc.wait(20)


def slurm_jobs_under(root: Path) -> list[str]:
    out = subprocess.run(
        ["squeue", "--me", "-h", "-o", "%i|%o"], capture_output=True, text=True
    ).stdout
    return [i for i, _, o in (line.partition("|") for line in out.splitlines())
            if o.startswith(str(root))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--database-url", default="")
    args = parser.parse_args()

    pg = None
    url = args.database_url
    if not url:
        from pgserver import start_server

        pg = start_server()
        url = pg.new_database()
    shared = Path(tempfile.mkdtemp(prefix="ss-failover-"))
    settings = {
        "database_url": url,
        "execution_backend": "slurm",
        "nb_of_workers": "0",
        "slurm_poll_interval_s": "0.2",
        "process_directory": str(shared / "tasks"),
        "private_key_path": str(shared / "keys" / "private.pem"),
        "public_key_path": str(shared / "keys" / "public.pem"),
    }
    a = LiveServer("ss-failover-a-", settings)
    b = LiveServer("ss-failover-b-", settings)
    b.users = []  # the store is shared: the user exists once a has made it
    takeovers: list[float] = []
    restarts: list[float] = []
    try:
        a.start()
        a.users = []
        b.start()
        leader, standby = a, b
        token = leader.login()
        flag = shared / "stop"
        task = (
            '<task name="long"><scriptExecutable><script><code language="bash">'
            f"while [ ! -e {flag} ]; do sleep 0.2; done"
            "</code></script></scriptExecutable></task>"
        )
        xml = (
            '<job xmlns="urn:proactive:jobdescriptor:3.14" name="failover">'
            f"<taskFlow>{task}</taskFlow></job>"
        ).encode()
        boundary = "ssfailover"
        body = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
            f'filename="job.xml"\r\nContent-Type: application/xml\r\n\r\n'
        ).encode() + xml + f"\r\n--{boundary}--\r\n".encode()
        leader.request(
            "POST",
            "/scheduler/submit",
            body,
            {"sessionid": token, "Content-Type": f"multipart/form-data; boundary={boundary}"},
        )
        deadline = time.monotonic() + 60
        while not slurm_jobs_under(shared):
            if time.monotonic() > deadline:
                raise SystemExit("the task never reached Slurm")
            time.sleep(0.1)
        for _ in range(args.rounds):
            # Takeover: the standby is up when the leader dies.
            killed = time.monotonic()
            kill(leader)
            takeovers.append(until_leader(standby, killed))
            leader, standby = standby, leader
            # Restart: nobody stands by; the same server starts again.
            killed = time.monotonic()
            kill(leader)
            leader.start()
            restarts.append(until_leader(leader, killed))
            standby.start()  # the server killed at the takeover comes back as standby
            while role(standby) != "standby":
                time.sleep(0.05)
        flag.touch()
    finally:
        for job in slurm_jobs_under(shared):
            subprocess.run(["scancel", job], capture_output=True)
        a.stop()
        b.stop()
        shutil.rmtree(shared, ignore_errors=True)
        if pg is not None:
            pg.stop()
    takeover, restart = statistics.median(takeovers), statistics.median(restarts)
    print(f"takeover: {' '.join(f'{t:.2f}' for t in takeovers)} s")
    print(f"restart:  {' '.join(f'{t:.2f}' for t in restarts)} s")
    print(
        json.dumps(
            {
                "benchmark": "failover",
                "rounds": args.rounds,
                "takeover_s": round(takeover, 3),
                "takeover_max_s": round(max(takeovers), 3),
                "restart_s": round(restart, 3),
                "ratio": round(restart / takeover, 2),
            }
        )
    )


if __name__ == "__main__":
    main()
