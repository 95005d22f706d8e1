# shellcheck shell=bash
# Shared shell helpers for scripts/: paths, logging, port and pid checks, readiness waits.
# Sourced, never executed. Every script that starts something records its pid under $RUN_DIR
# so scripts/down can stop exactly what was started.

set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
# Project-local state: binaries, data, logs and pid files. Ignored by git.
LOCAL_DIR="${CHAT_LOCAL_DIR:-$ROOT/.local}"
BIN_DIR="$LOCAL_DIR/bin"
DATA_DIR="$LOCAL_DIR/data"
LOG_DIR="$LOCAL_DIR/log"
RUN_DIR="$LOCAL_DIR/run"
mkdir -p "$BIN_DIR" "$DATA_DIR" "$LOG_DIR" "$RUN_DIR"

say() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# proc_start PID: the process's start time (clock ticks after boot, field 22 of /proc/PID/stat).
proc_start() {
  local stat
  stat="$(cat "/proc/$1/stat" 2>/dev/null)" || return 1
  stat="${stat##*) }" # drop "pid (comm) ": comm may hold spaces
  awk '{ print $20 }' <<<"$stat"
}

# pid_alive NAME: true when $RUN_DIR/NAME.pid names a live process and, when spawn recorded its
# start time in NAME.start, the very same process (a pid reused after a reboot does not count).
pid_alive() {
  local f="$RUN_DIR/$1.pid" pid
  [[ -f "$f" ]] || return 1
  pid="$(cat "$f")"
  kill -0 "$pid" 2>/dev/null || return 1
  [[ ! -f "$RUN_DIR/$1.start" || "$(proc_start "$pid")" == "$(cat "$RUN_DIR/$1.start")" ]]
}

# port_open PORT: true when something accepts TCP connections on 127.0.0.1:PORT.
port_open() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# fail_start NAME LOGFILE MESSAGE: name the server, show the tail of its log, exit non-zero.
fail_start() {
  printf 'error: %s failed to start: %s\n' "$1" "$3" >&2
  if [[ -f "$2" ]]; then
    printf -- '--- last lines of %s ---\n' "$2" >&2
    tail -n 40 "$2" >&2
  fi
  exit 1
}

# wait_until NAME LOGFILE TIMEOUT_SECONDS CHECK_CMD...: poll CHECK_CMD once a second until it
# succeeds; fail with the log tail when the process died or the timeout passed.
wait_until() {
  local name="$1" logfile="$2" timeout="$3"
  shift 3
  local waited=0
  until "$@"; do
    pid_alive "$name" || fail_start "$name" "$logfile" "process exited"
    (( waited >= timeout )) && fail_start "$name" "$logfile" "not ready after ${timeout}s"
    sleep 1
    waited=$((waited + 1))
  done
}

# stop_pid NAME [GRACE_SECONDS]: TERM the recorded process, KILL it after the grace period.
stop_pid() {
  local name="$1" grace="${2:-20}" f="$RUN_DIR/$1.pid"
  [[ -f "$f" ]] || return 0
  local pid
  pid="$(cat "$f")"
  if pid_alive "$name"; then
    kill -TERM "$pid" 2>/dev/null || true
    local waited=0
    while kill -0 "$pid" 2>/dev/null && (( waited < grace * 10 )); do
      sleep 0.1
      waited=$((waited + 1))
    done
    if kill -0 "$pid" 2>/dev/null; then
      kill -KILL "$pid" 2>/dev/null || true
      say "$name (pid $pid) ignored TERM for ${grace}s: killed"
    fi
    say "stopped $name (pid $pid)"
  fi
  rm -f "$f" "$RUN_DIR/$name.start"
}

# already_running NAME PORT: true (after saying so) when our NAME process is alive; false when
# the caller should start it. Exits with an error when another process already holds PORT.
already_running() {
  local name="$1" port="$2"
  if pid_alive "$name"; then
    say "$name already running (pid $(cat "$RUN_DIR/$name.pid"))"
    return 0
  fi
  rm -f "$RUN_DIR/$name.pid" "$RUN_DIR/$name.start"
  if port_open "$port"; then
    local who=""
    command -v ss >/dev/null && who="$(ss -Hltnp "sport = :$port" 2>/dev/null | head -n 1)"
    die "cannot start $name: 127.0.0.1:$port is already in use by a process that is not ours${who:+ ($who)}; stop it or free the port"
  fi
  return 1
}

# spawn NAME LOGFILE CMD...: run CMD detached in its own session (so it outlives this script and
# a closed terminal), stdin from /dev/null, output appended to LOGFILE, and record its pid in
# $RUN_DIR/NAME.pid. The child writes its own pid, so it is right even if setsid had to fork.
spawn() {
  local name="$1" logfile="$2" pidfile="$RUN_DIR/$1.pid"
  shift 2
  rm -f "$pidfile" "$RUN_DIR/$name.start"
  printf '\n=== %s: starting %s\n' "$(date -u +%FT%TZ)" "$name" >>"$logfile"
  # shellcheck disable=SC2016 # $$ and $@ belong to the inner shell
  setsid bash -c 'echo $$ >"$0"; exec "$@"' "$pidfile" "$@" </dev/null >>"$logfile" 2>&1 &
  local waited=0
  until [[ -s "$pidfile" ]]; do
    (( waited++ < 50 )) || fail_start "$name" "$logfile" "no pid file after 5s"
    sleep 0.1
  done
  proc_start "$(cat "$pidfile")" >"$RUN_DIR/$name.start" || true
}
