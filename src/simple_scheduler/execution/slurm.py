"""The Slurm backend: each execution is one Slurm job, on a process directory shared with
the nodes.

What it does, and why:
- **The status file is the truth.** The generated batch script runs the task (its
  environment only, `env -i`), then writes the same atomic status file a local monitor
  writes (tmp, fsync, rename). Slurm accounting is never needed: a job that left the
  queue has a status file, or it ended outside the script (cancelled from outside, node
  failure, time limit, out of memory), which the last Slurm state seen names.
- **Batched polling.** One `squeue` call per interval for every live execution, never
  one per task (Snakemake's and dask-jobqueue's lesson); a job gone from `squeue` is
  settled from its status file.
- **Queued is not running.** The backend `queues`: an execution is "spawned" while
  Slurm keeps it pending (its task reads PENDING) and "running" once `squeue` says so
  or the script says it started, whichever comes first. Pausing holds queued jobs
  (`scontrol hold`, one call for many), resuming releases them.
- **Notified ends.** On the server's host the script also writes "S key" and "E key"
  lines into a FIFO in the process directory (`.slurm.fifo`), so a start or an end is
  seen at once instead of at the next poll (a chain's edge would otherwise wait for
  it). Opened read-write by the script, the FIFO never blocks it, with or without a
  server; on another node it is a local pipe nobody reads. Polling stays the truth.
- **Recovery.** Executions are journaled (`<process_directory>/.slurm.journal`: key,
  Slurm job id, task directory) before `sbatch` returns to the scheduler and forgotten
  on release, like the hypervisor's live journal. A restarted server replays it and
  adopts what is queued or running; what ended while it was down is collected from its
  status file. The job name carries the key too, so an `sbatch` whose answer was lost is
  found again by name.
- **No fork.** `sbatch`, `squeue`, `scancel` and `scontrol` run through asyncio's
  subprocess support, which on Linux spawns with vfork + exec (no Python in the child),
  like `posix_spawn` for the hypervisor.

Slurm has no local pid to give: an execution's `pid` is its Slurm job id, its pid start
time 0.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import dataclasses
import hashlib
import logging
import math
import os
import shlex
import stat
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from simple_scheduler.execution import taskdir
from simple_scheduler.execution.backend import (
    BackendError,
    Event,
    Exited,
    ExitStatus,
    Started,
    TaskRecord,
    TaskSpec,
    TaskState,
    Unreachable,
)

log = logging.getLogger("simple_scheduler.execution.slurm")

JOURNAL = ".slurm.journal"
SBATCH_CONCURRENCY = 4
#: The Slurm job id of an execution whose `sbatch` has not answered yet.
UNSUBMITTED = "-"
SCRIPT = "slurm.sh"
#: The script's start mark in the task directory (its start time, epoch seconds).
STARTED = "started"
#: Where scripts on this host announce starts and ends (see the module's docstring).
FIFO = ".slurm.fifo"
#: Job names: `ss.<process directory digest>.<key>`, so a lost `sbatch` answer is found
#: again by name.
NAME_PREFIX = "ss."
#: Slurm states after which a job runs no more (squeue's long names).
ENDED_STATES = frozenset(
    {
        "BOOT_FAIL",
        "CANCELLED",
        "COMPLETED",
        "DEADLINE",
        "FAILED",
        "NODE_FAIL",
        "OUT_OF_MEMORY",
        "PREEMPTED",
        "TIMEOUT",
    }
)
#: Why a job that ended without writing its status file ended, by Slurm state.
OUTSIDE_REASONS = {
    "CANCELLED": "cancelled in Slurm (scancel from outside)",
    "NODE_FAIL": "its Slurm node failed",
    "TIMEOUT": "Slurm's time limit was reached",
    "OUT_OF_MEMORY": "out of memory (Slurm)",
    "BOOT_FAIL": "its Slurm node failed to boot",
    "DEADLINE": "Slurm's deadline was reached",
    "PREEMPTED": "preempted by Slurm",
    "FAILED": "the Slurm job failed before the task ended",
}


@dataclass(frozen=True)
class SlurmSettings:
    """The `slurm_*` settings."""

    partition: str | None = None
    account: str | None = None
    #: Extra `sbatch` options, as on its command line.
    sbatch_options: tuple[str, ...] = ()
    poll_interval_s: float = 1.0
    #: `NODE_ACCESS_TOKEN` generic information -> partition.
    token_partitions: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class _QueuedJob:
    slurm_id: str
    state: str
    key: str
    held: bool = False


@dataclass(eq=False)
class _Execution:
    key: str
    slurm_id: str
    task_dir: str
    state: TaskState = "spawned"
    slurm_state: str = "PENDING"
    status: ExitStatus | None = None
    reason: str | None = None
    #: when the TERM was sent: KILL follows after the grace
    killing: asyncio.TimerHandle | None = None
    #: we asked for the kill (so a CANCELLED state is ours, not someone else's)
    kill_requested: bool = False
    #: held in Slurm's queue (its job paused), by us or as `squeue` last said
    held: bool = False

    def record(self) -> TaskRecord:
        pid = int(self.slurm_id) if self.slurm_id.isdigit() and self.state != "spawned" else None
        return TaskRecord(
            key=self.key,
            state=self.state,
            pid=pid,
            pid_start_time=0 if pid is not None else None,
            status=self.status,
            reason=self.reason,
            extra={
                "task_dir": self.task_dir,
                "slurm_job_id": self.slurm_id,
                "held": "1" if self.held else "0",
            },
        )


class SlurmError(BackendError):
    """A Slurm command failed (its message says which and why)."""


class SlurmUnavailable(Unreachable):
    """The controller did not answer (restarting, overloaded): try again later."""


#: What Slurm's commands say when the controller is away, not when they refuse.
_TRANSIENT = (
    "Unable to contact slurm controller",
    "Socket timed out",
    "Zero Bytes were transmitted",
    "in standby mode",
    "Transport endpoint is not connected",
)


#: The environment Slurm's commands (and so a batch script) get: never the server's own,
#: which may hold secrets (a database URL). Not `sbatch --export=NONE|NIL` instead: with
#: either, slurmd launched this cluster's jobs one by one, ~0.5 s apart, against ten at
#: once with the default export (measured with `--wrap true`). The task itself gets its
#: own environment through `env -i` in the script.
_COMMAND_ENV_KEYS = ("PATH", "HOME", "USER", "LOGNAME", "LANG", "TZ", "SLURM_CONF")


def command_env() -> dict[str, str]:
    return {k: os.environ[k] for k in _COMMAND_ENV_KEYS if k in os.environ}


async def run(*argv: str, stdin: bytes | None = None, timeout: float = 60.0) -> str:
    """Run a Slurm command; its stdout, or SlurmError with its stderr."""
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            env=command_env(),
            stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            close_fds=True,
        )
    except OSError as exc:
        raise Unreachable(f"cannot run {argv[0]}: {exc.strerror or exc}") from None
    try:
        out, err = await asyncio.wait_for(proc.communicate(stdin), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise Unreachable(f"{argv[0]} did not answer in {timeout:.0f}s") from None
    if proc.returncode != 0:
        message = err.decode(errors="replace").strip() or f"exit code {proc.returncode}"
        if any(t in message for t in _TRANSIENT):
            raise SlurmUnavailable(f"{argv[0]}: {message}")
        raise SlurmError(f"{argv[0]}: {message}")
    return out.decode(errors="replace")


def batch_script(spec: TaskSpec, fifo: str | None = None) -> str:
    """The script Slurm runs: the task with its own environment (and Slurm's SLURM_*
    variables), then the status file.

    Written in bash so the node needs nothing of ours. The exit status is decoded as
    bash reports it (128+N: killed by signal N). A TERM sent to the job reaches the task
    and the script alike; the script waits for the task, so the status is still written.
    """
    q = shlex.quote
    env = " ".join(q(f"{k}={v}") for k, v in spec.env.items())
    argv = " ".join(q(a) for a in spec.argv)
    status = q(os.path.join(spec.task_dir, taskdir.STATUS))
    tmp = q(os.path.join(spec.task_dir, "status.tmp"))
    started = q(os.path.join(spec.task_dir, STARTED))
    if fifo is None:
        notify = "notify() { :; }"
    else:  # read-write open: never blocks, with or without a reader (see the docstring)
        f, key = q(fifo), q(spec.key)
        write = f"printf '%s %s\\n' \"$1\" {key} 9<>{f} >&9"
        notify = f"notify() {{ [ -p {f} ] && {write}; }} 2>/dev/null"
    return f"""#!/bin/bash
# generated by simple-scheduler for execution {spec.key}: run, then write the status file
now() {{ date +%s.%N; }}
{notify}
child=
trap '[ -n "$child" ] && kill -TERM $child 2>/dev/null' TERM
# The task's environment is its own, plus Slurm's SLURM_* (job id, nodes, ...).
slurm=()
while IFS= read -r -d '' kv; do case $kv in SLURM_*) slurm+=("$kv");; esac; done < <(env -0)
start=$(now)
echo "$start" > {started}
notify S
env -i "${{slurm[@]}}" {env} {argv} &
child=$!
while wait $child; rc=$?; kill -0 $child 2>/dev/null; do :; done
# Reaped between a trap-interrupted wait and kill -0: its status, if bash still has it
# (under scancel bash answered -1 here, so only a real status replaces the loop's).
wait $child 2>/dev/null; again=$?
if [ $again -ge 0 ] && [ $again -le 255 ] && [ $again -ne 127 ]; then rc=$again; fi
end=$(now)
if [ $rc -gt 128 ]; then code=null; sig=$((rc - 128)); else code=$rc; sig=null; fi
printf '{{"exit_code": %s, "signal": %s, "core_dumped": false, "start_time": %s, \
"end_time": %s, "pid": %d, "pid_start_time": 0, "monitor_pid": 0, "error": null}}\\n' \\
  "$code" "$sig" "$start" "$end" "${{SLURM_JOB_ID:-0}}" > {tmp}
sync {tmp} 2>/dev/null
mv -f {tmp} {status}
notify E
exit $rc
"""


def time_limit(walltime_s: float) -> str:
    """`--time` in minutes, rounded up, one minute of slack so our own walltime kill
    (TERM, grace, KILL) comes first and the reason stays ours."""
    return str(max(1, math.ceil(walltime_s / 60.0) + 1))


class SlurmBackend:
    """An `ExecutionBackend` on Slurm. One per server; `connect()` replays the journal."""

    #: Slurm keeps executions in its queue: their tasks read PENDING until they start.
    queues = True

    def __init__(self, process_directory: str, settings: SlurmSettings | None = None):
        self.process_directory = os.path.abspath(process_directory)
        self.settings = settings or SlurmSettings()
        self.execs: dict[str, _Execution] = {}
        self._by_slurm: dict[str, _Execution] = {}
        self._events: asyncio.Queue[Event | BackendError] = asyncio.Queue()
        self._poller: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._journal_path = os.path.join(self.process_directory, JOURNAL)
        #: sbatch calls at once: a thousand ready tasks must not start a thousand
        #: processes together (each waits on the controller's RPC threads anyway).
        self._sbatch_slots = asyncio.Semaphore(SBATCH_CONCURRENCY)
        #: Holds and releases in the order asked (a quick pause-resume must end released).
        self._hold_lock = asyncio.Lock()
        self._fifo_path = os.path.join(self.process_directory, FIFO)
        self._fifo_fd: int | None = None
        self._notes = b""
        #: Job names carry the key under a prefix unique to this process directory, so
        #: two servers on one cluster never take each other's jobs.
        digest = hashlib.sha1(self.process_directory.encode()).hexdigest()[:8]
        self.name_prefix = f"{NAME_PREFIX}{digest}."

    # -- life cycle ------------------------------------------------------------------

    @classmethod
    async def connect(
        cls, process_directory: str, settings: SlurmSettings | None = None
    ) -> SlurmBackend:
        """Replay the journal, check Slurm answers, start polling."""
        backend = cls(process_directory, settings)
        os.makedirs(backend.process_directory, exist_ok=True)
        await run("squeue", "--version")
        journaled = backend._replay()
        if any(slurm_id == UNSUBMITTED for slurm_id, _ in journaled.values()):
            # Prepared, but sbatch's answer never journaled: Slurm knows them by name.
            by_key = {job.key: job.slurm_id for job in await backend._our_jobs()}
            for key, (slurm_id, task_dir) in list(journaled.items()):
                if slurm_id == UNSUBMITTED:
                    if key in by_key:
                        journaled[key] = (by_key[key], task_dir)
                    else:
                        del journaled[key]  # never submitted: the scheduler submits it
        for key, (slurm_id, task_dir) in journaled.items():
            ex = _Execution(key, slurm_id, task_dir)
            backend.execs[key] = ex
            backend._by_slurm[slurm_id] = ex
        backend._compact()
        backend._listen()
        await backend._poll_once(adopting=True)
        backend._poller = asyncio.create_task(backend._poll(), name="slurm-poller")
        return backend

    async def close(self) -> None:
        if self._fifo_fd is not None:
            asyncio.get_running_loop().remove_reader(self._fifo_fd)
            os.close(self._fifo_fd)
            self._fifo_fd = None
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
            self._poller = None
        self._events.put_nowait(Unreachable("Slurm backend closed"))

    async def detach(self) -> None:
        """Nothing of ours keeps running for us: Slurm does."""

    # -- the interface ---------------------------------------------------------------

    def spawn(self, spec: TaskSpec, start: bool = True) -> asyncio.Future[object]:
        return asyncio.ensure_future(self._spawn(spec, start))

    async def _spawn(self, spec: TaskSpec, start: bool) -> object:
        if spec.key in self.execs:
            return None  # re-sent after a reconnect: already submitted
        os.makedirs(spec.task_dir, exist_ok=True)
        script = os.path.join(spec.task_dir, SCRIPT)
        with open(script, "w", encoding="utf-8") as f:
            f.write(batch_script(spec, self._fifo_path if self._fifo_fd is not None else None))
        argv = self._sbatch_argv(spec, script, hold=not start)
        # Journaled before sbatch: a server that dies before the answer finds it by name.
        self._journal(f"S {spec.key} - {spec.task_dir}\n")
        ex = _Execution(spec.key, UNSUBMITTED, spec.task_dir)
        self.execs[spec.key] = ex
        try:
            slurm_id = await self._submit(ex, argv)
        except BaseException:
            if self.execs.get(spec.key) is ex:
                del self.execs[spec.key]
                self._journal(f"R {spec.key}\n")
            raise
        if slurm_id is None:
            return None  # killed while the controller was away: never submitted
        ex.slurm_id = slurm_id
        self._by_slurm[slurm_id] = ex
        self._journal(f"S {spec.key} {slurm_id} {spec.task_dir}\n")
        if ex.held:  # paused while sbatch was in flight
            await self._scontrol("hold", [ex])
        self._wake.set()
        return None

    async def _submit(self, ex: _Execution, argv: list[str]) -> str | None:
        """sbatch, retried while the controller is away (a restart must not fail tasks);
        None when the execution was killed meanwhile."""
        delay = 0.25
        while True:
            try:
                async with self._sbatch_slots:
                    out = await run(*argv)
                break
            except SlurmUnavailable as exc:
                if ex.state != "spawned":
                    return None
                log.warning("%s; retrying %s in %.1fs", exc, ex.key, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
        slurm_id = out.strip().split(";", 1)[0]
        if not slurm_id.isdigit():
            raise SlurmError(f"sbatch answered {slurm_id!r}, not a job id")
        return slurm_id

    def _sbatch_argv(self, spec: TaskSpec, script: str, *, hold: bool) -> list[str]:
        s = self.settings
        argv = [
            "sbatch",
            "--parsable",
            f"--job-name={self.name_prefix}{spec.key}",
            f"--output={os.path.join(spec.task_dir, taskdir.STDOUT)}",
            f"--error={os.path.join(spec.task_dir, taskdir.STDERR)}",
            f"--chdir={spec.cwd or spec.task_dir}",
            f"--comment=simple-scheduler job {spec.job_id} task {spec.task_name}",
        ]
        partition = s.partition
        token = spec.resources.get("node_access_token")
        if token and token in s.token_partitions:
            partition = s.token_partitions[token]
        if partition:
            argv.append(f"--partition={partition}")
        if s.account:
            argv.append(f"--account={s.account}")
        walltime = spec.resources.get("walltime")
        if walltime:
            argv.append(f"--time={time_limit(float(walltime))}")
        nodes = spec.resources.get("nodes")
        if nodes:
            argv += [f"--nodes={nodes}", f"--ntasks={nodes}"]
        if hold:
            argv.append("--hold")
        argv += list(s.sbatch_options)
        argv.append(script)
        return argv

    async def start(self, key: str) -> None:
        ex = self._get(key)
        await run("scontrol", "release", ex.slurm_id)

    async def kill(self, key: str, grace: float = 5.0) -> bool:
        """TERM the job's processes, KILL after `grace` (as locally); pending: cancel."""
        ex = self.execs.get(key)
        if ex is None or ex.state not in ("spawned", "running"):
            return False
        ex.kill_requested = True
        if ex.slurm_id == UNSUBMITTED:
            now = time.time()
            self._exit(ex, ExitStatus(None, None, False, now, now, error="killed before it ran"))
            return True
        if ex.slurm_state == "PENDING":
            await self._scancel(ex)
            return True
        await self._scancel(ex, "--signal=TERM", "--full")
        if ex.killing is None:
            loop = asyncio.get_running_loop()
            ex.killing = loop.call_later(grace, self._kill_hard, ex)
        return True

    async def hold(self, *keys: str) -> None:
        await self._set_held(keys, True)

    async def unhold(self, *keys: str) -> None:
        await self._set_held(keys, False)

    async def _set_held(self, keys: tuple[str, ...], held: bool) -> None:
        async with self._hold_lock:
            targets = []
            for key in keys:  # sent even if already so: both are idempotent in Slurm
                ex = self.execs.get(key)
                if ex is not None and ex.state == "spawned":
                    ex.held = held
                    targets.append(ex)
            await self._scontrol("hold" if held else "release", targets)

    async def _scontrol(self, verb: str, targets: builtins.list[_Execution]) -> None:
        """`scontrol hold|release` of many jobs in one call, retried while the controller
        is away. A job that started meanwhile is no error: it runs (and reports so)."""
        delay = 0.25
        while True:
            ids = [
                ex.slurm_id
                for ex in targets
                if ex.state == "spawned" and ex.slurm_id != UNSUBMITTED
            ]
            if not ids:
                return
            try:
                await run("scontrol", verb, *ids)
                return
            except SlurmUnavailable as exc:
                log.warning("%s; retrying %s in %.1fs", exc, verb, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
            except SlurmError as exc:
                log.warning("%s (%d jobs)", exc, len(ids))
                return

    async def _scancel(self, ex: _Execution, *options: str) -> None:
        """scancel, retried while the controller is away and the job not yet ended."""
        delay = 0.25
        while ex.state in ("spawned", "running"):
            try:
                await run("scancel", *options, ex.slurm_id)
                return
            except SlurmUnavailable as exc:
                log.warning("%s; retrying the kill of %s in %.1fs", exc, ex.key, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    def _kill_hard(self, ex: _Execution) -> None:
        if ex.state in ("spawned", "running"):
            task = asyncio.ensure_future(self._scancel(ex, "--signal=KILL", "--full"))
            task.add_done_callback(lambda t: t.cancelled() or t.exception())

    async def list(self) -> list[TaskRecord]:
        return [ex.record() for ex in self.execs.values()]

    async def release(self, *keys: str) -> None:
        lines = []
        for key in keys:
            ex = self.execs.pop(key, None)
            if ex is not None:
                self._by_slurm.pop(ex.slurm_id, None)
                lines.append(f"R {key}\n")
        if lines:
            self._journal("".join(lines))

    async def events(self) -> AsyncIterator[Event]:
        while True:
            item = await self._events.get()
            if isinstance(item, BackendError):
                self._events.put_nowait(item)
                raise item
            yield item

    def _get(self, key: str) -> _Execution:
        ex = self.execs.get(key)
        if ex is None:
            raise BackendError(f"unknown execution {key!r}")
        return ex

    # -- polling ---------------------------------------------------------------------

    async def _poll(self) -> None:
        while True:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.settings.poll_interval_s)
            self._wake.clear()
            try:
                await self._poll_once()
            except BackendError as exc:
                log.warning("polling Slurm failed (%s); retrying", exc)
            await asyncio.sleep(self.settings.poll_interval_s / 4)

    async def _our_jobs(self) -> builtins.list[_QueuedJob]:
        """Every job of ours Slurm still shows (one `squeue` call, any number of jobs).

        All of this user's jobs, filtered by name: `-j` with a list fails as a whole
        once one id has been purged from the controller (MinJobAge)."""
        out = await run("squeue", "--me", "-h", "-t", "all", "-o", "%i|%T|%r|%j")
        jobs = []
        for line in out.splitlines():
            slurm_id, _, rest = line.strip().partition("|")
            state, _, rest = rest.partition("|")
            reason, _, name = rest.partition("|")
            if name.startswith(self.name_prefix):
                held = state == "PENDING" and reason.startswith("JobHeld")
                jobs.append(_QueuedJob(slurm_id, state, name[len(self.name_prefix) :], held))
        return jobs

    async def _poll_once(self, *, adopting: bool = False) -> None:
        """One `squeue` for every live execution; settle the ones that left the queue.

        `adopting` (at connect): also learn which queued jobs are held, for the
        scheduler's reconciliation; afterwards holds are ours to track (a `squeue`
        answer may predate the last hold or release)."""
        live = [
            ex
            for ex in self.execs.values()
            if ex.state in ("spawned", "running") and ex.slurm_id != UNSUBMITTED
        ]
        if not live:
            return
        seen = {job.slurm_id: job for job in await self._our_jobs()}
        for ex in live:
            if ex.state not in ("spawned", "running"):
                continue  # settled by a notification while squeue ran
            job = seen.get(ex.slurm_id)
            state = job.state if job is not None else None
            if job is not None:
                ex.slurm_state = job.state
                if adopting and job.state == "PENDING":
                    ex.held = job.held
            if state == "RUNNING":
                self._mark_started(ex)
            elif state is None or state in ENDED_STATES:
                self._settle(ex)

    def _mark_started(self, ex: _Execution, at: float | None = None) -> None:
        """Running, from `squeue` or the script's notification (the first one)."""
        if ex.state != "spawned":
            return
        ex.state, ex.slurm_state, ex.held = "running", "RUNNING", False
        if at is None:  # the script's own mark says when, if it is there yet
            try:
                with open(os.path.join(ex.task_dir, STARTED), encoding="ascii") as f:
                    at = float(f.read().strip())
            except (OSError, ValueError):
                at = time.time()
        self._emit(Started(ex.key, int(ex.slurm_id), 0, at))

    # -- notifications -----------------------------------------------------------------

    def _listen(self) -> None:
        """Open the FIFO scripts on this host notify through (made when absent)."""
        try:
            if os.path.exists(self._fifo_path) and not _is_fifo(self._fifo_path):
                os.unlink(self._fifo_path)
            if not os.path.exists(self._fifo_path):
                os.mkfifo(self._fifo_path, 0o600)
            # Read-write: the FIFO never reads as ended when no script has it open.
            self._fifo_fd = os.open(self._fifo_path, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as exc:
            log.warning("no notifications from tasks (%s): polling only", exc)
            return
        asyncio.get_running_loop().add_reader(self._fifo_fd, self._on_notes)

    def _on_notes(self) -> None:
        assert self._fifo_fd is not None
        try:
            data = os.read(self._fifo_fd, 1 << 16)
        except (BlockingIOError, InterruptedError):
            return
        *lines, self._notes = (self._notes + data).split(b"\n")
        for line in lines:
            kind, _, key = line.decode("ascii", errors="replace").partition(" ")
            ex = self.execs.get(key)
            if ex is None or ex.state not in ("spawned", "running"):
                continue
            if ex.slurm_id == UNSUBMITTED:
                self._wake.set()  # sbatch has not answered yet: the poller will see it
            elif kind == "S":
                self._mark_started(ex, time.time())
            elif kind == "E":
                status = taskdir.read_status(ex.task_dir)
                if status is not None and status.ok and not ex.kill_requested:
                    self._settle(ex)
                else:
                    # A failure may be Slurm's doing (scancel from outside, time limit,
                    # memory), whose state names the reason: squeue now, settle then.
                    self._wake.set()

    def _settle(self, ex: _Execution) -> None:
        """The job left Slurm's queue: its status file says how, else its last state.

        A job that Slurm ended (cancelled by someone else, time limit, node failure, out
        of memory) may still have written its status as its task died: the reason is
        Slurm's then, not the exit code's."""
        status = taskdir.read_status(ex.task_dir)
        if (
            status is not None
            and not ex.kill_requested
            and ex.slurm_state in OUTSIDE_REASONS
            and ex.slurm_state != "FAILED"
        ):
            status = dataclasses.replace(status, error=OUTSIDE_REASONS[ex.slurm_state])
        if status is None:
            reason = OUTSIDE_REASONS.get(
                ex.slurm_state, f"the Slurm job ended ({ex.slurm_state}) without a status"
            )
            now = time.time()
            status = ExitStatus(None, None, False, now, now, error=reason)
        self._exit(ex, status)

    def _exit(self, ex: _Execution, status: ExitStatus) -> None:
        if ex.killing is not None:
            ex.killing.cancel()
            ex.killing = None
        announce = ex.state == "spawned" and ex.slurm_id != UNSUBMITTED
        ex.state, ex.status = "exited", status
        pid = int(ex.slurm_id) if announce else None
        self._emit(Exited(ex.key, status, pid, 0 if announce else None))

    def _emit(self, event: Event) -> None:
        self._events.put_nowait(event)

    # -- journal ---------------------------------------------------------------------

    def _journal(self, text: str) -> None:
        with open(self._journal_path, "a", encoding="utf-8") as f:
            f.write(text)

    def _replay(self) -> dict[str, tuple[str, str]]:
        live: dict[str, tuple[str, str]] = {}
        try:
            with open(self._journal_path, encoding="utf-8") as f:
                for line in f:
                    kind, _, rest = line.rstrip("\n").partition(" ")
                    if kind == "S":
                        key, slurm_id, task_dir = rest.split(" ", 2)
                        live[key] = (slurm_id, task_dir)
                    elif kind == "R":
                        live.pop(rest, None)
        except FileNotFoundError:
            pass
        return live

    def _compact(self) -> None:
        """Rewrite the journal with the live entries only (at connect)."""
        tmp = self._journal_path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            for ex in self.execs.values():
                f.write(f"S {ex.key} {ex.slurm_id} {ex.task_dir}\n")
        os.replace(tmp, self._journal_path)


def _is_fifo(path: str) -> bool:
    return stat.S_ISFIFO(os.stat(path).st_mode)
