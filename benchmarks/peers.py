"""Peers: the same work through our server and through task-spooler, GNU parallel, Slurm.

What a user feels, measured end to end and side by side (issue 13). Our server is driven
over REST as a user would (login, multipart submit of a job descriptor to
`/rest/scheduler/submit`, poll `/rest/scheduler/jobs/{id}/info` until FINISHED) through one
persistent httpx connection; the peers through their own command lines from bash, as a
user's script would:

- task-spooler: `tsp -S 10` on a private `TS_SOCKET`; one `tsp /bin/true` per task, a
  chain with `tsp -d`, submit-and-wait as `id=$(tsp /bin/true); tsp -w $id`;
- GNU parallel: `parallel -j10 --joblog FILE --results DIR /bin/true :::: ARGS`
  (independent tasks only: it has no dependencies and no queue to submit to);
- Slurm, when `sbatch` answers (`--start-slurm` runs `.ci/slurm-up.sh` first):
  `sbatch --wrap /bin/true` per task, a chain with `--dependency=afterok:PREV`,
  submit-and-wait as `sbatch` then `squeue -j ID` every 50 ms (`sbatch --wait` polls every
  2 s). Slurm schedules in 1 s ticks, so it runs smaller cases (`--slurm-tasks`,
  `--slurm-chain`, `--slurm-jobs`); its figures are per task all the same.

Cases: N independent `/bin/true` tasks (tasks/s, from before the first submit to all seen
finished); a chain of C dependent tasks (ms per edge = that wall time / C: each edge is one
task's run plus the hand-off to the next); J one-task jobs submitted and waited for one
after another (median ms from the submit to FINISHED seen, and for our server the submit
request alone, `submit_ms`). Our server runs with 10 workers, like `-S 10` and `-j10`.

The machine is shared and noisy, so every round runs every case on every peer, the peers'
order rotating between rounds, and ratios are the median of the per-round ratios. A peer
that is not installed or does not answer is reported as skipped (null in the JSON).
Install the peers on Debian: `apt-get install task-spooler parallel slurm-wlm munge`.

    .venv/bin/python benchmarks/peers.py [--rounds 3] [--quick] [--start-slurm] [--skip slurm]

Last line, one JSON object: {"benchmark": "peers", "tasks_per_s", "tsp_tasks_per_s",
"parallel_tasks_per_s", "ratio_vs_tsp", "chain_ms_per_edge", "tsp_chain_ms_per_edge",
"chain_ratio_vs_tsp", "one_task_ms", "tsp_one_task_ms", "submit_ms"}.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import httpx
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import MARKER, LiveServer, job_xml, native_task

REPO = Path(__file__).resolve().parent.parent
TERMINAL = {"FINISHED", "CANCELED", "FAILED", "KILLED"}
SLOTS = 10
LONG_POLL_S = 0.01  # polling a 1 s case every 10 ms costs the server little and errs < 1%

INDEPENDENT, CHAIN, ONE_TASK = "independent", "chain", "one-task"


class PeerFailed(RuntimeError):
    """A peer did the work wrongly (a task failed, a chain broke): its figure is void."""


def bash(script: str, *args: str, env: dict[str, str], cwd: Path, timeout: float = 900) -> str:
    """Run a bash script as a user's shell would; its stdout, or PeerFailed with stderr."""
    done = subprocess.run(
        ["bash", "-c", script, "bash", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if done.returncode != 0:
        raise PeerFailed(f"exit {done.returncode}: {done.stderr.strip()[-500:]}")
    return done.stdout


class Peer:
    """One system under test; a case it cannot express returns None."""

    name = "peer"
    label = ""  # printed beside the name (e.g. Slurm's smaller sizes)

    def independent(self, n: int) -> tuple[int, float] | None:
        """(tasks, seconds) from the first submission to all `n` tasks seen finished."""
        return None

    def chain(self, n: int) -> tuple[int, float] | None:
        """(tasks, seconds) from the first submission to the last chained task finished."""
        return None

    def one_task(self, k: int) -> tuple[list[float], list[float]] | None:
        """Per job: ms submit -> finished seen, and ms of the submission alone (if known)."""
        return None

    def close(self) -> None:
        """Stop whatever the peer started."""


class ServerPeer(Peer):
    """Our server, over REST only, on one persistent connection."""

    name = "simple-scheduler"

    def __init__(self, poll_s: float) -> None:
        self.poll_s = poll_s
        self.server = LiveServer("ss-peers-", {"nb_of_workers": str(SLOTS), "kill_grace_s": "1"})
        self.server.start()
        self.client = httpx.Client(base_url=f"{self.server.base}/rest/scheduler", timeout=120)
        login = self.client.post(
            "/login", data={"username": self.server.user, "password": self.server.password}
        )
        login.raise_for_status()
        self.client.headers["sessionid"] = login.text.strip()

    def submit(self, xml: bytes) -> int:
        answer = self.client.post("/submit", files={"file": ("job.xml", xml, "application/xml")})
        if answer.status_code != 200:
            raise PeerFailed(f"submit answered {answer.status_code}: {answer.text[:300]}")
        return int(answer.json()["id"])

    def wait(self, job_id: int, n: int, poll_s: float) -> None:
        while True:
            info = self.client.get(f"/jobs/{job_id}/info").json()
            if info["status"] in TERMINAL:
                break
            time.sleep(poll_s)
        bad = info["numberOfFailedTasks"] + info["numberOfFaultyTasks"]
        if info["status"] != "FINISHED" or info["numberOfFinishedTasks"] != n or bad:
            raise PeerFailed(f"job {job_id} ended {info['status']}: {info}")

    def independent(self, n: int) -> tuple[int, float]:
        xml = job_xml("independent", [native_task(f"t{i}") for i in range(n)])
        start = time.perf_counter()
        self.wait(self.submit(xml), n, LONG_POLL_S)
        return n, time.perf_counter() - start

    def chain(self, n: int) -> tuple[int, float]:
        tasks = [native_task(f"t{i}", depends=f"t{i - 1}" if i else None) for i in range(n)]
        xml = job_xml("chain", tasks)
        start = time.perf_counter()
        self.wait(self.submit(xml), n, LONG_POLL_S)
        return n, time.perf_counter() - start

    def one_task(self, k: int) -> tuple[list[float], list[float]]:
        xml = job_xml("one", [native_task("t0")])
        total, submit = [], []
        for _ in range(k):
            start = time.perf_counter()
            job_id = self.submit(xml)
            submitted = time.perf_counter()
            self.wait(job_id, 1, self.poll_s)
            end = time.perf_counter()
            total.append((end - start) * 1000)
            submit.append((submitted - start) * 1000)
        return total, submit

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.client.close()
        self.server.stop()


class TspPeer(Peer):
    """task-spooler with 10 slots on a private socket; outputs kept like ours."""

    name = "task-spooler"

    def __init__(self, root: Path, env: dict[str, str]) -> None:
        self.root = root / "tsp"
        (self.root / "out").mkdir(parents=True)
        self.env = dict(
            env,
            TS_SOCKET=str(self.root / "tsp.sock"),
            TMPDIR=str(self.root / "out"),  # where tsp keeps each job's output file
            TS_SLOTS=str(SLOTS),
            TS_MAXFINISHED="1000000",
            TS_MAXCONN="10000",
        )
        self.sh(f"tsp -S {SLOTS}")

    def sh(self, script: str, *args: str) -> str:
        return bash(script, *args, env=self.env, cwd=self.root)

    def listing(self) -> list[list[str]]:
        lines = self.sh("tsp -l").splitlines()[1:]
        return [line.split() for line in lines if line.strip()]

    def settle(self, n: int) -> None:
        """Wait until nothing is queued or running, then check `n` tasks exited 0."""
        while True:
            rows = self.listing()
            if not any(row[1] in ("queued", "running", "allocating") for row in rows):
                break
            time.sleep(LONG_POLL_S)
        ok = sum(1 for row in rows if row[1] == "finished" and row[3] == "0")
        if ok != n:
            raise PeerFailed(f"{ok} of {n} tsp jobs finished with exit 0")

    def independent(self, n: int) -> tuple[int, float]:
        self.sh("tsp -C")
        start = time.perf_counter()
        self.sh(
            "for ((i = 1; i < $1; i++)); do tsp /bin/true >/dev/null; done; "
            'tsp -w "$(tsp /bin/true)"',
            str(n),
        )
        self.settle(n)
        return n, time.perf_counter() - start

    def chain(self, n: int) -> tuple[int, float]:
        self.sh("tsp -C")
        start = time.perf_counter()
        self.sh(
            "tsp /bin/true >/dev/null; "
            "for ((i = 2; i < $1; i++)); do tsp -d /bin/true >/dev/null; done; "
            'tsp -w "$(tsp -d /bin/true)"',
            str(n),
        )
        elapsed = time.perf_counter() - start
        self.settle(n)
        return n, elapsed

    def one_task(self, k: int) -> tuple[list[float], list[float]]:
        self.sh("tsp -C")
        out = self.sh(
            "for ((i = 0; i < $1; i++)); do s=$EPOCHREALTIME; id=$(tsp /bin/true); "
            'm=$EPOCHREALTIME; tsp -w "$id" >/dev/null || exit 1; echo "$s $m $EPOCHREALTIME"; '
            "done",
            str(k),
        )
        total, submit = [], []
        for line in out.splitlines():
            s, m, e = (float(x) for x in line.split())
            total.append((e - s) * 1000)
            submit.append((m - s) * 1000)
        return total, submit

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.sh("tsp -K")


class ParallelPeer(Peer):
    """GNU parallel, 10 at a time, a job log and one results folder per task."""

    name = "GNU parallel"

    def __init__(self, root: Path, env: dict[str, str]) -> None:
        self.root = root / "parallel"
        self.root.mkdir()
        self.env = env
        self.runs = 0

    def independent(self, n: int) -> tuple[int, float]:
        self.runs += 1
        run = self.root / str(self.runs)
        run.mkdir()
        (run / "args").write_text("".join(f"{i}\n" for i in range(n)))
        start = time.perf_counter()
        bash(
            f"parallel --will-cite -j{SLOTS} --joblog joblog --results results /bin/true :::: args",
            env=self.env,
            cwd=run,
        )
        elapsed = time.perf_counter() - start
        rows = (run / "joblog").read_text().splitlines()[1:]
        ok = sum(1 for row in rows if row.split("\t")[6] == "0")
        if ok != n:
            raise PeerFailed(f"{ok} of {n} parallel jobs exited 0")
        return n, elapsed


class SlurmPeer(Peer):
    """Slurm through sbatch/squeue; each case run under its own job name."""

    name = "Slurm"

    def __init__(self, root: Path, env: dict[str, str], sizes: dict[str, int]) -> None:
        self.root = root / "slurm"
        (self.root / "out").mkdir(parents=True)  # -o/-e folders must exist beforehand
        self.env = env
        self.sizes = sizes
        self.prefix = f"ssb-{uuid.uuid4().hex[:8]}"
        self.names: list[str] = []
        self.label = f"(N={sizes[INDEPENDENT]}, C={sizes[CHAIN]}, J={sizes[ONE_TASK]})"
        self.sbatch = '-J "$2" -o out/%j.out -e out/%j.err'

    def new_name(self) -> str:
        self.names.append(f"{self.prefix}-{len(self.names)}")
        return self.names[-1]

    def sh(self, script: str, *args: str) -> str:
        return bash(script, *args, env=self.env, cwd=self.root)

    def settle(self, name: str, n: int) -> None:
        """Wait until no job of `name` is pending or running; check `n` COMPLETED."""
        while self.sh('squeue -h -n "$1" -o %i', name).strip():
            time.sleep(0.05)
        states = self.sh('squeue -h -t all -n "$1" -o %T', name).split()
        if states.count("COMPLETED") != n:
            raise PeerFailed(f"Slurm jobs {name}: {sorted(states)[:5]}... of {n}")

    def independent(self, n: int) -> tuple[int, float]:
        n, name = min(n, self.sizes[INDEPENDENT]), self.new_name()
        start = time.perf_counter()
        self.sh(
            f"for ((i = 0; i < $1; i++)); do sbatch --parsable {self.sbatch} --wrap /bin/true "
            ">/dev/null || exit 1; done",
            str(n),
            name,
        )
        self.settle(name, n)
        return n, time.perf_counter() - start

    def chain(self, n: int) -> tuple[int, float]:
        n, name = min(n, self.sizes[CHAIN]), self.new_name()
        start = time.perf_counter()
        self.sh(
            f"prev=$(sbatch --parsable {self.sbatch} --wrap /bin/true) || exit 1; "
            "for ((i = 1; i < $1; i++)); do "
            f"prev=$(sbatch --parsable {self.sbatch} --dependency=afterok:${{prev%%;*}} "
            "--kill-on-invalid-dep=yes --wrap /bin/true) || exit 1; done",
            str(n),
            name,
        )
        self.settle(name, n)
        return n, time.perf_counter() - start

    def one_task(self, k: int) -> tuple[list[float], list[float]]:
        """Submit, then poll `squeue` every 50 ms as a script would (`sbatch --wait` polls
        every 2 s, which would measure its own pause rather than Slurm)."""
        k, name = min(k, self.sizes[ONE_TASK]), self.new_name()
        out = self.sh(
            "for ((i = 0; i < $1; i++)); do s=$EPOCHREALTIME; "
            f"id=$(sbatch --parsable {self.sbatch} --wrap /bin/true) || exit 1; "
            "m=$EPOCHREALTIME; id=${id%%;*}; "
            'while st=$(squeue -h -j "$id" -t all -o %T); [ "$st" != COMPLETED ]; do '
            'case "$st" in PENDING|CONFIGURING|RUNNING|COMPLETING|"") sleep 0.05;; '
            '*) echo "job $id: $st" >&2; exit 1;; esac; done; '
            'echo "$s $m $EPOCHREALTIME"; done',
            str(k),
            name,
        )
        total, submit = [], []
        for line in out.splitlines():
            s, m, e = (float(x) for x in line.split())
            total.append((e - s) * 1000)
            submit.append((m - s) * 1000)
        return total, submit

    def close(self) -> None:
        for name in self.names:
            with contextlib.suppress(Exception):
                self.sh('scancel -n "$1"', name)


def slurm_answers(env: dict[str, str]) -> str | None:
    """None when `sbatch` can be used now, else why not."""
    if shutil.which("sbatch") is None or shutil.which("sinfo") is None:
        return "sbatch not installed (apt-get install slurm-wlm munge)"
    try:
        states = subprocess.run(
            ["sinfo", "-h", "-o", "%t"], env=env, capture_output=True, text=True, timeout=5
        )
    except subprocess.TimeoutExpired:
        return "sinfo does not answer"
    if states.returncode != 0:
        first = (states.stderr.strip().splitlines() or ["?"])[0][:120]
        return f"no Slurm controller answers ({first}); see .ci/slurm-up.sh"
    if not any(s.startswith(("idle", "mix", "alloc", "comp")) for s in states.stdout.split()):
        return f"no usable Slurm node (sinfo: {states.stdout.strip()})"
    return None


def median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def rnd(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(value, digits)


def fmt(value: float | None, width: int, digits: int) -> str:
    return ("-" if value is None else f"{value:.{digits}f}").rjust(width)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="1 round, smaller cases")
    parser.add_argument("--tasks", type=int, default=1000, help="independent tasks")
    parser.add_argument("--chain", type=int, default=200, help="chained tasks")
    parser.add_argument("--jobs", type=int, default=30, help="one-task jobs in sequence")
    parser.add_argument("--slurm-tasks", type=int, default=100)
    parser.add_argument("--slurm-chain", type=int, default=20)
    parser.add_argument("--slurm-jobs", type=int, default=5)
    parser.add_argument(
        "--poll-ms", type=float, default=2.0, help="info polling interval for one-task jobs"
    )
    parser.add_argument(
        "--start-slurm", action="store_true", help="run .ci/slurm-up.sh (and down at the end)"
    )
    parser.add_argument(
        "--skip",
        action="append",
        default=[],
        choices=["tsp", "parallel", "slurm"],
        help="leave a peer out (repeatable): quicker A/B runs of our server",
    )
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.tasks, args.chain, args.jobs = 1, 200, 50, 10
        args.slurm_tasks, args.slurm_chain, args.slurm_jobs = 20, 5, 3
    if args.chain < 2:
        parser.error("--chain must be at least 2")

    root = Path(tempfile.mkdtemp(prefix="ss-peers-", dir="/tmp"))
    run_id = f"peers-{uuid.uuid4().hex}"
    env = dict(os.environ, LC_ALL="C", **{MARKER: run_id})  # C: EPOCHREALTIME has a dot
    started_slurm = False
    peers: list[Peer] = []
    skipped: dict[str, str] = {}
    try:
        peers.append(ServerPeer(args.poll_ms / 1000))
        if "tsp" in args.skip:
            skipped["task-spooler"] = "--skip tsp"
        elif shutil.which("tsp") is None:
            skipped["task-spooler"] = "tsp not installed (apt-get install task-spooler)"
        else:
            peers.append(TspPeer(root, env))
        if "parallel" in args.skip:
            skipped["GNU parallel"] = "--skip parallel"
        elif shutil.which("parallel") is None:
            skipped["GNU parallel"] = "parallel not installed (apt-get install parallel)"
        else:
            peers.append(ParallelPeer(root, env))
        if args.start_slurm and "slurm" not in args.skip and slurm_answers(env) is not None:
            subprocess.run([str(REPO / ".ci" / "slurm-up.sh")], check=True)
            started_slurm = True
        why = "--skip slurm" if "slurm" in args.skip else slurm_answers(env)
        if why is None:
            sizes = {
                INDEPENDENT: args.slurm_tasks,
                CHAIN: args.slurm_chain,
                ONE_TASK: args.slurm_jobs,
            }
            peers.append(SlurmPeer(root, env, sizes))
        else:
            skipped["Slurm"] = why

        # Warm-up: one small piece of each case, which also proves each peer works.
        for peer in list(peers):
            try:
                peer.independent(10)
                peer.chain(3)
                peer.one_task(1)
            except (PeerFailed, OSError, subprocess.SubprocessError, httpx.HTTPError) as exc:
                if isinstance(peer, ServerPeer):
                    raise
                skipped[peer.name] = f"failed its warm-up: {exc}"
                peer.close()
                peers.remove(peer)
        for name, why in skipped.items():
            print(f"skipped {name}: {why}", flush=True)
        print(
            f"{args.rounds} round(s): {args.tasks} independent tasks, a chain of {args.chain}, "
            f"{args.jobs} one-task jobs; {SLOTS} slots everywhere",
            flush=True,
        )

        rate: dict[str, list[float]] = defaultdict(list)  # tasks/s per round
        edge: dict[str, list[float]] = defaultdict(list)  # ms per edge per round
        one: dict[str, list[float]] = defaultdict(list)  # ms per job, all rounds
        submit: dict[str, list[float]] = defaultdict(list)
        rate_ratio: list[float] = []
        chain_ratio: list[float] = []

        def run_independent(peer: Peer) -> None:
            result = peer.independent(args.tasks)
            if result is None:
                return
            n, seconds = result
            rate[peer.name].append(n / seconds)
            print(f"  {INDEPENDENT:<12} {peer.name:<17} {rate[peer.name][-1]:9.1f} tasks/s")

        def run_chain(peer: Peer) -> None:
            result = peer.chain(args.chain)
            if result is None:
                return
            n, seconds = result
            ms = seconds * 1000 / n
            edge[peer.name].append(ms)
            print(f"  {CHAIN:<12} {peer.name:<17} {ms:9.2f} ms per edge")

        def run_one(peer: Peer) -> None:
            result = peer.one_task(args.jobs)
            if result is None:
                return
            total, sub = result
            one[peer.name] += total
            submit[peer.name] += sub
            extra = f", submit {statistics.median(sub):.2f} ms" if sub else ""
            print(
                f"  {ONE_TASK:<12} {peer.name:<17} {statistics.median(total):9.2f} ms"
                f" (median of {len(total)}){extra}"
            )

        cases: list[Callable[[Peer], None]] = [run_independent, run_chain, run_one]
        ours, tsp = ServerPeer.name, TspPeer.name
        for r in range(args.rounds):
            print(f"round {r + 1}", flush=True)
            order = peers[r % len(peers) :] + peers[: r % len(peers)]
            for run_case in cases:
                for peer in order:
                    run_case(peer)
                    sys.stdout.flush()
            if tsp in rate and len(rate[tsp]) == r + 1:
                rate_ratio.append(rate[ours][-1] / rate[tsp][-1])
                chain_ratio.append(edge[ours][-1] / edge[tsp][-1])

        print()
        print(f"{'peer':<36} {'tasks/s':>9} {'ms/edge':>9} {'one-task ms':>12} {'submit ms':>10}")
        for peer in peers:
            print(
                f"{(peer.name + ' ' + peer.label).strip():<36}"
                f" {fmt(median(rate[peer.name]), 9, 0)}"
                f" {fmt(median(edge[peer.name]), 9, 2)}"
                f" {fmt(median(one[peer.name]), 12, 2)}"
                f" {fmt(median(submit[peer.name]), 10, 2)}"
            )
        if rate_ratio:
            print(
                f"vs task-spooler (median of per-round ratios): throughput "
                f"{statistics.median(rate_ratio):.2f} (target >= 1.8), chain "
                f"{statistics.median(chain_ratio):.2f} (target <= 0.6); one-task "
                f"{median(one[ours]):.1f} ms (target <= 10), submit "
                f"{median(submit[ours]):.1f} ms (target <= 5)"
            )
        print(
            json.dumps(
                {
                    "benchmark": "peers",
                    "tasks_per_s": rnd(median(rate[ours]), 1),
                    "tsp_tasks_per_s": rnd(median(rate[tsp]), 1),
                    "parallel_tasks_per_s": rnd(median(rate[ParallelPeer.name]), 1),
                    "ratio_vs_tsp": rnd(median(rate_ratio), 3),
                    "chain_ms_per_edge": rnd(median(edge[ours])),
                    "tsp_chain_ms_per_edge": rnd(median(edge[tsp])),
                    "chain_ratio_vs_tsp": rnd(median(chain_ratio), 3),
                    "one_task_ms": rnd(median(one[ours])),
                    "tsp_one_task_ms": rnd(median(one[tsp])),
                    "submit_ms": rnd(median(submit[ours])),
                }
            )
        )
    finally:
        for peer in peers:
            with contextlib.suppress(Exception):
                peer.close()
        if started_slurm:
            subprocess.run([str(REPO / ".ci" / "slurm-down.sh")], check=False)
        leftovers = []
        for proc in psutil.process_iter():  # tsp's and parallel's children, if any remain
            with contextlib.suppress(psutil.Error):
                if proc.pid != os.getpid() and proc.environ().get(MARKER) == run_id:
                    proc.kill()
                    leftovers.append(proc)
        psutil.wait_procs(leftovers, timeout=2)
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
