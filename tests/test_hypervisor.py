"""The hypervisor, fork server, monitor and task, with real processes end to end."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import struct
import sys
import time
from pathlib import Path

import pytest
from harness import (
    Hypervisor,
    children_zombies,
    wait_final,
    wait_for,
    wait_for_async,
    wait_started,
)

from simple_scheduler.execution import protocol, taskdir
from simple_scheduler.execution.backend import BackendError, Exited, Lost, Started
from simple_scheduler.execution.client import HypervisorClient
from simple_scheduler.hypervisor.journal import LiveEntry, LiveJournal
from simple_scheduler.hypervisor.records import Execution


def exited(event: object) -> Exited:
    assert isinstance(event, Exited), event
    return event


def test_exit_codes_and_signals(hypervisor: Hypervisor) -> None:
    specs = [hypervisor.spec(f"code{c}", ["sh", "-c", f"exit {c}"]) for c in (0, 1, 255)]
    specs.append(hypervisor.spec("kill9", ["sh", "-c", "kill -KILL $$"]))
    specs.append(hypervisor.spec("segv", ["sh", "-c", "kill -SEGV $$"]))
    done = hypervisor.run_tasks(specs)
    for code in (0, 1, 255):
        status = exited(done[f"code{code}"]).status
        assert (status.exit_code, status.signal, status.error) == (code, None, None)
        assert status.end_time >= status.start_time > 0
    assert exited(done["code0"]).status.ok
    kill9 = exited(done["kill9"]).status
    assert (kill9.exit_code, kill9.signal, kill9.core_dumped) == (None, 9, False)
    segv = exited(done["segv"]).status
    assert (segv.exit_code, segv.signal) == (None, 11)  # core flag: kernel-dependent
    # The status file agrees with the event.
    spec = specs[1]
    assert taskdir.read_status(spec.task_dir) == exited(done["code1"]).status


def test_outputs_large_and_binary(hypervisor: Hypervisor) -> None:
    big = 50 * 1024 * 1024
    blob = bytes(range(256)) * 4
    code = "import sys; sys.stdout.buffer.write(bytes(range(256)) * 4); sys.stderr.write('err\\n')"
    specs = [
        hypervisor.spec("big", ["head", "-c", str(big), "/dev/zero"]),
        hypervisor.spec("bin", [sys.executable, "-c", code]),
    ]
    done = hypervisor.run_tasks(specs)
    assert exited(done["big"]).status.ok and exited(done["bin"]).status.ok
    assert os.path.getsize(os.path.join(specs[0].task_dir, "stdout")) == big
    assert taskdir.read_output(specs[1].task_dir, "stdout") == blob
    assert taskdir.read_output(specs[1].task_dir, "stderr") == b"err\n"
    assert taskdir.read_output(specs[1].task_dir, "stdout", offset=1000) == blob[1000:]


def test_argv_env_cwd_verbatim(hypervisor: Hypervisor, short_tmp: Path) -> None:
    args = ["with space", "quote\"s'", "$HOME", "new\nline", "ünïcødé ✓", "", "--"]
    dump = "import json, os, sys; print(json.dumps([sys.argv[1:], dict(os.environ), os.getcwd()]))"
    workdir = os.path.join(short_tmp, "work dir")
    os.mkdir(workdir)
    env = {"FOO": "bar baz", "PATH": "/usr/bin:/bin", "EMPTY": ""}
    specs = [
        hypervisor.spec("argv", [sys.executable, "-c", dump, *args], env=env, cwd=workdir),
        hypervisor.spec("nocwd", [sys.executable, "-c", dump], env={}),
    ]
    done = hypervisor.run_tasks(specs)
    assert exited(done["argv"]).status.ok, taskdir.read_output(specs[0].task_dir, "stderr")
    got_args, got_env, got_cwd = json.loads(taskdir.read_output(specs[0].task_dir, "stdout"))
    assert got_args == args
    assert {k: v for k, v in got_env.items() if k != "LC_CTYPE"} == env
    assert got_cwd == workdir
    _, env2, cwd2 = json.loads(taskdir.read_output(specs[1].task_dir, "stdout"))
    assert cwd2 == specs[1].task_dir  # cwd=None: the task directory
    assert set(env2) <= {"LC_CTYPE"}


def test_exec_failures_are_could_not_start(hypervisor: Hypervisor, short_tmp: Path) -> None:
    noexec = os.path.join(short_tmp, "noexec")
    with open(noexec, "w") as f:
        f.write("#!/bin/sh\necho hi\n")
    os.chmod(noexec, 0o644)
    garbage = os.path.join(short_tmp, "garbage")
    with open(garbage, "wb") as f:
        f.write(b"\x7fELF-not-really" + bytes(64))
    os.chmod(garbage, 0o755)
    specs = [
        hypervisor.spec("enoent", ["/nonexistent/command"]),
        hypervisor.spec("enoent_path", ["no-such-command-anywhere"]),
        hypervisor.spec("eacces", [noexec]),
        hypervisor.spec("enoexec", [garbage]),
        hypervisor.spec("badcwd", ["true"], cwd=os.path.join(short_tmp, "missing")),
        hypervisor.spec("ran", ["sh", "-c", "exit 127"]),
    ]
    done = hypervisor.run_tasks(specs)
    errors = {k: exited(e).status.error for k, e in done.items()}
    assert errors["enoent"] == "could not start: exec: No such file or directory"
    assert errors["enoent_path"] == "could not start: exec: No such file or directory"
    assert errors["eacces"] == "could not start: exec: Permission denied"
    assert errors["enoexec"] == "could not start: exec: Exec format error"
    assert errors["badcwd"] == "could not start: chdir: No such file or directory"
    assert errors["ran"] is None and exited(done["ran"]).status.exit_code == 127
    assert exited(done["enoent"]).status.exit_code is None
    assert taskdir.read_status(specs[0].task_dir) == exited(done["enoent"]).status


def test_output_file_failure(hypervisor: Hypervisor) -> None:
    spec = hypervisor.spec("outdir", ["true"])
    os.makedirs(os.path.join(spec.task_dir, "stdout"))
    done = hypervisor.run_tasks([spec])
    assert exited(done["outdir"]).status.error == "could not start: open stdout: Is a directory"


def test_title_session_and_process_group(hypervisor: Hypervisor) -> None:
    async def go(client: HypervisorClient) -> None:
        await client.spawn(hypervisor.spec("t", ["sleep", "600"], job_id=42, task="Build it"))
        started = (await wait_started(client, {"t"}))["t"]
        [record] = [r for r in await client.list() if r.key == "t"]
        monitor = int(record.extra["monitor_pid"])
        with open(f"/proc/{monitor}/cmdline", "rb") as f:
            assert f.read() == b"simple-scheduler: monitor job 42 task Build it\0"
        with open(f"/proc/{monitor}/comm") as f:
            assert f.read().strip() == "ss-monitor"
        assert os.getsid(monitor) == monitor
        assert os.getpgid(started.pid) == started.pid
        assert os.getsid(started.pid) == monitor
        # Only 0-2 open in the task.
        assert sorted(os.listdir(f"/proc/{started.pid}/fd")) == ["0", "1", "2"]
        assert os.readlink(f"/proc/{started.pid}/fd/0") == "/dev/null"
        assert await client.kill("t", grace=1.0)
        status = exited((await wait_final(client, {"t"}))["t"]).status
        assert status.signal == signal.SIGTERM
        assert not await client.kill("t")

    hypervisor.run(go)


def group_members(pgid: int) -> list[int]:
    out = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == pgid and fields[0] != "Z":
                out.append(int(name))
    return out


def test_kill_leaves_no_process_behind(hypervisor: Hypervisor) -> None:
    async def go(client: HypervisorClient) -> None:
        await client.spawn(hypervisor.spec("tree", ["bash", "-c", "sleep 600 & sleep 600"]))
        pid = (await wait_started(client, {"tree"}))["tree"].pid

        async def members() -> list[int]:
            return group_members(pid)

        await wait_for_async(members, 5, "bash and its two sleeps")
        assert len(group_members(pid)) >= 3
        assert await client.kill("tree", grace=0.5)
        await wait_final(client, {"tree"})

        async def none_left() -> bool:
            return not group_members(pid)

        await wait_for_async(none_left, 5, "the whole group to be gone")
        assert group_members(pid) == []

    hypervisor.run(go)


def test_spawn_without_start_then_start_or_cancel(hypervisor: Hypervisor) -> None:
    async def go(client: HypervisorClient) -> None:
        await client.spawn(hypervisor.spec("later", ["sh", "-c", "echo ran"]), start=False)
        await client.spawn(hypervisor.spec("never", ["sh", "-c", "echo ran"]), start=False)

        async def monitors_up() -> bool:  # each waiting on its semaphore, not running
            return all(r.extra["monitor_pid"] != "0" for r in await client.list())

        await wait_for_async(monitors_up, 10, "both monitors forked")
        states = {r.key: r.state for r in await client.list()}
        assert states == {"later": "spawned", "never": "spawned"}
        await client.start("later")
        assert await client.kill("never")
        done = await wait_final(client, {"later", "never"})
        assert exited(done["later"]).status.ok
        assert exited(done["never"]).status.error == "could not start: cancelled before start"
        later = hypervisor.spec("later", [])
        assert taskdir.read_output(later.task_dir, "stdout") == b"ran\n"
        assert taskdir.read_output(hypervisor.spec("never", []).task_dir, "stdout") == b""
        with pytest.raises(BackendError, match="duplicate"):
            await client.spawn(hypervisor.spec("later", ["true"]))
        with pytest.raises(BackendError, match="unknown"):
            await client.start("nope")
        await client.release("later")
        await client.release("never")
        assert await client.list() == []
        assert not [n for n in os.listdir("/dev/shm") if n.startswith("sem.ss-")
                    and n.endswith(("-later", "-never"))]

    hypervisor.run(go)


def test_a_held_execution_makes_its_status_inode_while_it_waits(hypervisor: Hypervisor) -> None:
    """Held, the monitor creates `status.tmp` before the start (off the path from the
    task's end to its report); it becomes `status`, or first `pid` for a long task: one
    inode for both, nothing left over, and a cancelled one ends the same way."""
    short, long = hypervisor.spec("short", ["true"]), hypervisor.spec("long", ["sleep", "600"])
    never = hypervisor.spec("never", ["true"])

    async def go(client: HypervisorClient) -> None:
        for spec in (short, long, never):
            await client.spawn(spec, start=False)

        async def made() -> bool:
            held = (short, long, never)
            return all(os.path.exists(os.path.join(s.task_dir, "status.tmp")) for s in held)

        await wait_for_async(made, 10, "the held monitors' status files")
        assert [r.started for r in await client.list()] == [False] * 3
        await client.start("short")
        await client.start("long")
        assert await client.kill("never")
        done = await wait_final(client, {"short", "never"})
        await wait_for_async(lambda: _true(taskdir.read_pid(long.task_dir) is not None), 10, "pid")
        assert sorted(os.listdir(long.task_dir)) == ["pid", "stderr", "stdout"]
        assert {r.key: r.started for r in await client.list()} == {
            "short": True,
            "long": True,
            "never": False,
        }
        await client.kill("long", grace=5)
        done.update(await wait_final(client, {"long"}))
        assert exited(done["short"]).status.ok
        assert exited(done["long"]).status.signal == 15
        for spec in (short, long, never):
            files = ["status", "stderr", "stdout"] + (["cancel"] if spec is never else [])
            assert sorted(os.listdir(spec.task_dir)) == sorted(files), spec.key
            assert taskdir.read_status(spec.task_dir) == exited(done[spec.key]).status
        await client.release("short", "long", "never")

    hypervisor.run(go)


async def _true(value: bool) -> bool:
    return value


def test_many_spawns_no_zombie_no_fd_growth(hypervisor: Hypervisor) -> None:
    assert hypervisor.proc is not None
    hv_pid, fs_pid = hypervisor.proc.pid, hypervisor.fork_server_pid()

    def fds() -> int:
        return len(os.listdir(f"/proc/{hv_pid}/fd"))

    async def batch(client: HypervisorClient, prefix: str, n: int) -> int:
        """Run `n` tasks; the hypervisor's open fds after, with this one connection."""
        sem = asyncio.Semaphore(50)
        futures: dict[str, asyncio.Future[None]] = {}

        async def pump() -> None:
            async for event in client.events():
                if isinstance(event, Exited | Lost) and event.key in futures:
                    futures[event.key].set_result(None)

        pump_task = asyncio.create_task(pump())

        async def one(i: int) -> None:
            async with sem:
                key = f"{prefix}{i}"
                futures[key] = asyncio.get_running_loop().create_future()
                await client.spawn(hypervisor.spec(key, ["true"]))
                await futures[key]
                await client.release(key)

        await asyncio.gather(*(one(i) for i in range(n)))
        pump_task.cancel()
        # Measured while connected: the fd of the one connection counts both times (the
        # previous connection's EOF was read long before 500 round trips were answered).
        return fds()

    before = hypervisor.run(lambda c: batch(c, "warm", 20))
    after = hypervisor.run(lambda c: batch(c, "n", 500))
    assert after == before
    # A monitor reports before its status file's fsync and its exit: the last few may
    # still be on their way out when their reports are in. None may stay a zombie.
    wait_for(lambda: children_zombies({hv_pid, fs_pid}) == [], 10, "every monitor reaped")
    assert hypervisor.run(lambda c: c.list()) == []


def test_hypervisor_killed_restart_reports_exits(hypervisor: Hypervisor) -> None:
    async def spawn_all(client: HypervisorClient) -> None:
        await client.spawn(hypervisor.spec("fast", ["sh", "-c", "sleep 0.5; exit 7"]))
        await client.spawn(hypervisor.spec("slow", ["sh", "-c", "sleep 2.5; exit 5"]))
        await client.spawn(hypervisor.spec("sig", ["sh", "-c", "sleep 0.5; kill -TERM $$"]))
        await wait_started(client, {"fast", "slow", "sig"})

    hypervisor.run(spawn_all)
    assert hypervisor.proc is not None
    fs_pid = hypervisor.fork_server_pid()
    hypervisor.kill()
    ended = [hypervisor.spec(key, []).task_dir for key in ("fast", "sig")]
    # "fast" and "sig" end while no hypervisor runs
    wait_for(lambda: all(map(taskdir.read_status, ended)), 10, "fast and sig to end")
    assert not alive(fs_pid)  # the fork server saw EOF and exited; monitors did not
    hypervisor.start()

    async def check(client: HypervisorClient) -> None:
        records = {r.key: r for r in await client.list()}
        assert set(records) == {"fast", "slow", "sig"}
        fast, sig = records["fast"].status, records["sig"].status
        assert records["fast"].state == "exited" and fast is not None and fast.exit_code == 7
        assert records["sig"].state == "exited" and sig is not None and sig.signal == 15
        if records["slow"].state == "running":
            assert records["slow"].pid is not None
            done = await wait_final(client, {"slow"})
            assert exited(done["slow"]).status.exit_code == 5
        else:  # a slow machine: it ended before the new hypervisor listened
            slow = records["slow"].status
            assert slow is not None and slow.exit_code == 5
        for key in records:
            await client.release(key)

    hypervisor.run(check)


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_monitor_killed_is_lost(hypervisor: Hypervisor) -> None:
    async def go(client: HypervisorClient) -> None:
        await client.spawn(hypervisor.spec("victim", ["sleep", "600"]))
        started = (await wait_started(client, {"victim"}))["victim"]
        [record] = await client.list()
        os.kill(int(record.extra["monitor_pid"]), signal.SIGKILL)
        event = (await wait_final(client, {"victim"}))["victim"]
        assert isinstance(event, Lost)
        assert "signal 9" in event.reason
        [record] = await client.list()
        assert record.state == "lost"
        os.killpg(started.pid, signal.SIGKILL)

    hypervisor.run(go)


def test_pid_file_becomes_the_status_file(hypervisor: Hypervisor) -> None:
    spec = hypervisor.spec("pidfile", ["sleep", "600"])

    async def go(client: HypervisorClient) -> None:
        await client.spawn(spec)
        started = (await wait_started(client, {"pidfile"}))["pidfile"]
        [record] = await client.list()

        async def pid_file() -> taskdir.PidInfo | None:
            return taskdir.read_pid(spec.task_dir)

        info = await wait_for_async(pid_file, 10, "the pid file")  # written just after STARTED
        assert info == taskdir.PidInfo(started.pid, started.pid_start_time,
                                       int(record.extra["monitor_pid"]))
        assert sorted(os.listdir(spec.task_dir)) == ["pid", "stderr", "stdout"]
        assert taskdir.read_status(spec.task_dir) is None
        await client.kill("pidfile", grace=5)
        status = exited((await wait_final(client, {"pidfile"}))["pidfile"]).status
        # One inode for both: `pid` was overwritten with the status and renamed.
        assert sorted(os.listdir(spec.task_dir)) == ["status", "stderr", "stdout"]
        assert taskdir.read_status(spec.task_dir) == status
        assert taskdir.read_pid(spec.task_dir) == info
        with open(os.path.join(spec.task_dir, "status")) as f:
            assert json.load(f)["pid"] == started.pid
        await client.release("pidfile")

    hypervisor.run(go)


def test_short_task_gets_one_exited_event_carrying_its_pid(hypervisor: Hypervisor) -> None:
    """A task that ends within the monitor's short wait is reported once: no STARTED,
    no pid file; the Exited event and the status file carry its pid. (A task slowed
    past the wait by load gets Started then a plain Exited: both shapes are checked,
    and `true` normally ends in a millisecond or two.)"""
    specs = [hypervisor.spec(f"quick{i}", ["true"]) for i in range(5)]

    async def go(client: HypervisorClient) -> list[list[object]]:
        runs = []
        for spec in specs:
            await client.spawn(spec)
            seen: list[object] = []
            async for event in client.events():
                seen.append(event)
                if isinstance(event, Exited | Lost):
                    break
            await client.release(spec.key)
            runs.append(seen)
        return runs

    short = 0
    for spec, events in zip(specs, hypervisor.run(go), strict=True):
        end = exited(events[-1])
        assert end.status.ok
        with open(os.path.join(spec.task_dir, "status")) as f:
            recorded = json.load(f)
        assert sorted(os.listdir(spec.task_dir)) == ["status", "stderr", "stdout"]
        if len(events) == 1:
            short += 1
            assert end.pid is not None and end.pid > 0
            assert (recorded["pid"], recorded["pid_start_time"]) == (end.pid, end.pid_start_time)
        else:
            [started] = events[:-1]
            assert isinstance(started, Started) and end.pid is None
            assert recorded["pid"] == started.pid
    assert short > 0


def journal_lines(hypervisor: Hypervisor) -> list[str]:
    with open(os.path.join(hypervisor.process_directory, ".live.journal")) as f:
        return f.read().splitlines()


def test_live_journal_no_file_per_task_and_compacted_at_restart(hypervisor: Hypervisor) -> None:
    async def go(client: HypervisorClient) -> None:
        await client.spawn(hypervisor.spec("done", ["true"]))
        await client.spawn(hypervisor.spec("keep", ["sleep", "600"]))
        await wait_final(client, {"done"})
        await client.release("done")  # its reply goes out after the journal holds it

    hypervisor.run(go)
    # Each execution is journaled as prepared (P) before its monitor exists, then
    # spawned (S) with the monitor's pid.
    lines = [line.split()[:2] for line in journal_lines(hypervisor)]
    assert sorted(lines) == sorted(
        [["P", "done"], ["P", "keep"], ["S", "done"], ["S", "keep"], ["R", "done"]]
    )
    assert lines.index(["P", "keep"]) < lines.index(["S", "keep"])
    hypervisor.kill()
    hypervisor.start()
    [line] = journal_lines(hypervisor)
    assert line.startswith("S keep ") and line.endswith(hypervisor.spec("keep", []).task_dir)

    async def check(client: HypervisorClient) -> None:
        [record] = await client.list()
        assert (record.key, record.state) == ("keep", "running") and record.pid is not None
        await client.kill("keep", grace=5)
        assert exited((await wait_final(client, {"keep"}))["keep"]).status.signal == 15
        await client.release("keep")

    hypervisor.run(check)
    lines = [line.split()[:2] for line in journal_lines(hypervisor)]
    assert lines == [["S", "keep"], ["R", "keep"]]


def test_live_journal_replay(short_tmp: Path) -> None:
    odd = os.path.join(short_tmp, "a b\\n\nc")  # spaces, a backslash, a newline
    j = LiveJournal(str(short_tmp))
    j.compact([Execution("k1", odd, monitor_pid=10, monitor_start=11)])
    j.spawned(Execution("k2", "/t/2", monitor_pid=20, monitor_start=21, semaphore="/ss-x-k2"))
    j.spawned(Execution("k3", "/t/3", monitor_pid=30, monitor_start=31))
    j.released("k3")
    # Held executions: k5 started before its monitor's pid was journaled, k6 never.
    j.prepared(Execution("k5", "/t/5", semaphore="/ss-x-k5"))
    j.started("k5")
    j.spawned(Execution("k5", "/t/5", monitor_pid=50, monitor_start=51, semaphore="/ss-x-k5"))
    j.spawned(Execution("k6", "/t/6", monitor_pid=60, monitor_start=61, semaphore="/ss-x-k6"))
    assert not j.flush()
    j.close()
    with open(j.path, "ab") as f:
        f.write(b"bogus line\nS k4 40 41 - /t/4")  # a bad line, then a torn one
    expected = {
        "k1": LiveEntry("k1", odd, 10, 11, None, started=True),
        "k2": LiveEntry("k2", "/t/2", 20, 21, "/ss-x-k2", started=False),
        "k5": LiveEntry("k5", "/t/5", 50, 51, "/ss-x-k5", started=True),
        "k6": LiveEntry("k6", "/t/6", 60, 61, "/ss-x-k6", started=False),
    }
    assert LiveJournal(str(short_tmp)).replay() == expected
    # Compaction keeps whether each held execution was started.
    again = LiveJournal(str(short_tmp))
    again.compact(
        [
            Execution("k5", "/t/5", monitor_pid=50, monitor_start=51, semaphore="/ss-x-k5"),
            Execution(
                "k6", "/t/6", monitor_pid=60, monitor_start=61, semaphore="/ss-x-k6", started=False
            ),
        ]
    )
    again.close()
    assert LiveJournal(str(short_tmp)).replay() == {k: expected[k] for k in ("k5", "k6")}


def raw_connect(path: str) -> socket.socket:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(path)
    return s


def closed_by_peer(s: socket.socket) -> bool:
    try:
        return s.recv(65536) == b""
    except ConnectionResetError:
        return True


def ping(s: socket.socket) -> dict[str, object]:
    s.sendall(protocol.encode(protocol.REQUEST, 9, {"op": "ping"}))
    decoder = protocol.FrameDecoder()
    while True:
        frames = decoder.feed(s.recv(65536))
        if frames:
            assert frames[0].request_id == 9 and frames[0].type == protocol.REPLY
            return frames[0].body


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param(b"XX" + bytes(14), id="bad-magic"),
        pytest.param(struct.pack(">2sBBIQ", b"SS", 99, 1, 2, 1) + b"{}", id="bad-version"),
        pytest.param(struct.pack(">2sBBIQ", b"SS", 1, 1, 64 << 20, 1), id="oversized"),
        pytest.param(struct.pack(">2sBBIQ", b"SS", 1, 1, 5, 1) + b"[1]xx", id="not-an-object"),
    ],
)
def test_bad_frames_close_only_that_connection(hypervisor: Hypervisor, payload: bytes) -> None:
    bystander = raw_connect(hypervisor.socket_path)
    bad = raw_connect(hypervisor.socket_path)
    bad.sendall(payload)
    assert closed_by_peer(bad)
    assert ping(bystander)["executions"] == 0
    bystander.close()


def test_truncated_frame_then_eof(hypervisor: Hypervisor) -> None:
    bystander = raw_connect(hypervisor.socket_path)
    bad = raw_connect(hypervisor.socket_path)
    frame = protocol.encode(protocol.REQUEST, 1, {"op": "ping"})
    bad.sendall(frame[:10])
    bad.shutdown(socket.SHUT_WR)
    assert closed_by_peer(bad)
    assert ping(bystander)["executions"] == 0
    bystander.close()


def test_prepared_execution_without_a_monitor_is_lost_after_the_grace(
    short_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A hypervisor that died between journaling and forking: nobody will report."""
    import simple_scheduler.hypervisor.loop as hvmod

    task_dir = os.path.join(short_tmp, "pd", "1", "0", "1")
    os.makedirs(task_dir)
    j = LiveJournal(os.path.join(short_tmp, "pd"))
    j.compact([Execution("1.0.1", task_dir)])  # monitor_pid 0: a P line
    j.close()
    with open(j.path) as f:
        assert f.read().startswith("P 1.0.1 ")
    monkeypatch.setattr(hvmod, "PREPARED_GRACE_S", 0.0)
    hv = hvmod.Hypervisor(os.path.join(short_tmp, "h.sock"), os.path.join(short_tmp, "pd"))
    try:
        [ex] = hv.execs.values()
        assert ex.record().state == "spawned" and ex in hv.unowned
        wait_for(lambda: time.monotonic() > ex.grace_until, 5, "the grace to pass")
        hv._check_liveness()
        assert ex.state == "lost"
        assert ex.reason is not None and "never reported" in ex.reason
    finally:
        hv.close()


def _dir_flags(path: str) -> int | None:
    import fcntl

    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        buf = bytearray(8)
        fcntl.ioctl(fd, 0x80086601, buf)  # FS_IOC_GETFLAGS
        return int.from_bytes(buf[:4], sys.byteorder)
    except OSError:
        return None  # this file system has no inode flags
    finally:
        os.close(fd)


def test_process_directory_is_marked_top_of_hierarchies(hypervisor: Hypervisor) -> None:
    """chattr +T on the process directory (ext4 spreads job directories over block
    groups); where the file system has no flags, the hypervisor still starts."""
    flags = _dir_flags(str(hypervisor.process_directory))
    if flags is None:
        assert not taskdir.mark_top_directory(str(hypervisor.process_directory))
    else:
        assert flags & 0x00020000  # FS_TOPDIR_FL
    assert not taskdir.mark_top_directory(os.path.join(hypervisor.process_directory, "missing"))


def test_requests_sent_before_the_hypervisor_died_still_fork(short_tmp: Path) -> None:
    """Spawns journaled and sent to the fork server, then the hypervisor dies before
    reading a reply: the fork server forks every one of them anyway (its replies fail),
    so a successor finds monitors for its prepared entries, not silence."""
    import simple_scheduler.hypervisor.loop as hvmod

    hv = hvmod.Hypervisor(os.path.join(short_tmp, "h.sock"), os.path.join(short_tmp, "pd"))
    conn = hvmod._Conn(socket.socket(socket.AF_UNIX))  # replies are never read
    dirs = [os.path.join(short_tmp, "pd", "1", str(i), "1") for i in range(5)]
    try:
        for i, task_dir in enumerate(dirs):
            spec = {"key": f"1.{i}.1", "job_id": 1, "task_name": f"t{i}", "argv": ["true"],
                    "env": {"PATH": os.environ["PATH"]}, "task_dir": task_dir}
            hv._handle(conn, i + 1, {"op": "spawn", "spec": spec})
        hv._flush()  # the journal, then the fork requests, as the loop does
        with open(os.path.join(short_tmp, "pd", ".live.journal")) as f:
            assert sum(line.startswith("P ") for line in f) == 5
        hv.fork_server.sock.close()  # "dies": not one reply read
        wait_for(lambda: all(map(taskdir.read_status, dirs)), 20, "every task to end")
        assert all(s is not None and s.ok for s in map(taskdir.read_status, dirs))
    finally:
        with contextlib.suppress(Exception):
            hv.close()
        conn.sock.close()
