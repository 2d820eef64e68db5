"""A/B of source trees: one server per tree, all up at once, their cases alternated.

On a shared machine two runs a minute apart see different neighbours; servers that run
side by side, taking turns case by case (the order flips every round), see the same
ones. Each tree is a `src` folder (e.g. `git archive <commit> | tar -x -C /tmp/old`, its
extension built with `setup.py build_ext --inplace`, and `migrations` linked into
`src/simple_scheduler/`), put first on the server's PYTHONPATH; the first tree is the
baseline. Cases as in `peers.py`: N independent `/bin/true` tasks (tasks/s), a chain of
C (ms per edge), J one-task jobs (median ms, and the submit alone). Where a cgroup v2
hierarchy is writable, each server runs in a folder of its own, and its CPU per
independent task (all its processes: web, hypervisor, fork server, monitors, tasks)
comes from that folder's `cpu.stat`: much steadier than rates on a loaded machine.

    .venv/bin/python benchmarks/servers_ab.py /tmp/old/src src [--rounds 6]
        [--tasks 1000] [--chain 200] [--jobs 20]

Last line, one JSON object: per tree its medians, and per other tree the median of the
per-round ratios to the baseline ("ratio": {"tasks_per_s", "chain_ms_per_edge", ...}).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from peers import ServerPeer


def cgroup_root() -> str | None:
    """The cgroup v2 mount where we sit at its root and may make folders, else None."""
    with contextlib.suppress(OSError), open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            if "-" in fields and fields[fields.index("-") + 1] == "cgroup2":
                root = fields[4]
                return root if os.access(os.path.join(root, "cgroup.procs"), os.W_OK) else None
    return None


def usage_us(folder: str) -> int:
    with open(os.path.join(folder, "cpu.stat")) as f:
        return int(f.readline().split()[1])  # usage_usec


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("trees", nargs="+", help="src folders; the first is the baseline")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--chain", type=int, default=200)
    parser.add_argument("--jobs", type=int, default=20)
    args = parser.parse_args()
    trees = [str(Path(t).resolve()) for t in args.trees]
    root = cgroup_root()
    folders: list[str | None] = []
    servers: list[ServerPeer] = []
    figures: dict[str, dict[str, list[float]]] = {t: {} for t in trees}
    try:
        for i, tree in enumerate(trees):
            folder = None
            if root is not None:
                folder = os.path.join(root, f"ss-ab-{os.getpid()}-{i}")
                os.mkdir(folder)
                with open(os.path.join(folder, "cgroup.procs"), "w") as f:
                    f.write("0")  # the server we start now, and all it forks, count here
            folders.append(folder)
            os.environ["PYTHONPATH"] = tree
            try:
                servers.append(ServerPeer(0.002))
            finally:
                del os.environ["PYTHONPATH"]
                if root is not None:
                    with open(os.path.join(root, "cgroup.procs"), "w") as f:
                        f.write("0")
        for r in range(args.rounds):
            order = list(zip(trees, servers, folders, strict=True))
            if r % 2:
                order.reverse()
            for tree, server, folder in order:
                got = figures[tree]
                if args.tasks:
                    before = usage_us(folder) if folder else 0
                    n, seconds = server.independent(args.tasks)
                    got.setdefault("tasks_per_s", []).append(n / seconds)
                    if folder:
                        cpu_ms = (usage_us(folder) - before) / 1000 / n
                        got.setdefault("cpu_ms_per_task", []).append(cpu_ms)
            for tree, server, _ in order:
                if args.chain:
                    n, seconds = server.chain(args.chain)
                    figures[tree].setdefault("chain_ms_per_edge", []).append(seconds / n * 1000)
            for tree, server, _ in order:
                if args.jobs:
                    total, submit = server.one_task(args.jobs)
                    figures[tree].setdefault("one_task_ms", []).append(statistics.median(total))
                    figures[tree].setdefault("submit_ms", []).append(statistics.median(submit))
            line = "  ".join(
                f"{Path(t).parent.name}: "
                + ", ".join(f"{k} {v[-1]:.2f}" for k, v in figures[t].items())
                for t in trees
            )
            print(f"round {r + 1} (load {os.getloadavg()[0]:.1f}) {line}", flush=True)
    finally:
        for server in servers:
            server.close()
        for folder in folders:
            deadline = time.monotonic() + 10  # the servers' last processes are exiting
            while folder is not None:
                try:
                    os.rmdir(folder)
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        print(f"left behind: {folder}", file=sys.stderr)
                        break
                    time.sleep(0.05)
    base = figures[trees[0]]
    result: dict[str, object] = {"benchmark": "servers_ab", "baseline": trees[0]}
    for tree in trees:
        entry: dict[str, object] = {
            k: round(statistics.median(v), 3) for k, v in figures[tree].items()
        }
        if tree != trees[0]:
            entry["ratio"] = {
                k: round(statistics.median(x / b for x, b in zip(v, base[k], strict=True)), 3)
                for k, v in figures[tree].items()
            }
        result[tree] = entry
        print(tree, entry)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
