# shellcheck shell=bash
# Redis from Debian's package (7.0 on Debian 12), run by us on 127.0.0.1:6379 with data in
# .local/data/redis. Debian's own redis service is kept from starting. Sourced after common.sh.

REDIS_LOG="$LOG_DIR/redis.log"

install_redis() {
  command -v redis-server >/dev/null && command -v redis-cli >/dev/null && return 0
  [[ $EUID -eq 0 ]] || die "installing redis-server needs root (apt-get)"
  say "installing redis-server (apt, log $LOG_DIR/redis-install.log)"
  # policy-rc.d exit 101 = "do not start services": the package must not grab port 6379.
  local policy=/usr/sbin/policy-rc.d ours=0 rc=0
  if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy" && ours=1
  fi
  {
    apt-get update &&
      DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends redis-server
  } >"$LOG_DIR/redis-install.log" 2>&1 || rc=$?
  (( ours )) && rm -f "$policy"
  (( rc == 0 )) || { tail -n 20 "$LOG_DIR/redis-install.log" >&2; die "apt-get install redis-server failed"; }
  # Should the distribution service have started anyway (systemd, or a permissive policy-rc.d
  # that was already there), stop it and keep it from coming back.
  if command -v systemctl >/dev/null; then
    systemctl disable redis-server >/dev/null 2>&1 || true # works without a running systemd
    [[ -d /run/systemd/system ]] && { systemctl stop redis-server >/dev/null 2>&1 || true; }
  fi
  update-rc.d redis-server disable >/dev/null 2>&1 || true
  if [[ -s /run/redis/redis-server.pid ]]; then
    kill "$(cat /run/redis/redis-server.pid)" 2>/dev/null || true
    say "stopped the redis service started by the Debian package"
  fi
}

redis_ready() { [[ "$(redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null)" == PONG ]]; }

# start_redis [--no-wait]: idempotent; waits (30 s) for PONG unless --no-wait.
start_redis() {
  if ! already_running redis 6379; then
    command -v redis-server >/dev/null || install_redis
    mkdir -p "$DATA_DIR/redis"
    say "starting redis (log $REDIS_LOG)"
    # No config file: everything on the command line; logfile "" = log to stdout (our log file).
    spawn redis "$REDIS_LOG" redis-server --bind 127.0.0.1 --port 6379 --daemonize no \
      --protected-mode yes --dir "$DATA_DIR/redis" --appendonly yes --logfile ""
  fi
  [[ "${1:-}" == --no-wait ]] || wait_redis
}

wait_redis() {
  wait_until redis "$REDIS_LOG" 30 redis_ready
  say "redis ready on 127.0.0.1:6379"
}

stop_redis() { stop_pid redis 20; }
