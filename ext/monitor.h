/* Hand-written C of the executor core (declared for Cython in includes.pxd).
 *
 * Everything here runs after fork in the fork server, a monitor or a vforked task
 * child: async-signal-safe calls only, no allocation, stack buffers only.
 */
#ifndef SS_MONITOR_H
#define SS_MONITOR_H

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <linux/capability.h>
#include <stdint.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* Written by the vforked task child, read by the monitor once vfork returns: the
   two share memory until the child execs. Globals, volatile: the compiler must
   reload them after vfork returns. */
static volatile int ss_child_step;
static volatile int ss_child_err;
static inline void ss_child_fail(int step, int err) { ss_child_err = err; ss_child_step = step; }
static inline void ss_child_reset(void) { ss_child_err = 0; ss_child_step = 0; }
static inline int ss_child_get_step(void) { return ss_child_step; }
static inline int ss_child_get_err(void) { return ss_child_err; }

/* Addresses the monitor's memory must keep (see fs_shrink_forks): this thread's TLS
   and descriptor, and code of libc and of the dynamic loader (their data mappings
   carry the same path). */
void *__tls_get_addr(void *);
static inline void *ss_errno_address(void) { return (void *)&errno; }
static inline void *ss_thread_address(void) { return (void *)pthread_self(); }
static inline void *ss_libc_code(void) { return (void *)&sendto; }
static inline void *ss_ldso_code(void) { return (void *)&__tls_get_addr; }

/* Become uid/gid with exactly `groups`, in the vforked task child. Raw system calls:
   glibc's wrappers broadcast credential changes to every thread of the process
   (setxid), which in a vfork child means the monitor's bookkeeping. Returns 0, or
   1 (setgroups), 2 (setgid), 3 (setuid) with errno set. */
static inline int ss_set_identity(uint32_t uid, uint32_t gid, uint32_t ngroups,
                                  const uint32_t *groups) {
    if (syscall(SYS_setgroups, (size_t)ngroups, groups) < 0)
        return 1;
    if (syscall(SYS_setresgid, gid, gid, gid) < 0)
        return 2;
    if (syscall(SYS_setresuid, uid, uid, uid) < 0)
        return 3;
    return 0;
}

/* In the task child, before exec: no capability of the hypervisor reaches the task.
   Ambient capabilities would survive exec; a switch between two non-root uids keeps
   the permitted set (capabilities(7)), so that is emptied too. 0, or -1 and errno. */
static inline int ss_drop_task_capabilities(int switched) {
    struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct data[2];
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
        return -1;
    if (!switched)
        return 0;
    memset(data, 0, sizeof(data));
    return (int)syscall(SYS_capset, &hdr, data);
}

/* Keep only the capabilities of mask `keep` (bit n: capability n): out of the bounding
   set (when we may change it: CAP_SETPCAP), so that no later exec as root regains
   them, and out of the effective, permitted and inheritable sets (ambient ones go
   with the latter). Returns 0, or -errno. */
static inline int ss_keep_capabilities(uint64_t keep) {
    struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct data[2];
    int cap;
    for (cap = 0; cap < 64; cap++) {
        if (keep & (1ULL << cap))
            continue;
        if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0) {
            if (errno == EINVAL)
                break; /* past the last capability the kernel knows */
            if (errno == EPERM)
                break; /* no CAP_SETPCAP: the bounding set stays */
            return -errno;
        }
    }
    if (syscall(SYS_capget, &hdr, data) < 0)
        return -errno;
    data[0].effective &= (uint32_t)keep;
    data[0].permitted &= (uint32_t)keep;
    data[0].inheritable &= (uint32_t)keep;
    data[1].effective &= (uint32_t)(keep >> 32);
    data[1].permitted &= (uint32_t)(keep >> 32);
    data[1].inheritable &= (uint32_t)(keep >> 32);
    if (syscall(SYS_capset, &hdr, data) < 0)
        return -errno;
    return 0;
}

/* The parent pid of `pid` from /proc/PID/stat (field 4, after the last ')'), or -1. */
static inline pid_t ss_ppid_of(const char *pid) {
    char path[40], buf[512];
    size_t n = 0;
    const char *p;
    ssize_t got, i, last = -1;
    pid_t v = 0;
    int fd;
    memcpy(path, "/proc/", 6);
    n = 6;
    for (p = pid; *p && n < 28; p++)
        path[n++] = *p;
    memcpy(path + n, "/stat", 6);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    got = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (got <= 0)
        return -1;
    for (i = 0; i < got; i++)
        if (buf[i] == ')')
            last = i;
    /* ") S PPID " */
    if (last < 0 || last + 4 >= got)
        return -1;
    for (i = last + 4; i < got && buf[i] >= '0' && buf[i] <= '9'; i++)
        v = v * 10 + (buf[i] - '0');
    return v;
}

struct ss_dirent64 {
    uint64_t d_ino;
    int64_t d_off;
    unsigned short d_reclen;
    unsigned char d_type;
    char d_name[];
};

/* Signal every child of `me` (a subreaper: every descendant whose parent died is one)
   with `sig`; returns how many there were. Counted in `seen` (distinct pids, up to
   `cap`), so the caller knows how many processes the task left behind. /proc is
   read with getdents64 (opendir allocates); this runs only when a child exists. */
static inline int ss_signal_children(pid_t me, int sig, pid_t *seen, int *nseen, int cap,
                                     int *total) {
    char buf[4096] __attribute__((aligned(8)));
    int fd = open("/proc", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int found = 0, j, known;
    long n, off;
    pid_t pid;
    const char *c;
    if (fd < 0)
        return 0;
    while ((n = syscall(SYS_getdents64, fd, buf, sizeof(buf))) > 0) {
        for (off = 0; off < n;) {
            struct ss_dirent64 *d = (struct ss_dirent64 *)(buf + off);
            off += d->d_reclen;
            if (d->d_name[0] < '1' || d->d_name[0] > '9')
                continue;
            if (ss_ppid_of(d->d_name) != me)
                continue;
            pid = 0;
            for (c = d->d_name; *c >= '0' && *c <= '9'; c++)
                pid = pid * 10 + (*c - '0');
            kill(pid, sig);
            if (sig == SIGTERM)
                kill(pid, SIGCONT); /* a stopped process acts on TERM only once resumed */
            found++;
            known = 0;
            for (j = 0; j < *nseen; j++)
                if (seen[j] == pid)
                    known = 1;
            if (!known) {
                (*total)++;
                if (*nseen < cap)
                    seen[(*nseen)++] = pid;
            }
        }
    }
    close(fd);
    return found;
}

/* Reap every child that has ended; 1 when children remain, 0 when there are none. */
static inline int ss_reap_children(void) {
    int st;
    pid_t w;
    for (;;) {
        w = waitpid(-1, &st, WNOHANG);
        if (w > 0)
            continue;
        if (w < 0 && errno == EINTR)
            continue;
        return w == 0;
    }
}

static inline int64_t ss_mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Write `value` to the file `name` of cgroup folder `dir` (best effort: ignored when
   that fails). "0" to cgroup.procs moves the caller, "1" to cgroup.kill kills every
   process in the cgroup (Linux 5.14). */
static inline void ss_cgroup_write(const char *dir, const char *name, const char *value) {
    char path[512]; /* the cgroup folder is at most 448 bytes (_CGROUP_CAP) */
    size_t a = strlen(dir), b = strlen(name);
    int fd;
    if (a + b + 2 > sizeof(path))
        return;
    memcpy(path, dir, a);
    path[a] = '/';
    memcpy(path + a + 1, name, b + 1);
    fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    if (write(fd, value, strlen(value)) < 0) {
        /* best effort */
    }
    close(fd);
}

/* Once the task's main process has been reaped: end whatever it left behind, as
   systemd does for a unit. TERM (and CONT) every remaining descendant, again as
   their parents die and they come to us, for up to `grace_ms`; then KILL them the
   same way until none is left (at most `kill_ms` more: a process stuck in the kernel
   must not keep the report from going out). With the task's `cgroup` folder (NULL:
   none), the KILL also goes to every process in it, below us or not. SIGCHLD is
   blocked in `chld`. Returns how many processes were left. Costs one waitpid when there
   are none. */
static inline int ss_sweep(pid_t me, long grace_ms, long kill_ms, const sigset_t *chld,
                           const char *cgroup) {
    pid_t seen[256];
    int nseen = 0, total = 0, sig = SIGTERM;
    int64_t now, deadline;
    struct timespec ts;
    siginfo_t info;
    if (!ss_reap_children())
        return 0;
    deadline = ss_mono_ms() + grace_ms;
    for (;;) {
        ss_signal_children(me, sig, seen, &nseen, 256, &total);
        if (!ss_reap_children())
            return total;
        now = ss_mono_ms();
        if (now >= deadline) {
            if (sig == SIGKILL)
                return total;
            sig = SIGKILL;
            deadline = now + kill_ms;
            if (cgroup != NULL)
                ss_cgroup_write(cgroup, "cgroup.kill", "1");
            continue;
        }
        /* Woken by a child's end (its own children are ours now), else look again
           soon: a descendant whose parent died without being our child says nothing. */
        ts.tv_sec = 0;
        ts.tv_nsec = (deadline - now < 20 ? deadline - now : 20) * 1000000L;
        sigtimedwait(chld, &info, &ts);
    }
}

#endif
