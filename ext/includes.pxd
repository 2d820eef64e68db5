# cython: language_level=3
"""libc and Linux declarations used by the executor core, in one place.

Everything the fork server, the monitor and the task child call after fork is declared
here `nogil`; nothing in this file needs the GIL.
"""

from libc.stdint cimport int32_t, int64_t, uint16_t, uint32_t, uint64_t


cdef extern from "<errno.h>" nogil:
    int errno
    enum:
        EINTR
        EAGAIN
        ENOENT
        ENOMEM
        EINVAL
        ECHILD
        ECONNREFUSED
        EEXIST
        E2BIG
        EACCES
        ENOTDIR
        ELOOP
        ENAMETOOLONG
        ENOSYS


cdef extern from "<string.h>" nogil:
    void *memcpy(void *dest, const void *src, size_t n)
    void *memset(void *s, int c, size_t n)
    int memcmp(const void *a, const void *b, size_t n)
    size_t strlen(const char *s)
    size_t strnlen(const char *s, size_t maxlen)
    const char *strerrordesc_np(int errnum)


cdef extern from "<fcntl.h>" nogil:
    int open(const char *pathname, int flags, ...)
    enum:
        O_RDONLY
        O_WRONLY
        O_RDWR
        O_CREAT
        O_EXCL
        O_TRUNC
        O_CLOEXEC
        O_NONBLOCK
        O_APPEND


cdef extern from "<unistd.h>" nogil:
    ctypedef int pid_t
    ctypedef long ssize_t
    ctypedef long off_t
    pid_t fork()
    pid_t vfork()
    pid_t setsid()
    int setpgid(pid_t pid, pid_t pgid)
    pid_t getpid()
    int dup2(int oldfd, int newfd)
    int close(int fd)
    int close_range(unsigned int first, unsigned int last, int flags)
    int chdir(const char *path)
    int execve(const char *path, char *const argv[], char *const envp[])
    void _exit(int status)
    ssize_t read(int fd, void *buf, size_t count)
    ssize_t write(int fd, const void *buf, size_t count)
    int access(const char *path, int mode)
    int unlink(const char *path)
    int rmdir(const char *path)
    int fsync(int fd)
    off_t lseek(int fd, off_t offset, int whence)
    int ftruncate(int fd, off_t length)
    enum:
        F_OK
        X_OK
        SEEK_SET


cdef extern from "<sys/stat.h>" nogil:
    int mkdir(const char *path, unsigned int mode)


cdef extern from "<stdio.h>" nogil:
    int rename(const char *oldpath, const char *newpath)


cdef extern from "<time.h>" nogil:
    ctypedef long time_t
    struct timespec:
        time_t tv_sec
        long tv_nsec
    ctypedef int clockid_t
    int clock_gettime(clockid_t clk, timespec *tp)
    int nanosleep(const timespec *req, timespec *rem)
    enum:
        CLOCK_REALTIME
        CLOCK_MONOTONIC


cdef extern from "<sys/time.h>" nogil:
    struct timeval:
        time_t tv_sec
        long tv_usec


cdef extern from "<signal.h>" nogil:
    ctypedef struct sigset_t:
        pass
    ctypedef struct siginfo_t:
        int si_signo
    ctypedef void (*sighandler_t)(int)
    struct sigaction_t "sigaction":
        sighandler_t sa_handler
        sigset_t sa_mask
        int sa_flags
    int sigaction(int signum, const sigaction_t *act, sigaction_t *oldact)
    int sigemptyset(sigset_t *s)
    int sigaddset(sigset_t *s, int signum)
    int sigprocmask(int how, const sigset_t *s, sigset_t *old)
    int sigtimedwait(const sigset_t *s, siginfo_t *info, const timespec *timeout)
    int kill(pid_t pid, int sig)
    int killpg(pid_t pgrp, int sig)
    sighandler_t SIG_DFL
    enum:
        SIG_BLOCK
        SIG_UNBLOCK
        SIG_SETMASK
        SIGCHLD
        SIGKILL
        SIGSTOP
        SIGTERM
        SIGPIPE
        _NSIG


cdef extern from "<sys/signalfd.h>" nogil:
    struct signalfd_siginfo:
        uint32_t ssi_signo
    int signalfd(int fd, const sigset_t *mask, int flags)
    enum:
        SFD_CLOEXEC
        SFD_NONBLOCK


cdef extern from "<poll.h>" nogil:
    struct pollfd:
        int fd
        short events
        short revents
    int poll(pollfd *fds, unsigned long nfds, int timeout)
    enum:
        POLLIN
        POLLHUP
        POLLERR


cdef extern from "<sys/wait.h>" nogil:
    pid_t waitpid(pid_t pid, int *status, int options)
    bint WIFEXITED(int status)
    int WEXITSTATUS(int status)
    bint WIFSIGNALED(int status)
    int WTERMSIG(int status)
    bint WCOREDUMP(int status)
    bint WIFSTOPPED(int status)
    enum:
        WNOHANG


cdef extern from "<sys/socket.h>" nogil:
    ctypedef unsigned int socklen_t
    struct sockaddr:
        pass
    int socket(int domain, int type, int protocol)
    ssize_t sendto(int fd, const void *buf, size_t n, int flags,
                   const sockaddr *addr, socklen_t addrlen)
    ssize_t send(int fd, const void *buf, size_t n, int flags)
    ssize_t recv(int fd, void *buf, size_t n, int flags)
    int setsockopt(int fd, int level, int name, const void *val, socklen_t len)
    enum:
        AF_UNIX
        SOCK_DGRAM
        SOCK_CLOEXEC
        SOL_SOCKET
        SO_SNDTIMEO
        MSG_DONTWAIT
        MSG_NOSIGNAL


cdef extern from "<sys/un.h>" nogil:
    struct sockaddr_un:
        unsigned short sun_family
        char sun_path[108]


cdef extern from "<sys/mman.h>" nogil:
    void *mmap(void *addr, size_t length, int prot, int flags, int fd, long offset)
    int munmap(void *addr, size_t length)
    int madvise(void *addr, size_t length, int advice)
    void *MAP_FAILED
    enum:
        PROT_READ
        PROT_WRITE
        MAP_SHARED
        MAP_PRIVATE
        MAP_ANONYMOUS
        MADV_DONTNEED
        MADV_DONTFORK


cdef extern from "<sys/prctl.h>" nogil:
    int prctl(int option, unsigned long arg2, unsigned long arg3,
              unsigned long arg4, unsigned long arg5)
    enum:
        PR_SET_NAME
        PR_SET_CHILD_SUBREAPER


cdef extern from "<semaphore.h>" nogil:
    ctypedef struct sem_t:
        pass
    sem_t *sem_open(const char *name, int oflag, ...)
    int sem_close(sem_t *sem)
    int sem_post(sem_t *sem)
    int sem_wait(sem_t *sem)
    int sem_trywait(sem_t *sem)
    int sem_getvalue(sem_t *sem, int *sval)
    int sem_unlink(const char *name)
    sem_t *SEM_FAILED


cdef extern from "wire.h" nogil:
    enum:
        SS_FS_REQUEST_MAGIC
        SS_FS_REPLY_MAGIC
        SS_REPORT_MAGIC
        SS_REPORT_VERSION
        SS_FS_FLAG_SEMAPHORE
        SS_FS_FLAG_NO_FSYNC
        SS_FS_FLAG_IDENTITY
        SS_FS_SPAWNED
        SS_FS_FAILED
        SS_FS_ENDED
        SS_REPORT_STARTED
        SS_REPORT_EXITED
        SS_REPORT_HEARTBEAT
        SS_EXIT_FS_SETUP
        SS_EXIT_FS_POLL
        SS_EXIT_NO_EXEC
        SS_FS_NFIXED
        SS_FS_MAX_GROUPS
        SS_FS_REQUEST_MAX
        SS_FS_MAX_STRINGS
        SS_WIRE_NFIELDS
    ctypedef struct ss_report_t:
        uint32_t magic
        uint16_t version
        uint16_t kind
        int32_t monitor_pid
        int32_t pid
        uint64_t pid_start_ticks
        int32_t exit_code
        int32_t signal
        int32_t core_dumped
        int32_t has_error
        int32_t leftovers
        int32_t reserved
        int64_t start_ms
        int64_t end_ms
        char key[104]
        char error[160]
    ctypedef struct ss_fs_request_t:
        uint32_t magic
        uint32_t flags
        uint64_t request_id
        uint32_t nfixed
        uint32_t argc
        uint32_t envc
        uint32_t size
        uint32_t uid
        uint32_t gid
        uint32_t ngroups
        uint32_t grace_ms
    ctypedef struct ss_fs_reply_t:
        uint32_t magic
        uint32_t kind
        uint64_t request_id
        int32_t pid
        int32_t value
        uint64_t start_ticks
    ctypedef struct ss_wire_field_t:
        const char *type
        const char *field
        size_t offset
        size_t size
    const ss_wire_field_t ss_wire_fields[]
    const size_t ss_wire_sizes[3]


cdef extern from "monitor.h" nogil:
    void ss_child_fail(int step, int err)
    void *ss_errno_address()
    void *ss_thread_address()
    void *ss_libc_code()
    void *ss_ldso_code()
    void ss_child_reset()
    int ss_child_get_step()
    int ss_child_get_err()
    int ss_set_identity(uint32_t uid, uint32_t gid, uint32_t ngroups, const uint32_t *groups)
    int ss_sweep(pid_t me, long grace_ms, long kill_ms, const sigset_t *chld, const char *cgroup)
    void ss_cgroup_write(const char *dir, const char *name, const char *value)
    int ss_keep_capabilities(uint64_t keep)
    int ss_drop_task_capabilities(int switched)
