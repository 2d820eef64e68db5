"""A cgroup v2 folder per task, where a writable hierarchy exists (best effort).

The monitor, a child subreaper, already keeps every descendant of its task below it;
the task's cgroup also holds a process that leaves that tree (its monitor was killed,
or it was re-parented to a subreaper of its own), so `cgroup.kill` ends it anyway.
The hypervisor finds its own cgroup v2 folder; each monitor makes
`<it>/simple-scheduler-<digest>.<key>` there (the digest of the process directory:
hypervisors of different process directories share nothing), moves its task in before
exec, and removes the folder once the task's processes are gone, so nothing is left
behind by a hypervisor that dies. No controllers are enabled: the folders group, they
do not limit.

Where there is no cgroup v2 hierarchy, or ours is not writable (a container, a service
without Delegate=yes), tasks have no cgroup and nothing else changes.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import time

log = logging.getLogger("simple_scheduler.hypervisor")


def _own_cgroup() -> str | None:
    """Our cgroup v2 path (the `0::` line of /proc/self/cgroup)."""
    with contextlib.suppress(OSError), open("/proc/self/cgroup") as f:
        for line in f:
            if line.startswith("0::"):
                return line[3:].strip()
    return None


def _cgroup2_mount() -> str | None:
    """Where the cgroup v2 hierarchy is mounted (/sys/fs/cgroup, or .../unified)."""
    with contextlib.suppress(OSError), open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            if "-" in fields and fields[fields.index("-") + 1] == "cgroup2":
                return fields[4]
    return None


def task_cgroup_prefix(process_directory: str) -> str:
    """What a monitor appends ".<key>" to for its task's cgroup folder; "" when there is
    no cgroup v2 folder of ours we may make folders in."""
    own, mount = _own_cgroup(), _cgroup2_mount()
    if own is None or mount is None:
        return ""
    digest = hashlib.blake2s(process_directory.encode(), digest_size=4).hexdigest()
    prefix = os.path.join(mount, own.lstrip("/"), f"simple-scheduler-{digest}")
    probe = f"{prefix}.probe-{os.getpid()}"
    try:
        os.mkdir(probe)
        writable = os.access(os.path.join(probe, "cgroup.procs"), os.W_OK)
        os.rmdir(probe)
    except OSError as exc:
        log.info("no cgroup per task (%s): the monitors' subreaper alone keeps tasks", exc)
        return ""
    return prefix if writable else ""


def kill(prefix: str, key: str) -> bool:
    """SIGKILL every process in the task's cgroup and remove it; False when it has none.

    The kernel delivers the kills at once, yet the cgroup empties only as the processes
    exit: its removal is retried for at most ~0.1 s (a lost execution's path, rare),
    after which `remove` at release time gets another go."""
    if not prefix:
        return False
    folder = f"{prefix}.{key}"
    try:
        with open(os.path.join(folder, "cgroup.kill"), "w") as f:
            f.write("1")
    except OSError:
        return False
    for _ in range(20):
        try:
            os.rmdir(folder)
            break
        except FileNotFoundError:
            break
        except OSError:
            time.sleep(0.005)
    return True


def remove_stale(prefix: str, keep: set[str]) -> None:
    """Remove this process directory's task folders but those of `keep` (a folder that
    still holds processes is not removed: rmdir refuses)."""
    if not prefix:
        return
    parent, stem = os.path.split(prefix)
    with contextlib.suppress(OSError):
        for name in os.listdir(parent):
            if name.startswith(stem + ".") and name[len(stem) + 1 :] not in keep:
                with contextlib.suppress(OSError):
                    os.rmdir(os.path.join(parent, name))


def remove(prefix: str, key: str) -> None:
    """Remove the task's folder (its monitor does; this is for monitors that died)."""
    if prefix:
        with contextlib.suppress(OSError):
            os.rmdir(f"{prefix}.{key}")
