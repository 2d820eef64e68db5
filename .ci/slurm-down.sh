#!/usr/bin/env bash
# Stop the one-node Slurm cluster that .ci/slurm-up.sh started: slurmd, slurmctld, then
# munged (unless --keep-munge). Idempotent: what is not running is skipped. Exits non-zero
# when a daemon is still alive after 10 s (SIGKILL is sent first).
set -uo pipefail

keep_munge=0
[ "${1:-}" = "--keep-munge" ] && keep_munge=1

# stop NAME PIDFILE: SIGTERM the pid in PIDFILE, wait up to 10 s, then SIGKILL.
stop() {
  local name=$1 pidfile=$2 pid
  [ -s "$pidfile" ] || { echo "slurm-down: $name not running (no $pidfile)"; return 0; }
  pid=$(cat "$pidfile")
  if ! kill -0 "$pid" 2>/dev/null; then
    echo "slurm-down: $name not running (stale $pidfile)"
    rm -f "$pidfile"
    return 0
  fi
  kill "$pid"
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then
    echo "slurm-down: $name ($pid) ignored SIGTERM for 10 s; sending SIGKILL" >&2
    kill -9 "$pid" 2>/dev/null
    sleep 0.5
    kill -0 "$pid" 2>/dev/null && { echo "slurm-down: $name ($pid) still alive" >&2; return 1; }
  fi
  rm -f "$pidfile"
  echo "slurm-down: $name stopped"
}

rc=0
stop slurmd /run/slurmd.pid || rc=1
stop slurmctld /run/slurmctld.pid || rc=1
if [ "$keep_munge" -eq 0 ]; then
  if [ -x /etc/init.d/munge ] && /etc/init.d/munge status >/dev/null 2>&1; then
    /etc/init.d/munge stop >/dev/null 2>&1 || rc=1
    echo "slurm-down: munged stopped"
  elif [ -s /run/munge/munged.pid ]; then
    stop munged /run/munge/munged.pid || rc=1
  fi
fi
exit "$rc"
