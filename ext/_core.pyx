# cython: language_level=3, cdivision=True, boundscheck=False, wraparound=False
# cython: initializedcheck=False, embedsignature=True
"""Executor core: the C-level fork server, the monitor and the task child.

Processes (see DESIGN.md):

    hypervisor (Python) --SOCK_SEQPACKET--> fork server (this file, C loop, never runs
    Python again) --fork--> monitor (C, own session) --vfork--> task (own process group)

Why C: the monitor must stay tiny and must not need the GIL; code that runs after fork
is `nogil`, calls only async-signal-safe functions, allocates nothing and ends in `_exit`.

Wire formats (the fork-server request and reply, the monitor report) are defined once
per side: `wire.h` for C, `simple_scheduler.hypervisor.wire` for Python, and a test
holds the two to the same sizes and offsets (`wire_layout()` exports the C side).

A request is one SEQPACKET message of at most FS_REQUEST_MAX bytes: ss_fs_request_t,
then `ngroups` u32 gids, then nfixed + argc + envc NUL-terminated strings (key, title,
task_dir, cwd, report_path, semaphore_path, exec_path (PATH), cgroup_prefix, argv,
env). The fork server points a static (mmap'ed once) array at the strings, no malloc.
The monitor is a child subreaper: whatever the task leaves behind (setsid, double fork)
stays below it and is ended with the task (`ss_sweep` in monitor.h), and where the
hypervisor found a writable cgroup v2 folder the task also runs in a cgroup of its own.
With FS_FLAG_IDENTITY the task child takes the request's groups, gid and uid before
exec (the hypervisor resolved them: no NSS lookup after fork).
"""

from libc.stdint cimport int64_t, uint32_t, uint64_t

from includes cimport *

import os as _os

# ---------------------------------------------------------------- wire constants

DEF _PATH_CAP = 4096
DEF _HEARTBEAT_S = 2
DEF _EXITED_RETRY_S = 600
DEF _STARTED_RETRY_S = 60
DEF _STARTED_DELAY_MS = 10  # how long a task may end before its STARTED report is sent
# A cgroup folder path: a page less of the monitor's stack than a full path buffer (a
# longer one means no cgroup for the task).
DEF _CGROUP_CAP = 448
DEF _SWEEP_KILL_MS = 10000  # after KILL, how long leftovers may take to go before we report

FS_REQUEST_MAGIC = SS_FS_REQUEST_MAGIC
FS_REPLY_MAGIC = SS_FS_REPLY_MAGIC
REPORT_MAGIC = SS_REPORT_MAGIC
REPORT_VERSION = SS_REPORT_VERSION
FS_FLAG_SEMAPHORE = SS_FS_FLAG_SEMAPHORE
FS_FLAG_NO_FSYNC = SS_FS_FLAG_NO_FSYNC
FS_FLAG_IDENTITY = SS_FS_FLAG_IDENTITY
FS_NFIXED = SS_FS_NFIXED
FS_MAX_GROUPS = SS_FS_MAX_GROUPS
FS_REQUEST_MAX = SS_FS_REQUEST_MAX
FS_MAX_STRINGS = SS_FS_MAX_STRINGS
FS_SPAWNED = SS_FS_SPAWNED
FS_FAILED = SS_FS_FAILED
FS_ENDED = SS_FS_ENDED
REPORT_STARTED = SS_REPORT_STARTED
REPORT_EXITED = SS_REPORT_EXITED
REPORT_HEARTBEAT = SS_REPORT_HEARTBEAT
EXIT_FS_SETUP = SS_EXIT_FS_SETUP
EXIT_FS_POLL = SS_EXIT_FS_POLL
EXIT_NO_EXEC = SS_EXIT_NO_EXEC
HEARTBEAT_INTERVAL = _HEARTBEAT_S

# Task-child steps, recorded in the vfork-shared result when exec did not happen.
cdef enum:
    STEP_NONE = 0
    STEP_SETPGID
    STEP_SEMAPHORE
    STEP_CANCELLED
    STEP_STDIN
    STEP_STDOUT
    STEP_STDERR
    STEP_CHDIR
    STEP_EXEC
    STEP_OPEN_STDOUT
    STEP_OPEN_STDERR
    STEP_OPEN_DEVNULL
    STEP_OPEN_SEMAPHORE
    STEP_VFORK
    STEP_PATH
    STEP_SETGROUPS
    STEP_SETGID
    STEP_SETUID
    STEP_CAPABILITIES

cdef const char *step_name(int step) noexcept nogil:
    if step == STEP_SETPGID:
        return "setpgid"
    if step == STEP_SEMAPHORE:
        return "sem_wait"
    if step == STEP_STDIN:
        return "dup2 stdin"
    if step == STEP_STDOUT:
        return "dup2 stdout"
    if step == STEP_STDERR:
        return "dup2 stderr"
    if step == STEP_CHDIR:
        return "chdir"
    if step == STEP_EXEC:
        return "exec"
    if step == STEP_OPEN_STDOUT:
        return "open stdout"
    if step == STEP_OPEN_STDERR:
        return "open stderr"
    if step == STEP_OPEN_DEVNULL:
        return "open /dev/null"
    if step == STEP_OPEN_SEMAPHORE:
        return "open semaphore"
    if step == STEP_VFORK:
        return "vfork"
    if step == STEP_PATH:
        return "task directory path"
    if step == STEP_SETGROUPS:
        return "setgroups"
    if step == STEP_SETGID:
        return "setgid"
    if step == STEP_SETUID:
        return "setuid"
    if step == STEP_CAPABILITIES:
        return "drop capabilities"
    return "start"

# ---------------------------------------------------------------- tiny string helpers

cdef char *put_str(char *p, char *end, const char *s) noexcept nogil:
    """Append NUL-terminated `s`, truncating at `end` (exclusive); returns the new end."""
    while s[0] != 0 and p < end:
        p[0] = s[0]
        p += 1
        s += 1
    return p


cdef char *put_i64(char *p, char *end, int64_t v) noexcept nogil:
    cdef char tmp[24]
    cdef int n = 0
    cdef uint64_t u
    if v < 0:
        if p < end:
            p[0] = c'-'
            p += 1
        u = <uint64_t>(-(v + 1)) + 1
    else:
        u = <uint64_t>v
    while True:
        tmp[n] = <char>(c'0' + <int>(u % 10))
        n += 1
        u = u // 10
        if u == 0:
            break
    while n > 0 and p < end:
        n -= 1
        p[0] = tmp[n]
        p += 1
    return p


cdef char *put_ms(char *p, char *end, int64_t ms) noexcept nogil:
    """Epoch milliseconds as seconds with three decimals (JSON number)."""
    cdef int64_t frac = ms % 1000
    p = put_i64(p, end, ms // 1000)
    if p + 4 <= end:
        p[0] = c'.'
        p[1] = <char>(c'0' + <int>(frac // 100))
        p[2] = <char>(c'0' + <int>((frac // 10) % 10))
        p[3] = <char>(c'0' + <int>(frac % 10))
        p += 4
    return p


cdef char *put_json_str(char *p, char *end, const char *s) noexcept nogil:
    if p < end:
        p[0] = c'"'
        p += 1
    while s[0] != 0 and p + 2 < end:
        if s[0] == c'"' or s[0] == c'\\':
            p[0] = c'\\'
            p += 1
            p[0] = s[0]
        elif <unsigned char>s[0] < 0x20:
            p[0] = c' '
        else:
            p[0] = s[0]
        p += 1
        s += 1
    if p < end:
        p[0] = c'"'
        p += 1
    return p


cdef int join_sep(char *out, size_t cap, const char *d, char sep,
                  const char *name) noexcept nogil:
    """out = d + sep + name; -1 when it does not fit."""
    cdef size_t a = strlen(d)
    cdef size_t b = strlen(name)
    if a + b + 2 > cap:
        return -1
    memcpy(out, d, a)
    out[a] = sep
    memcpy(out + a + 1, name, b)
    out[a + 1 + b] = 0
    return 0


cdef int join_path(char *out, size_t cap, const char *d, const char *name) noexcept nogil:
    """out = d + "/" + name; -1 when it does not fit."""
    return join_sep(out, cap, d, c'/', name)


cdef int64_t now_ms() noexcept nogil:
    cdef timespec ts
    clock_gettime(CLOCK_REALTIME, &ts)
    return <int64_t>ts.tv_sec * 1000 + ts.tv_nsec // 1000000


cdef int64_t mono_s() noexcept nogil:
    cdef timespec ts
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return <int64_t>ts.tv_sec


cdef void sleep_ms(long ms) noexcept nogil:
    cdef timespec ts
    ts.tv_sec = ms // 1000
    ts.tv_nsec = (ms % 1000) * 1000000
    nanosleep(&ts, NULL)

# ---------------------------------------------------------------- /proc parsing

cdef int read_stat_fields(int pid, int first, int count, uint64_t *out) noexcept nogil:
    """Fields first..first+count-1 (1-based, as in proc(5)) of /proc/PID/stat; pid 0 = self.

    Returns 0, or -errno. Parses after the last ')' so a hostile comm cannot shift fields.
    """
    cdef char path[40]
    cdef char buf[1024]
    cdef char *p = path
    cdef int fd, got = 0, field = 2
    cdef ssize_t n, i = 0, last = -1
    cdef uint64_t v
    p = put_str(p, path + 39, "/proc/")
    if pid == 0:
        p = put_str(p, path + 39, "self")
    else:
        p = put_i64(p, path + 39, pid)
    p = put_str(p, path + 39, "/stat")
    p[0] = 0
    fd = open(path, O_RDONLY | O_CLOEXEC)
    if fd < 0:
        return -errno
    n = read(fd, buf, 1023)
    close(fd)
    if n <= 0:
        return -EINVAL
    buf[n] = 0
    while i < n:
        if buf[i] == c')':
            last = i
        i += 1
    if last < 0:
        return -EINVAL
    i = last + 1
    while i < n and got < count:
        if buf[i] == c' ':
            field += 1
            i += 1
            if field >= first and field < first + count:
                v = 0
                while i < n and buf[i] >= c'0' and buf[i] <= c'9':
                    v = v * 10 + <uint64_t>(buf[i] - c'0')
                    i += 1
                out[field - first] = v
                got += 1
            continue
        i += 1
    return 0 if got == count else -EINVAL


cdef uint64_t start_ticks_of(int pid) noexcept nogil:
    cdef uint64_t v = 0
    if read_stat_fields(pid, 22, 1, &v) != 0:
        return 0
    return v

# ---------------------------------------------------------------- process title

cdef uint64_t g_arg_start = 0, g_arg_end = 0, g_env_start = 0, g_env_end = 0


cdef int load_arg_area() noexcept nogil:
    cdef uint64_t f[4]
    cdef int rc = read_stat_fields(0, 48, 4, f)
    if rc != 0:
        return rc
    global g_arg_start, g_arg_end, g_env_start, g_env_end
    g_arg_start = f[0]
    g_arg_end = f[1]
    g_env_start = f[2]
    g_env_end = f[3]
    return 0


cdef void set_title(const char *comm, const char *title, bint use_env) noexcept nogil:
    """Rewrite the argv area so /proc/PID/cmdline and ps show exactly `title`.

    With `use_env` the title may spill into the environment block when it directly
    follows argv (only safe in processes that never call getenv again). When the title
    is shorter than the argv area, a non-NUL byte at arg_end-1 makes the kernel use its
    setproctitle path, which stops at the first NUL (Linux get_mm_cmdline).
    """
    cdef char *start = <char *>g_arg_start
    cdef char *end
    cdef size_t size, n
    prctl(PR_SET_NAME, <unsigned long>comm, 0, 0, 0)
    if g_arg_start == 0 or g_arg_end <= g_arg_start:
        return
    if use_env and g_env_start == g_arg_end and g_env_end > g_env_start:
        end = <char *>g_env_end
    else:
        end = <char *>g_arg_end
    size = <size_t>(end - start)
    if size < 2:
        return
    memset(start, 0, size)
    n = strnlen(title, size - 1)
    memcpy(start, title, n)
    if n + 1 < <size_t>(g_arg_end - g_arg_start):
        (<char *>(g_arg_end - 1))[0] = c'.'

# ---------------------------------------------------------------- monitor reports

cdef int report_send(int sock, sockaddr_un *addr, ss_report_t *r, int retry_s) noexcept nogil:
    """Send one report datagram, retrying while the hypervisor is away (up to retry_s)."""
    cdef int64_t deadline = mono_s() + retry_s
    cdef long backoff = 5
    cdef ssize_t n
    cdef int e
    while True:
        n = sendto(sock, r, sizeof(ss_report_t), MSG_NOSIGNAL if retry_s > 0 else MSG_NOSIGNAL | MSG_DONTWAIT,
                   <sockaddr *>addr, sizeof(sockaddr_un))
        if n >= 0:
            return 0
        e = errno
        if e == EINTR:
            continue
        if retry_s <= 0 or mono_s() >= deadline:
            return -e
        if e != EAGAIN:
            # ENOENT / ECONNREFUSED: no hypervisor bound right now; wait and retry.
            sleep_ms(backoff)
            if backoff < 500:
                backoff *= 2


cdef int write_all(int fd, const char *data, size_t size) noexcept nogil:
    """write() until `size` bytes are out (EINTR retried); 0 or -1."""
    cdef ssize_t n
    cdef size_t off = 0
    while off < size:
        n = write(fd, data + off, size - off)
        if n < 0:
            if errno == EINTR:
                continue
            return -1
        off += <size_t>n
    return 0


cdef int write_file_atomic(const char *path, const char *tmp, const char *data,
                           size_t size) noexcept nogil:
    """Write `tmp` and rename it to `path`: the file is either absent or complete.

    Returns the still-open descriptor (the caller fsyncs it when it needs durability),
    or -1.
    """
    cdef int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
    if fd < 0:
        return -1
    if write_all(fd, data, size) < 0 or rename(tmp, path) < 0:
        close(fd)
        return -1
    return fd


cdef char *put_pid_fields(char *p, char *e, ss_report_t *r) noexcept nogil:
    """`"pid": N, "pid_start_time": N, "monitor_pid": N` (pid null when it never ran)."""
    p = put_str(p, e, "\"pid\": ")
    p = put_i64(p, e, r.pid) if r.pid > 0 else put_str(p, e, "null")
    p = put_str(p, e, ", \"pid_start_time\": ")
    p = put_i64(p, e, <int64_t>r.pid_start_ticks) if r.pid > 0 else put_str(p, e, "null")
    p = put_str(p, e, ", \"monitor_pid\": ")
    return put_i64(p, e, r.monitor_pid)


cdef int write_status(const char *task_dir, ss_report_t *r, int pid_fd,
                      size_t pid_len, int pre_fd) noexcept nogil:
    """Make `status` appear, complete, in one step; returns its open fd, or -1.

    With the `pid` file's descriptor (`pid_fd`, content `pid_len` bytes long): overwrite
    that file with the status (which repeats the pid fields, so a reader of `pid` that
    races us still finds them) and rename `pid` to `status`: one inode per task for both
    files (inode allocation dominates the per-task cost on ext4). Without it, or when
    that fails: write `status.tmp` and rename it; `pre_fd`, when not -1, is that file
    already created, empty (a held execution's, made while it waited: the inode's
    allocation is then off the path from the task's end to its report). Either way
    `pid_fd` and `pre_fd` are consumed.
    """
    cdef char path[_PATH_CAP]
    cdef char tmp[_PATH_CAP]
    cdef char buf[768]
    cdef char *e = buf + sizeof(buf) - 2
    cdef char *p = buf
    cdef size_t n
    if join_path(path, _PATH_CAP, task_dir, "status") < 0:
        if pid_fd >= 0:
            close(pid_fd)
        if pre_fd >= 0:
            close(pre_fd)
        return -1
    p = put_str(p, e, "{\"exit_code\": ")
    p = put_i64(p, e, r.exit_code) if r.exit_code >= 0 else put_str(p, e, "null")
    p = put_str(p, e, ", \"signal\": ")
    p = put_i64(p, e, r.signal) if r.signal > 0 else put_str(p, e, "null")
    p = put_str(p, e, ", \"core_dumped\": ")
    p = put_str(p, e, "true" if r.core_dumped else "false")
    p = put_str(p, e, ", \"start_time\": ")
    p = put_ms(p, e, r.start_ms)
    p = put_str(p, e, ", \"end_time\": ")
    p = put_ms(p, e, r.end_ms)
    p = put_str(p, e, ", ")
    p = put_pid_fields(p, e, r)
    p = put_str(p, e, ", \"leftovers\": ")
    p = put_i64(p, e, r.leftovers)
    p = put_str(p, e, ", \"error\": ")
    p = put_json_str(p, e, r.error) if r.has_error else put_str(p, e, "null")
    p = put_str(p, e, "}\n")
    n = <size_t>(p - buf)
    if pid_fd >= 0:
        if (join_path(tmp, _PATH_CAP, task_dir, "pid") == 0
                and lseek(pid_fd, 0, SEEK_SET) == 0
                and write_all(pid_fd, buf, n) == 0
                and (n >= pid_len or ftruncate(pid_fd, <off_t>n) == 0)
                and rename(tmp, path) == 0):
            if pre_fd >= 0:
                close(pre_fd)
            return pid_fd
        close(pid_fd)
    if join_path(tmp, _PATH_CAP, task_dir, "status.tmp") < 0:
        if pre_fd >= 0:
            close(pre_fd)
        return -1
    if pre_fd >= 0:
        if write_all(pre_fd, buf, n) == 0 and rename(tmp, path) == 0:
            return pre_fd
        close(pre_fd)
    return write_file_atomic(path, tmp, buf, n)


cdef int write_pidfile(const char *task_dir, ss_report_t *r, size_t *length,
                       int pre_fd) noexcept nogil:
    """Create `pid` ({"pid", "pid_start_time", "monitor_pid"}); returns its fd, or -1.

    No tmp + rename: a reader may briefly find it empty, which reads as "no pid yet",
    like its absence. A hint for a restarted hypervisor, useless after a machine crash:
    no fsync. The descriptor stays open for `write_status`. `pre_fd` (see there), when
    not -1, becomes the `pid` file (renamed): still one inode per task. Consumed.
    """
    cdef int fd
    cdef char tmp[_PATH_CAP]
    cdef char path[_PATH_CAP]
    cdef char buf[160]
    cdef char *e = buf + sizeof(buf) - 2
    cdef char *p = buf
    if join_path(path, _PATH_CAP, task_dir, "pid") < 0:
        return -1
    p = put_str(p, e, "{")
    p = put_pid_fields(p, e, r)
    p = put_str(p, e, "}\n")
    fd = -1
    if pre_fd >= 0:
        if join_path(tmp, _PATH_CAP, task_dir, "status.tmp") == 0 and rename(tmp, path) == 0:
            fd = pre_fd
        else:
            close(pre_fd)
    if fd < 0:
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
    if fd < 0:
        return -1
    if write_all(fd, buf, <size_t>(p - buf)) < 0:
        close(fd)
        return -1
    length[0] = <size_t>(p - buf)
    return fd


cdef void set_error(ss_report_t *r, int step, int err) noexcept nogil:
    cdef char *p = r.error
    cdef char *e = r.error + sizeof(r.error) - 1
    cdef const char *desc
    r.has_error = 1
    p = put_str(p, e, "could not start: ")
    if step == STEP_CANCELLED:
        p = put_str(p, e, "cancelled before start")
    else:
        p = put_str(p, e, step_name(step))
        p = put_str(p, e, ": ")
        desc = strerrordesc_np(err)
        if desc == NULL:
            desc = "unknown error"
        p = put_str(p, e, desc)
    p[0] = 0

# ---------------------------------------------------------------- the task child

cdef struct ChildArgs:
    char **argv
    char **envp
    const char *exec_path
    const char *cwd
    const char *cancel_path
    sem_t *sem
    int fd_in
    int fd_out
    int fd_err
    bint set_identity
    uint32_t uid
    uint32_t gid
    uint32_t ngroups
    const uint32_t *groups
    const char *cgroup  # the task's cgroup folder, NULL: none
    int64_t released_ms  # set by the child when its semaphore let it go (0: no semaphore)


cdef inline void child_drop_and_chdir(ChildArgs *a) noexcept nogil:
    """The task child's last steps before exec that may fail: capabilities, folder."""
    if ss_drop_task_capabilities(a.set_identity) < 0:
        ss_child_fail(STEP_CAPABILITIES, errno)
        _exit(SS_EXIT_NO_EXEC)
    if chdir(a.cwd) < 0:
        ss_child_fail(STEP_CHDIR, errno)
        _exit(SS_EXIT_NO_EXEC)


cdef void child_exec(ChildArgs *a) noexcept nogil:
    """Runs in the vforked child: wait for release, redirect, exec. Never returns."""
    cdef sigset_t empty
    cdef char cand[_PATH_CAP]
    cdef const char *argv0 = a.argv[0]
    cdef const char *d
    cdef const char *q
    cdef size_t dl, al
    cdef int e, saved = ENOENT, saw_eacces = 0
    # Everything that does not need the task's account comes before the semaphore: a
    # held task (spawned ahead) has only the cancel check and exec left once released.
    if setpgid(0, 0) < 0:
        ss_child_fail(STEP_SETPGID, errno)
        _exit(SS_EXIT_NO_EXEC)
    if dup2(a.fd_in, 0) < 0:
        ss_child_fail(STEP_STDIN, errno)
        _exit(SS_EXIT_NO_EXEC)
    if dup2(a.fd_out, 1) < 0:
        ss_child_fail(STEP_STDOUT, errno)
        _exit(SS_EXIT_NO_EXEC)
    if dup2(a.fd_err, 2) < 0:
        ss_child_fail(STEP_STDERR, errno)
        _exit(SS_EXIT_NO_EXEC)
    close_range(3, <unsigned int>0xFFFFFFFF, 0)
    if a.cgroup != NULL:
        # Into the task's own cgroup before anything runs (and while we may still
        # write there): a process that leaves our tree stays in it.
        ss_cgroup_write(a.cgroup, "cgroup.procs", "0")
    if not a.set_identity:
        child_drop_and_chdir(a)
    if a.sem != NULL:
        while sem_wait(a.sem) < 0:
            if errno != EINTR:
                ss_child_fail(STEP_SEMAPHORE, errno)
                _exit(SS_EXIT_NO_EXEC)
        a.released_ms = now_ms()  # our memory is the monitor's (vfork): it reads this
    # With our privileges still: as the task's account the task folder may be closed.
    if access(a.cancel_path, F_OK) == 0:
        ss_child_fail(STEP_CANCELLED, 0)
        _exit(SS_EXIT_NO_EXEC)
    if a.set_identity:
        # Before chdir and exec: both are checked against the task's account.
        e = ss_set_identity(a.uid, a.gid, a.ngroups, a.groups)
        if e != 0:
            ss_child_fail(STEP_SETGROUPS + e - 1, errno)
            _exit(SS_EXIT_NO_EXEC)
        child_drop_and_chdir(a)
    sigemptyset(&empty)
    sigprocmask(SIG_SETMASK, &empty, NULL)
    # Own PATH search with execve, like _posixsubprocess: execvp would run a file that
    # fails with ENOEXEC through /bin/sh, hiding "exec format error".
    al = strlen(argv0)
    if al == 0:
        saved = ENOENT
    else:
        q = argv0
        while q[0] != 0 and q[0] != c'/':
            q += 1
        if q[0] == c'/':
            execve(argv0, a.argv, a.envp)
            saved = errno
        else:
            d = a.exec_path
            while True:
                q = d
                while q[0] != 0 and q[0] != c':':
                    q += 1
                dl = <size_t>(q - d)
                if dl + al + 2 <= _PATH_CAP:
                    if dl == 0:
                        memcpy(cand, argv0, al + 1)
                    else:
                        memcpy(cand, d, dl)
                        cand[dl] = c'/'
                        memcpy(cand + dl + 1, argv0, al + 1)
                    execve(cand, a.argv, a.envp)
                    e = errno
                    if e == EACCES:
                        saw_eacces = 1
                    elif e != ENOENT and e != ENOTDIR and e != ENAMETOOLONG and e != ELOOP:
                        saved = e
                        break
                if q[0] == 0:
                    if saw_eacces:
                        saved = EACCES
                    break
                d = q + 1
    ss_child_fail(STEP_EXEC, saved)
    _exit(SS_EXIT_NO_EXEC)

# ---------------------------------------------------------------- the monitor

cdef void finish(int status_fd, bint durable, int sock, sockaddr_un *addr,
                 ss_report_t *r, const char *cgroup) noexcept nogil:
    """Report EXITED, then make the (already renamed) status file durable, remove the
    task's (empty) cgroup, and exit.

    The status file is visible before the report goes out, so whoever hears of the end
    finds the file. Its fsync comes after the report: an ext4 journal commit per task
    on the report path cost a third of the throughput (measured); a machine crash in
    that window leaves an empty or absent file, which readers treat as "no status".
    The cgroup's removal is off the report path too (a monitor that dies before it is
    covered: the hypervisor removes the folder when it releases the execution).
    """
    report_send(sock, addr, r, _EXITED_RETRY_S)
    if cgroup != NULL:
        rmdir(cgroup)
    if status_fd >= 0:
        if durable:
            fsync(status_fd)
        close(status_fd)
    _exit(0)


cdef bint wait_task(pid_t pid, int *st, sigset_t *chld, long sec, long nsec) noexcept nogil:
    """Reap `pid` if it ends within the timeout (SIGCHLD is blocked: sigtimedwait).

    True when it was reaped (or cannot be waited for any more), False on timeout.
    Other children (descendants orphaned to us, the subreaper) are reaped as they end.
    """
    cdef timespec ts
    cdef siginfo_t info
    cdef pid_t w
    cdef int other
    ts.tv_sec = sec
    ts.tv_nsec = nsec
    while True:
        w = waitpid(-1, &other, WNOHANG)
        if w == pid:
            st[0] = other
            return True
        if w > 0:
            continue
        if w < 0 and errno == EINTR:
            continue
        if w < 0:
            return True
        if sigtimedwait(chld, &info, &ts) < 0 and errno == EAGAIN:
            return False


cdef void close_all_but(int a, int b) noexcept nogil:
    """Close every descriptor from 3 up except `a` and `b` (-1: none)."""
    cdef int lo = 3, first = a, second = b
    if first > second:
        first, second = second, first
    if first >= lo:
        if first > lo:
            close_range(<unsigned int>lo, <unsigned int>(first - 1), 0)
        lo = first + 1
    if second >= lo:
        if second > lo:
            close_range(<unsigned int>lo, <unsigned int>(second - 1), 0)
        lo = second + 1
    close_range(<unsigned int>lo, <unsigned int>0xFFFFFFFF, 0)


cdef void run_monitor(char **s, ss_fs_request_t *hdr, const uint32_t *groups, void *req_buf,
                      size_t req_len, void *ptr_buf, size_t ptr_len, int devnull,
                      int report_sock) noexcept nogil:
    """The monitor, from fork to _exit. `s` holds the parsed request strings, `groups`
    its gids; `devnull` and `report_sock` come open from the fork server (-1: open our
    own)."""
    cdef const char *key = s[0]
    cdef const char *task_dir = s[2]
    cdef const char *cwd = s[3]
    cdef const char *report_path = s[4]
    cdef const char *sem_path = s[5]
    cdef char p_out[_PATH_CAP]
    cdef char p_err[_PATH_CAP]
    cdef char p_cancel[_PATH_CAP]
    cdef char dir_copy[_PATH_CAP]
    cdef ChildArgs a
    cdef ss_report_t r
    cdef sockaddr_un addr
    cdef timeval tv
    cdef int sock, fd = -1, pid_fd = -1, pre_fd = -1, st = 0, step = STEP_NONE, err = 0
    cdef size_t pid_len = 0
    cdef pid_t me, pid = -1
    cdef sigset_t chld
    cdef void *semmap = NULL
    cdef int argc = <int>hdr.argc
    cdef uint32_t flags = hdr.flags
    cdef const char *cgroup_prefix = s[7]
    cdef char cgroup[_CGROUP_CAP]

    setsid()
    # Every descendant whose parent dies comes to us, not to init: nothing the task
    # starts (setsid, a double fork) can leave the tree that `ss_sweep` ends.
    prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    close_all_but(devnull, report_sock)
    set_title("ss-monitor", s[1], True)
    me = getpid()

    memset(&r, 0, sizeof(r))
    r.magic = SS_REPORT_MAGIC
    r.version = SS_REPORT_VERSION
    r.monitor_pid = me
    r.exit_code = -1
    memcpy(r.key, key, strnlen(key, sizeof(r.key) - 1))

    memset(&addr, 0, sizeof(addr))
    addr.sun_family = AF_UNIX
    memcpy(addr.sun_path, report_path, strnlen(report_path, sizeof(addr.sun_path) - 1))
    sock = report_sock
    if sock < 0:
        sock = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)
        tv.tv_sec = 1
        tv.tv_usec = 0
        setsockopt(sock, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv))

    memset(&a, 0, sizeof(a))
    a.fd_in = a.fd_out = a.fd_err = -1
    a.argv = s + SS_FS_NFIXED
    a.envp = s + SS_FS_NFIXED + argc + 1
    a.exec_path = s[6]
    a.cgroup = NULL
    # A cgroup per task where the hypervisor found a writable cgroup v2 folder (best
    # effort: without one, the subreaper alone keeps the task's processes together).
    if (cgroup_prefix[0] != 0 and join_sep(cgroup, _CGROUP_CAP, cgroup_prefix, c'.', key) == 0
            and (mkdir(cgroup, 0o755) == 0 or errno == EEXIST)):
        a.cgroup = cgroup
    a.cwd = cwd if cwd[0] != 0 else task_dir
    a.cancel_path = p_cancel
    if flags & SS_FS_FLAG_IDENTITY:
        a.set_identity = True
        a.uid, a.gid, a.ngroups, a.groups = hdr.uid, hdr.gid, hdr.ngroups, groups
    dir_copy[0] = 0
    if (strlen(task_dir) + 1 > _PATH_CAP or join_path(p_out, _PATH_CAP, task_dir, "stdout") < 0
            or join_path(p_err, _PATH_CAP, task_dir, "stderr") < 0
            or join_path(p_cancel, _PATH_CAP, task_dir, "cancel") < 0):
        step = STEP_PATH
        err = ENAMETOOLONG
    else:
        memcpy(dir_copy, task_dir, strlen(task_dir) + 1)
    if step == STEP_NONE:
        # 0600: the server's user reads outputs; another task account may not.
        a.fd_out = open(p_out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        if a.fd_out < 0:
            step, err = STEP_OPEN_STDOUT, errno
    if step == STEP_NONE:
        a.fd_err = open(p_err, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        if a.fd_err < 0:
            step, err = STEP_OPEN_STDERR, errno
    if step == STEP_NONE:
        a.fd_in = devnull if devnull >= 0 else open("/dev/null", O_RDONLY | O_CLOEXEC)
        if a.fd_in < 0:
            step, err = STEP_OPEN_DEVNULL, errno
    if step == STEP_NONE and (flags & SS_FS_FLAG_SEMAPHORE) and sem_path[0] != 0:
        # A named semaphore is /dev/shm/sem.NAME (sem_overview(7)); open + mmap is what
        # sem_open does, without its malloc'ed bookkeeping.
        fd = open(sem_path, O_RDWR | O_CLOEXEC)
        if fd < 0:
            step, err = STEP_OPEN_SEMAPHORE, errno
        else:
            semmap = mmap(NULL, sizeof(sem_t), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)
            close(fd)
            if semmap == MAP_FAILED:
                semmap = NULL
                step, err = STEP_OPEN_SEMAPHORE, errno
            else:
                a.sem = <sem_t *>semmap
                # Held: make the status file's inode now, while we wait (best effort).
                # (`p_out` is free again: stdout is open.)
                if join_path(p_out, _PATH_CAP, dir_copy, "status.tmp") == 0:
                    pre_fd = open(p_out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)

    r.start_ms = now_ms()
    if step == STEP_NONE:
        ss_child_reset()
        pid = vfork()
        if pid == 0:
            child_exec(&a)
        if pid < 0:
            step, err = STEP_VFORK, errno
        else:
            step, err = ss_child_get_step(), ss_child_get_err()
            if a.released_ms != 0:
                # Held (spawned ahead of its start): it began when released, not when
                # its monitor was forked; the same point as an unheld task's stamp
                # (before its set-up and exec).
                r.start_ms = a.released_ms
    # The task has exec'd (or failed): what follows needs nothing from the request.
    if semmap != NULL:
        munmap(semmap, sizeof(sem_t))
    if sem_path[0] != 0:
        unlink(sem_path)
    if a.fd_in >= 0:
        close(a.fd_in)
    if a.fd_out >= 0:
        close(a.fd_out)
    if a.fd_err >= 0:
        close(a.fd_err)

    if step != STEP_NONE:
        if pid > 0:
            while waitpid(pid, &st, 0) < 0 and errno == EINTR:
                pass
        r.kind = SS_REPORT_EXITED
        r.end_ms = now_ms()
        set_error(&r, step, err)
        fd = -1
        if dir_copy[0] != 0:
            fd = write_status(dir_copy, &r, -1, 0, pre_fd)
        finish(fd, not (flags & SS_FS_FLAG_NO_FSYNC), sock, &addr, &r, a.cgroup)

    r.pid = pid
    r.pid_start_ticks = start_ticks_of(pid)  # alive or a zombie: not reaped yet
    sigemptyset(&chld)
    sigaddset(&chld, SIGCHLD)
    if not wait_task(pid, &st, &chld, 0, _STARTED_DELAY_MS * 1000000):
        # Still running after the short wait: announce it, then wait for its end. (A
        # task that ended within the wait costs one report, EXITED, which carries the
        # pid, and no pid file: most short tasks, whose STARTED would be news for a
        # few milliseconds only.)
        # A long wait ahead: drop the request buffers, whose pages turn private to us
        # as soon as the fork server reuses them (a short task exits first).
        madvise(req_buf, req_len, MADV_DONTNEED)
        madvise(ptr_buf, ptr_len, MADV_DONTNEED)
        r.kind = SS_REPORT_STARTED
        pid_fd = write_pidfile(dir_copy, &r, &pid_len, pre_fd)
        pre_fd = -1
        report_send(sock, &addr, &r, _STARTED_RETRY_S)
        while not wait_task(pid, &st, &chld, _HEARTBEAT_S, 0):
            r.kind = SS_REPORT_HEARTBEAT
            report_send(sock, &addr, &r, 0)
    # The main process is gone: so must be everything it started (TERM, grace, KILL).
    # The cgroup is empty now (unless something escaped even the cgroup.kill): `finish`
    # removes it once the report is out.
    r.leftovers = ss_sweep(me, hdr.grace_ms, _SWEEP_KILL_MS, &chld, a.cgroup)
    r.end_ms = now_ms()
    r.kind = SS_REPORT_EXITED
    if WIFEXITED(st):
        r.exit_code = WEXITSTATUS(st)
    elif WIFSIGNALED(st):
        r.signal = WTERMSIG(st)
        r.core_dumped = 1 if WCOREDUMP(st) else 0
    finish(write_status(dir_copy, &r, pid_fd, pid_len, pre_fd), not (flags & SS_FS_FLAG_NO_FSYNC), sock, &addr,
           &r, a.cgroup)

# ---------------------------------------------------------------- the fork server

cdef int fs_reply(int sock, uint32_t kind, uint64_t request_id, int pid, int value,
                  uint64_t ticks) noexcept nogil:
    cdef ss_fs_reply_t rep
    cdef ssize_t n
    rep.magic = SS_FS_REPLY_MAGIC
    rep.kind = kind
    rep.request_id = request_id
    rep.pid = pid
    rep.value = value
    rep.start_ticks = ticks
    while True:
        n = send(sock, &rep, sizeof(rep), MSG_NOSIGNAL)
        if n >= 0:
            return 0
        if errno != EINTR:
            return -1


cdef int fs_parse(char *buf, ssize_t n, char **s, ss_fs_request_t *hdr) noexcept nogil:
    """Point `s` at the request's strings (after the gids): fixed, argv, NULL, env, NULL.

    0, or -EINVAL / -E2BIG."""
    cdef ssize_t i
    cdef char *p
    cdef char *end
    cdef uint32_t total, k = 0, slot = 0
    if n < <ssize_t>sizeof(ss_fs_request_t):
        return -EINVAL
    memcpy(hdr, buf, sizeof(ss_fs_request_t))
    if hdr.magic != SS_FS_REQUEST_MAGIC or hdr.nfixed != SS_FS_NFIXED or hdr.argc < 1:
        return -EINVAL
    if <ssize_t>hdr.size != n - <ssize_t>sizeof(ss_fs_request_t):
        return -EINVAL
    total = hdr.nfixed + hdr.argc + hdr.envc
    if total + 2 > SS_FS_MAX_STRINGS or hdr.ngroups > SS_FS_MAX_GROUPS:
        return -E2BIG
    if hdr.size <= hdr.ngroups * sizeof(uint32_t):
        return -EINVAL
    p = buf + sizeof(ss_fs_request_t) + hdr.ngroups * sizeof(uint32_t)
    end = buf + sizeof(ss_fs_request_t) + hdr.size
    if (end - 1)[0] != 0:
        return -EINVAL
    while k < total:
        if p >= end:
            return -EINVAL
        if k == hdr.nfixed + hdr.argc:
            s[slot] = NULL  # argv terminator
            slot += 1
        s[slot] = p
        slot += 1
        k += 1
        while p < end and p[0] != 0:
            p += 1
        p += 1
    if hdr.envc == 0:
        s[slot] = NULL
        slot += 1
    s[slot] = NULL
    if p != end:
        return -EINVAL
    return 0


DEF _MAPS_CAP = 262144
DEF _MAX_KEEP_PATHS = 8
DEF _TLS_MARGIN = 65536


cdef uint64_t parse_hex(const char **pp, const char *end) noexcept nogil:
    cdef const char *p = pp[0]
    cdef uint64_t v = 0
    cdef char c
    while p < end:
        c = p[0]
        if c >= c'0' and c <= c'9':
            v = v * 16 + <uint64_t>(c - c'0')
        elif c >= c'a' and c <= c'f':
            v = v * 16 + <uint64_t>(c - c'a' + 10)
        else:
            break
        p += 1
    pp[0] = p
    return v


cdef struct MapLine:
    uint64_t lo
    uint64_t hi
    bint private_writable
    const char *path  # NULL when anonymous ([heap], [stack] and the like count as paths)
    size_t path_len
    const char *next


cdef bint parse_map_line(const char *p, const char *end, MapLine *m) noexcept nogil:
    """One /proc/self/maps line: `lo-hi perms offset dev inode   path`."""
    cdef int field = 0
    m.lo = parse_hex(&p, end)
    if p >= end or p[0] != c'-':
        return False
    p += 1
    m.hi = parse_hex(&p, end)
    if p + 5 > end:
        return False
    m.private_writable = p[2] == c'w' and p[4] == c'p'
    while p < end and p[0] != c'\n' and field < 4:  # perms, offset, dev, inode
        while p < end and p[0] == c' ':
            p += 1
        while p < end and p[0] != c' ' and p[0] != c'\n':
            p += 1
        field += 1
    while p < end and p[0] == c' ':
        p += 1
    m.path = NULL
    m.path_len = 0
    if p < end and p[0] != c'\n':
        m.path = p
        while p < end and p[0] != c'\n':
            p += 1
        m.path_len = <size_t>(p - m.path)
    m.next = p + 1 if p < end else end
    return True


cdef bint holds_any(MapLine *m, uint64_t *addrs, int n) noexcept nogil:
    cdef int i
    for i in range(n):
        if m.lo <= addrs[i] < m.hi:
            return True
    return False


cdef bint overlaps_any(MapLine *m, uint64_t *lo, uint64_t *hi, int n) noexcept nogil:
    cdef int i
    for i in range(n):
        if lo[i] < m.hi and m.lo < hi[i]:
            return True
    return False


cdef size_t drop_around(MapLine *m, uint64_t *lo, uint64_t *hi, int n) noexcept nogil:
    """MADV_DONTFORK the parts of anonymous mapping `m` outside the ranges [lo, hi):
    the main thread's TLS shares one mapping with hundreds of KiB of the interpreter's
    memory. Returns the bytes dropped."""
    cdef uint64_t start = m.lo, stop
    cdef size_t dropped = 0
    cdef bint moved
    cdef int i
    while True:
        moved = True
        while moved:  # inside a kept range: go past its end
            moved = False
            for i in range(n):
                if lo[i] <= start < hi[i]:
                    start = (hi[i] + 0xFFF) & ~<uint64_t>0xFFF
                    moved = True
        if start >= m.hi:
            return dropped
        stop = m.hi
        for i in range(n):
            if start < lo[i] < stop:
                stop = lo[i] & ~<uint64_t>0xFFF
        if stop > start and madvise(<void *>start, <size_t>(stop - start), MADV_DONTFORK) == 0:
            dropped += <size_t>(stop - start)
        start = stop if stop > start else start + 0x1000


cdef size_t fs_shrink_forks(uint64_t *keep_lo, uint64_t *keep_hi, int nkeep, uint64_t *code,
                            int ncode) noexcept nogil:
    """MADV_DONTFORK every mapping a monitor never touches.

    A fork copies each mapping, and the page tables of private writable memory, and
    the monitor's exit tears them down again: the interpreter (libpython's code and
    data, its heap, the other libraries) is most of the fork server's memory and
    nothing a monitor runs or reads. Kept: the page-aligned ranges [keep_lo, keep_hi)
    (stack, request buffers, TLS: of an anonymous mapping only they stay), every
    mapping of a file that holds an address of `code` (libc, the loader, this
    module) with the anonymous mapping right after it (its .bss), and the kernel's
    ([stack], [vdso] ...). Returns the bytes left out of forks.
    """
    cdef char *buf = <char *>mmap(NULL, _MAPS_CAP, PROT_READ | PROT_WRITE,
                                  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
    cdef const char *kept[_MAX_KEEP_PATHS]
    cdef size_t kept_len[_MAX_KEEP_PATHS]
    cdef int nkept = 0, fd, i
    cdef ssize_t n
    cdef size_t size = 0, dropped = 0
    cdef const char *p
    cdef const char *end
    cdef MapLine m
    cdef bint keep_it, prev_kept = False
    cdef uint64_t prev_hi = 0
    if <void *>buf == MAP_FAILED:
        return 0
    fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC)
    if fd < 0:
        munmap(buf, _MAPS_CAP)
        return 0
    while size < _MAPS_CAP:
        n = read(fd, buf + size, _MAPS_CAP - size)
        if n < 0 and errno == EINTR:
            continue
        if n <= 0:
            break
        size += <size_t>n
    close(fd)
    if size == 0 or size >= _MAPS_CAP:  # unreadable, or too many mappings to be sure
        munmap(buf, _MAPS_CAP)
        return 0
    end = buf + size
    p = buf
    while p < end and nkept < _MAX_KEEP_PATHS:  # the files whose mappings all stay
        if not parse_map_line(p, end, &m):
            break
        if m.path != NULL and m.path[0] == c'/' and holds_any(&m, code, ncode):
            kept[nkept] = m.path
            kept_len[nkept] = m.path_len
            nkept += 1
        p = m.next
    p = buf
    while p < end:
        if not parse_map_line(p, end, &m):
            break
        keep_it = overlaps_any(&m, keep_lo, keep_hi, nkeep)
        if m.path != NULL:
            for i in range(nkept):
                if m.path_len == kept_len[i] and memcmp(m.path, kept[i], m.path_len) == 0:
                    keep_it = True
            if m.path[0] == c'[' and not (m.path_len == 6 and memcmp(m.path, "[heap]", 6) == 0):
                keep_it = True  # [stack], [vdso], [vvar]: the kernel's own
        elif prev_kept and prev_hi == m.lo:
            keep_it = True  # the .bss that follows a kept file's data
        elif keep_it and m.private_writable:
            dropped += drop_around(&m, keep_lo, keep_hi, nkeep)
        if not keep_it:
            if madvise(<void *>m.lo, <size_t>(m.hi - m.lo), MADV_DONTFORK) == 0:
                dropped += <size_t>(m.hi - m.lo)
        prev_kept = keep_it and m.path != NULL
        prev_hi = m.hi
        p = m.next
    munmap(buf, _MAPS_CAP)
    return dropped


cdef void fs_loop(int sock) noexcept nogil:
    cdef sigaction_t sa
    cdef sigset_t chld
    cdef pollfd fds[2]
    cdef signalfd_siginfo si
    cdef ss_fs_request_t hdr
    cdef char *buf
    cdef char **strs
    cdef size_t ptr_len = SS_FS_MAX_STRINGS * sizeof(char *)
    cdef ssize_t n
    cdef int sfd, sig, st, rc
    cdef pid_t pid
    cdef int devnull, report_sock
    cdef timeval tv
    cdef uint64_t keep_lo[5]
    cdef uint64_t keep_hi[5]
    cdef uint64_t code[3]
    cdef uint64_t tls

    # Clean slate: no inherited handlers or fds, SIGCHLD only through the signalfd.
    memset(&sa, 0, sizeof(sa))
    sa.sa_handler = SIG_DFL
    sigemptyset(&sa.sa_mask)
    sig = 1
    while sig < _NSIG:
        if sig != SIGKILL and sig != SIGSTOP:
            sigaction(sig, &sa, NULL)
        sig += 1
    if sock > 3:
        close_range(3, <unsigned int>(sock - 1), 0)
    close_range(<unsigned int>(sock + 1), <unsigned int>0xFFFFFFFF, 0)
    sigemptyset(&chld)
    sigaddset(&chld, SIGCHLD)
    sigprocmask(SIG_SETMASK, &chld, NULL)
    sfd = signalfd(-1, &chld, SFD_CLOEXEC | SFD_NONBLOCK)
    load_arg_area()
    set_title("ss-forkserver", "simple-scheduler: fork server", False)
    buf = <char *>mmap(NULL, SS_FS_REQUEST_MAX, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
    strs = <char **>mmap(NULL, ptr_len, PROT_READ | PROT_WRITE,
                         MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
    if sfd < 0 or <void *>buf == MAP_FAILED or <void *>strs == MAP_FAILED:
        _exit(SS_EXIT_FS_SETUP)
    # Opened once, inherited by every monitor: two syscalls and a socket less per task.
    # One datagram socket shared by all monitors is fine: each report is one sendto.
    devnull = open("/dev/null", O_RDONLY | O_CLOEXEC)
    report_sock = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)
    if report_sock >= 0:
        tv.tv_sec = 1
        tv.tv_usec = 0
        setsockopt(report_sock, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv))
    keep_lo[0] = <uint64_t>&sig  # the stack (kept whole: [stack])
    keep_hi[0] = keep_lo[0] + 1
    keep_lo[1] = <uint64_t>buf
    keep_hi[1] = keep_lo[1] + SS_FS_REQUEST_MAX
    keep_lo[2] = <uint64_t>strs
    keep_hi[2] = keep_lo[2] + ptr_len
    # TLS: errno, and the thread descriptor with the static TLS blocks below it
    # (x86-64), kept with a wide margin.
    tls = <uint64_t>ss_errno_address() & ~<uint64_t>0xFFF
    keep_lo[3] = tls - _TLS_MARGIN
    keep_hi[3] = tls + _TLS_MARGIN
    tls = <uint64_t>ss_thread_address() & ~<uint64_t>0xFFF
    keep_lo[4] = tls - _TLS_MARGIN
    keep_hi[4] = tls + _TLS_MARGIN
    code[0] = <uint64_t>ss_libc_code()
    code[1] = <uint64_t>ss_ldso_code()
    code[2] = <uint64_t><void *>fs_shrink_forks
    fs_shrink_forks(keep_lo, keep_hi, 5, code, 3)

    fds[0].fd = sock
    fds[0].events = POLLIN
    fds[1].fd = sfd
    fds[1].events = POLLIN
    while True:
        rc = poll(fds, 2, -1)
        if rc < 0:
            if errno == EINTR:
                continue
            _exit(SS_EXIT_FS_POLL)
        if fds[1].revents:
            while read(sfd, &si, sizeof(si)) > 0:
                pass
            while True:
                pid = waitpid(-1, &st, WNOHANG)
                if pid <= 0:
                    break
                fs_reply(sock, SS_FS_ENDED, 0, pid, st, 0)
        # Replies that fail (the hypervisor died) are not the end: requests it sent
        # before dying are journaled as prepared, and must still fork; its successor
        # adopts each monitor when it reports. The end is EOF, once they are drained.
        if fds[0].revents & POLLIN:
            n = recv(sock, buf, SS_FS_REQUEST_MAX, 0)
            if n == 0:
                _exit(0)  # the hypervisor is gone; monitors live on
            if n < 0:
                if errno == EINTR or errno == EAGAIN:
                    continue
                _exit(0)
            rc = fs_parse(buf, n, strs, &hdr)
            if rc < 0:
                fs_reply(sock, SS_FS_FAILED, hdr.request_id if n >= 16 else 0, 0, -rc, 0)
                continue
            pid = fork()
            if pid == 0:
                run_monitor(strs, &hdr, <const uint32_t *>(buf + sizeof(ss_fs_request_t)), buf,
                            SS_FS_REQUEST_MAX, strs, ptr_len, devnull, report_sock)
                _exit(0)
            if pid < 0:
                fs_reply(sock, SS_FS_FAILED, hdr.request_id, 0, errno, 0)
            else:
                fs_reply(sock, SS_FS_SPAWNED, hdr.request_id, pid, 0, start_ticks_of(pid))
        elif fds[0].revents & (POLLHUP | POLLERR):
            _exit(0)

# ---------------------------------------------------------------- Python entry points

cdef object _error_class = OSError


def set_error_class(cls):
    """The OSError subclass raised by this module: called as cls(errno, strerror, call)."""
    global _error_class
    _error_class = cls


cdef int _raise(int err, str call) except -1:
    raise _error_class(err, _os.strerror(err), call)


def fork_server_main(int sock):
    """Become the fork server on `sock` (a SOCK_SEQPACKET end). Never returns.

    Call it first thing in a fresh, small, single-threaded interpreter: everything it
    forks inherits that address space.
    """
    with nogil:
        fs_loop(sock)


def wire_layout():
    """The C side of the wire structs, from wire.h: {struct: (size, {field: (offset, size)})}.

    tests/test_wire.py holds `hypervisor.wire` to it."""
    cdef size_t i
    names = ("ss_fs_request_t", "ss_fs_reply_t", "ss_report_t")
    out = {name: (ss_wire_sizes[k], {}) for k, name in enumerate(names)}
    for i in range(<size_t>SS_WIRE_NFIELDS):
        f = ss_wire_fields[i]
        out[f.type.decode()][1][f.field.decode()] = (f.offset, f.size)
    return out


def keep_capabilities(unsigned long long keep):
    """Keep only the capabilities in mask `keep` (bounding, effective, permitted,
    inheritable sets); raises when the kernel refuses."""
    cdef int rc = ss_keep_capabilities(keep)
    if rc < 0:
        _raise(-rc, "capset")


def proc_start_ticks(int pid):
    """Start time of `pid` in clock ticks since boot (/proc/PID/stat field 22)."""
    cdef uint64_t v = 0
    cdef int rc
    with nogil:
        rc = read_stat_fields(pid, 22, 1, &v)
    if rc != 0:
        _raise(-rc, "read /proc/PID/stat")
    return v


def proc_arg_area():
    """(arg_start, arg_end, env_start, env_end) of this process (/proc/self/stat 48-51)."""
    cdef uint64_t f[4]
    cdef int rc = read_stat_fields(0, 48, 4, f)
    if rc != 0:
        _raise(-rc, "read /proc/self/stat")
    return (f[0], f[1], f[2], f[3])


def set_proc_title(str title, str comm=""):
    """argv rewrite (+ prctl(PR_SET_NAME, comm or title[:15])) within the argv area only.

    The environment block is left alone: the interpreter's C code may still getenv().
    """
    cdef bytes b = title.encode()
    cdef bytes c = (comm or title).encode()[:15]
    cdef int rc = load_arg_area()
    if rc != 0:
        _raise(-rc, "read /proc/self/stat")
    set_title(c, b, False)


def prctl_set_name(bytes name):
    """prctl(PR_SET_NAME): the 15-byte comm name (ps -o comm, top)."""
    cdef char comm[16]
    cdef size_t n = min(len(name), 15)
    memcpy(comm, <const char *>name, n)
    comm[n] = 0
    if prctl(PR_SET_NAME, <unsigned long>comm, 0, 0, 0) < 0:
        _raise(errno, "prctl")


def sem_create(bytes name, unsigned int value):
    """sem_open(O_CREAT | O_EXCL, 0600, value) then sem_close: a fresh named semaphore."""
    cdef sem_t *s = sem_open(name, O_CREAT | O_EXCL, <int>0o600, value)
    if s == SEM_FAILED:
        _raise(errno, "sem_open")
    sem_close(s)


def sem_post_named(bytes name):
    """sem_open an existing semaphore, sem_post it, sem_close it."""
    cdef sem_t *s = sem_open(name, 0)
    cdef int rc
    if s == SEM_FAILED:
        _raise(errno, "sem_open")
    rc = sem_post(s)
    err = errno
    sem_close(s)
    if rc < 0:
        _raise(err, "sem_post")


def sem_wait_named(bytes name, bint block=True):
    """sem_wait (GIL released; EINTR retried after signal checks) or sem_trywait.

    Returns False when `block` is false and the value was 0.
    """
    cdef sem_t *s = sem_open(name, 0)
    cdef int rc, err = 0
    if s == SEM_FAILED:
        _raise(errno, "sem_open")
    try:
        while True:
            if block:
                with nogil:
                    rc = sem_wait(s)
            else:
                rc = sem_trywait(s)
            if rc == 0:
                return True
            err = errno
            if err == EINTR:
                _os.kill(_os.getpid(), 0)  # let pending Python signal handlers run
                continue
            if err == EAGAIN and not block:
                return False
            _raise(err, "sem_wait" if block else "sem_trywait")
    finally:
        sem_close(s)


def sem_value(bytes name):
    """Current value of a named semaphore (tests and diagnostics)."""
    cdef sem_t *s = sem_open(name, 0)
    cdef int v = 0
    if s == SEM_FAILED:
        _raise(errno, "sem_open")
    sem_getvalue(s, &v)
    sem_close(s)
    return v


def sem_unlink_named(bytes name):
    if sem_unlink(name) < 0:
        _raise(errno, "sem_unlink")


def killpg_(int pgid, int sig):
    if killpg(pgid, sig) < 0:
        _raise(errno, "killpg")


def kill_(int pid, int sig):
    if kill(pid, sig) < 0:
        _raise(errno, "kill")


def waitpid_(int pid, int options):
    """waitpid, EINTR retried; returns (pid, raw status)."""
    cdef int st = 0
    cdef pid_t r
    while True:
        with nogil:
            r = waitpid(pid, &st, options)
        if r >= 0:
            return (r, st)
        if errno != EINTR:
            _raise(errno, "waitpid")


def decode_wait_status(int status):
    """(exit_code or None, signal or None, core_dumped) of a raw wait status."""
    if WIFEXITED(status):
        return (WEXITSTATUS(status), None, False)
    if WIFSIGNALED(status):
        return (None, WTERMSIG(status), bool(WCOREDUMP(status)))
    return (None, None, False)
