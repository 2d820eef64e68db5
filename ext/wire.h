/* Wire layouts between the hypervisor (Python), the fork server and the monitors (C).
 *
 * The C half of one definition; the Python half is simple_scheduler/hypervisor/wire.py,
 * and tests/test_wire.py checks that both agree on every size and field offset (through
 * ss_wire_fields below, exported by _core.wire_layout()). Native endianness: both ends
 * run on the same machine. Change a struct here, in wire.py, and bump its version/magic.
 */
#ifndef SS_WIRE_H
#define SS_WIRE_H

#include <stddef.h>
#include <stdint.h>

#define SS_FS_REQUEST_MAGIC 0x53534651u
#define SS_FS_REPLY_MAGIC 0x53534652u
#define SS_REPORT_MAGIC 0x53535250u
#define SS_REPORT_VERSION 2

/* ss_fs_request_t.flags */
#define SS_FS_FLAG_SEMAPHORE 1u    /* wait on the named semaphore before exec */
#define SS_FS_FLAG_NO_FSYNC 2u     /* do not fsync the status file */
#define SS_FS_FLAG_IDENTITY 4u     /* switch to groups/gid/uid of the request before exec */

/* ss_fs_reply_t.kind */
#define SS_FS_SPAWNED 1 /* pid = monitor, start_ticks = its /proc start time */
#define SS_FS_FAILED 2  /* value = errno */
#define SS_FS_ENDED 3   /* a monitor was reaped: pid, value = wait status, request_id = 0 */

/* ss_report_t.kind */
#define SS_REPORT_STARTED 1
#define SS_REPORT_EXITED 2
#define SS_REPORT_HEARTBEAT 3

/* Exit codes of the C processes (the hypervisor logs them when it reaps one). */
#define SS_EXIT_FS_SETUP 70  /* fork server: signalfd or its buffers could not be made */
#define SS_EXIT_FS_POLL 71   /* fork server: poll failed */
#define SS_EXIT_NO_EXEC 127  /* task child: a step before exec failed (see the report) */

/* Request strings that precede argv: key, title, task_dir, cwd, report_path,
   semaphore_path, exec_path (PATH), cgroup_prefix (the task's cgroup folder is
   "<prefix>.<key>"; "": no cgroup per task). */
#define SS_FS_NFIXED 8
#define SS_FS_MAX_GROUPS 1024
/* Largest request, and most strings in one: the fork server's static buffers. */
#define SS_FS_REQUEST_MAX 196608
#define SS_FS_MAX_STRINGS 16384

/* Fork-server request: this header, then ngroups uint32 gids, then nfixed + argc + envc
   NUL-terminated strings; `size` counts the bytes after the header. */
typedef struct {
    uint32_t magic;
    uint32_t flags;
    uint64_t request_id;
    uint32_t nfixed;
    uint32_t argc;
    uint32_t envc;
    uint32_t size;
    uint32_t uid;      /* with SS_FS_FLAG_IDENTITY */
    uint32_t gid;      /* with SS_FS_FLAG_IDENTITY */
    uint32_t ngroups;  /* supplementary gids after the header (SS_FS_FLAG_IDENTITY) */
    uint32_t grace_ms; /* TERM -> KILL of the processes a task leaves behind */
} ss_fs_request_t;

typedef struct {
    uint32_t magic;
    uint32_t kind;
    uint64_t request_id;
    int32_t pid;
    int32_t value;
    uint64_t start_ticks;
} ss_fs_reply_t;

/* Monitor report: one datagram to the hypervisor's report socket. */
typedef struct {
    uint32_t magic;
    uint16_t version;
    uint16_t kind;
    int32_t monitor_pid;
    int32_t pid;
    uint64_t pid_start_ticks;
    int32_t exit_code;   /* -1: none */
    int32_t signal;      /* 0: none */
    int32_t core_dumped;
    int32_t has_error;
    int32_t leftovers;   /* processes still running when the task's main process ended */
    int32_t reserved;
    int64_t start_ms;    /* epoch milliseconds */
    int64_t end_ms;
    char key[104];
    char error[160];
} ss_report_t;

/* Every field of every wire struct: the agreement test walks this table. */
typedef struct {
    const char *type;
    const char *field;
    size_t offset;
    size_t size;
} ss_wire_field_t;

#define SS_WIRE_FIELD(T, F) {#T, #F, offsetof(T, F), sizeof(((T *)0)->F)}
static const ss_wire_field_t ss_wire_fields[] = {
    SS_WIRE_FIELD(ss_fs_request_t, magic),
    SS_WIRE_FIELD(ss_fs_request_t, flags),
    SS_WIRE_FIELD(ss_fs_request_t, request_id),
    SS_WIRE_FIELD(ss_fs_request_t, nfixed),
    SS_WIRE_FIELD(ss_fs_request_t, argc),
    SS_WIRE_FIELD(ss_fs_request_t, envc),
    SS_WIRE_FIELD(ss_fs_request_t, size),
    SS_WIRE_FIELD(ss_fs_request_t, uid),
    SS_WIRE_FIELD(ss_fs_request_t, gid),
    SS_WIRE_FIELD(ss_fs_request_t, ngroups),
    SS_WIRE_FIELD(ss_fs_request_t, grace_ms),
    SS_WIRE_FIELD(ss_fs_reply_t, magic),
    SS_WIRE_FIELD(ss_fs_reply_t, kind),
    SS_WIRE_FIELD(ss_fs_reply_t, request_id),
    SS_WIRE_FIELD(ss_fs_reply_t, pid),
    SS_WIRE_FIELD(ss_fs_reply_t, value),
    SS_WIRE_FIELD(ss_fs_reply_t, start_ticks),
    SS_WIRE_FIELD(ss_report_t, magic),
    SS_WIRE_FIELD(ss_report_t, version),
    SS_WIRE_FIELD(ss_report_t, kind),
    SS_WIRE_FIELD(ss_report_t, monitor_pid),
    SS_WIRE_FIELD(ss_report_t, pid),
    SS_WIRE_FIELD(ss_report_t, pid_start_ticks),
    SS_WIRE_FIELD(ss_report_t, exit_code),
    SS_WIRE_FIELD(ss_report_t, signal),
    SS_WIRE_FIELD(ss_report_t, core_dumped),
    SS_WIRE_FIELD(ss_report_t, has_error),
    SS_WIRE_FIELD(ss_report_t, leftovers),
    SS_WIRE_FIELD(ss_report_t, reserved),
    SS_WIRE_FIELD(ss_report_t, start_ms),
    SS_WIRE_FIELD(ss_report_t, end_ms),
    SS_WIRE_FIELD(ss_report_t, key),
    SS_WIRE_FIELD(ss_report_t, error),
};
#define SS_WIRE_NFIELDS (sizeof(ss_wire_fields) / sizeof(ss_wire_fields[0]))
static const size_t ss_wire_sizes[3] = {
    sizeof(ss_fs_request_t), sizeof(ss_fs_reply_t), sizeof(ss_report_t)};

#endif
