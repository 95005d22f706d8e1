# shellcheck shell=bash
# The local cluster of scripts/cluster: every node by name, its address, config, start and
# readiness. Sourced after common.sh, nats.sh and cassandra.sh. State under $CLUSTER_DIR:
#   run/NAME.pid, run/NAME.start   pids (the common.sh helpers, pointed here)
#   log/NAME.log                   each node's output
#   nats-N/, cassandra-N/, redis-N/  each server's config and data
#   endpoints.env, jwt-secret, fcm-service-account.json
# Nodes never use the single-node ports (4222, 6379, 127.0.0.1:9042, 8080, 9099, 918x).

CLUSTER_DIR="$LOCAL_DIR/cluster"
# The common.sh helpers (spawn, pid_alive, stop_pid) keep their pid files in $RUN_DIR.
RUN_DIR="$CLUSTER_DIR/run"
CLUSTER_LOG_DIR="$CLUSTER_DIR/log"
mkdir -p "$RUN_DIR" "$CLUSTER_LOG_DIR"

NATS_NODES=(nats-1 nats-2 nats-3)
CASSANDRA_NODES=(cassandra-1 cassandra-2 cassandra-3)
REDIS_NODES=(redis-1 redis-2 redis-3 redis-4 redis-5 redis-6)
# Start order: the emulator before the notifiers (their first access token), the projectors
# before the rest (the first one creates the keyspace the others read).
SERVICE_NODES=(fcm-emulator projector-1 projector-2 receipts-0-1 receipts-0-2 receipts-1-1
  receipts-1-2 notifier-1 notifier-2 edge-1 edge-2 edge-3)
# shellcheck disable=SC2034 # read by scripts/cluster
ALL_NODES=("${NATS_NODES[@]}" "${CASSANDRA_NODES[@]}" "${REDIS_NODES[@]}" "${SERVICE_NODES[@]}")

CLUSTER_CASSANDRA_HEAP="${CHAT_CLUSTER_CASSANDRA_HEAP:-512m}"
CLUSTER_PROFILE="${CHAT_CLUSTER_PROFILE:-debug}"
FCM_PORT=19099

# node_kind NAME: nats, cassandra, redis, or the service binary (edge, projector, ...).
node_kind() {
  case "$1" in
    nats-[1-3]) echo nats ;;
    cassandra-[1-3]) echo cassandra ;;
    redis-[1-6]) echo redis ;;
    fcm-emulator) echo fcm-emulator ;;
    projector-[12]) echo projector ;;
    receipts-[01]-[12]) echo receipts ;;
    notifier-[12]) echo notifier ;;
    edge-[1-3]) echo edge ;;
    *) return 1 ;;
  esac
}

# node_index NAME: the number at the end of the name.
node_index() { echo "${1##*-}"; }

# node_host NAME: the loopback address the node listens on.
node_host() {
  if [[ "$(node_kind "$1")" == cassandra ]]; then
    echo "127.0.0.$(($(node_index "$1") + 1))"
  else
    echo 127.0.0.1
  fi
}

# node_port NAME: the node's main port (clients, CQL, HTTP, or its health server).
node_port() {
  local i
  i="$(node_index "$1")"
  case "$(node_kind "$1")" in
    nats) echo $((14220 + i)) ;;
    cassandra) echo 9042 ;;
    redis) echo $((17000 + i)) ;;
    fcm-emulator) echo "$FCM_PORT" ;;
    projector) echo $((19180 + i)) ;;
    receipts) local p="${1#receipts-}"; echo $((19200 + 10 * ${p%-*} + i)) ;;
    notifier) echo $((19220 + i)) ;;
    edge) echo $((8080 + i)) ;;
  esac
}

# node_address NAME: what status prints, e.g. nats://127.0.0.1:14221.
node_address() {
  local hp
  hp="$(node_host "$1"):$(node_port "$1")"
  case "$(node_kind "$1")" in
    nats) echo "nats://$hp (route :$(($(node_port "$1") + 2000)), monitor :$(($(node_port "$1") + 4000)))" ;;
    cassandra) echo "$hp (CQL; storage :7000, JMX 127.0.0.1:$((17100 + $(node_index "$1"))))" ;;
    redis) echo "redis://$hp" ;;
    edge) echo "http://$hp" ;;
    fcm-emulator) echo "http://$hp" ;;
    *) echo "http://$hp/readyz" ;;
  esac
}

# addr_open HOST PORT: something accepts TCP connections there.
addr_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

# http_ok URL: the URL answers 2xx within 2 s.
http_ok() { curl -fsS --max-time 2 -o /dev/null "$1" 2>/dev/null; }

# node_suspended NAME: the node's process is stopped by a signal (kill NAME STOP).
node_suspended() {
  local stat
  stat="$(cat "/proc/$(cat "$RUN_DIR/$1.pid")/stat" 2>/dev/null)" || return 1
  stat="${stat##*) }"
  [[ "${stat:0:1}" == T ]]
}

# node_ready NAME: the node does its job: NATS healthy with a JetStream meta leader, CQL
# answering, Redis in a cluster whose slots are all served, a service's /readyz (the edge's
# /healthz: its /readyz is 200 also when degraded) or the emulator's page.
node_ready() {
  local host port
  host="$(node_host "$1")"
  port="$(node_port "$1")"
  case "$(node_kind "$1")" in
    nats) curl -fsS --max-time 2 "http://$host:$((port + 4000))/healthz" 2>/dev/null | grep -q '"ok"' ;;
    cassandra) cql_ready "$host" ;;
    redis) redis-cli -h "$host" -p "$port" cluster info 2>/dev/null | grep -q '^cluster_state:ok' ;;
    edge) http_ok "http://$host:$port/readyz" ;;
    fcm-emulator) http_ok "http://$host:$port/" ;;
    *) http_ok "http://$host:$port/readyz" ;;
  esac
}

# node_state NAME: stopped, suspended, running (up, not ready) or ready.
node_state() {
  if ! pid_alive "$1"; then
    echo stopped
  elif node_suspended "$1"; then
    echo suspended
  elif node_ready "$1"; then
    echo ready
  else
    echo running
  fi
}

# --- NATS

# nats_urls: every server's client URL, comma-separated (the services' nats.url).
nats_urls() {
  local n urls=()
  for n in "${NATS_NODES[@]}"; do urls+=("nats://127.0.0.1:$(node_port "$n")"); done
  (IFS=,; echo "${urls[*]}")
}

# write_nats_conf NAME: the server's config, with CHAT_DURABLE's sync setting as of now.
write_nats_conf() {
  local name="$1" dir="$CLUSTER_DIR/$1" port n routes=() sync=""
  port="$(node_port "$name")"
  if nats_durable; then sync="  sync_interval: always # CHAT_DURABLE=1"; fi
  for n in "${NATS_NODES[@]}"; do routes+=("\"nats://127.0.0.1:$(($(node_port "$n") + 2000))\""); done
  mkdir -p "$dir/data"
  cat >"$dir/nats.conf" <<EOF
# Written by scripts/cluster (scripts/lib/cluster.sh) at each start of $name.
server_name: $name
host: 127.0.0.1
port: $port
http: 127.0.0.1:$((port + 4000))
max_payload: 1MB
# A server that stalls (frozen, partitioned) keeps its routes open, and its peers go on routing
# to it what its queue subscriptions (direct gets) and Raft groups should answer: PING routes
# and clients that sent nothing for 2 s, and drop one after 3 unanswered PINGs. The services
# PING every second themselves (nats.ping_interval_ms), so they hear of it sooner.
ping_interval: "2s"
ping_max: 3
jetstream {
$sync
  store_dir: "$dir/data"
  max_memory_store: 64MB
  max_file_store: 1GB
}
cluster {
  name: chat
  host: 127.0.0.1
  port: $((port + 2000))
  routes: [ $(IFS=,; echo "${routes[*]}") ]
}
EOF
}

start_nats_node() {
  nats_installed || install_nats
  write_nats_conf "$1"
  spawn "$1" "$CLUSTER_LOG_DIR/$1.log" env GOMAXPROCS="$CHAT_NATS_GOMAXPROCS" "$BIN_DIR/nats-server" \
    -c "$CLUSTER_DIR/$1/nats.conf"
}

# --- Cassandra

# cassandra_nodes: every node's CQL address, comma-separated (the services' cassandra.nodes).
cassandra_nodes() {
  local n nodes=()
  for n in "${CASSANDRA_NODES[@]}"; do nodes+=("$(node_host "$n"):9042"); done
  (IFS=,; echo "${nodes[*]}")
}

# write_cassandra_yaml NAME: infra/cassandra/cassandra.yaml for one node of the ring: its own
# address, the first node as the one seed, 16 tokens allocated for replication factor 3, and
# hints on so that a node that was down catches up with the writes it missed.
write_cassandra_yaml() {
  local dir="$CLUSTER_DIR/$1" host seed
  host="$(node_host "$1")"
  seed="$(node_host "${CASSANDRA_NODES[0]}")"
  mkdir -p "$dir"/{data,logs,tmp,triggers}
  sed -E \
    -e "s/^cluster_name:.*/cluster_name: chat-cluster/" \
    -e "s/^num_tokens:.*/num_tokens: 16\nallocate_tokens_for_local_replication_factor: 3/" \
    -e "s/^( *- seeds:).*/\1 \"$seed:7000\"/" \
    -e "s/^listen_address:.*/listen_address: $host/" \
    -e "s/^rpc_address:.*/rpc_address: $host/" \
    -e "s/^hinted_handoff_enabled:.*/hinted_handoff_enabled: true/" \
    "$CASSANDRA_CONF/cassandra.yaml" >"$dir/cassandra.yaml"
  grep -q "^listen_address: $host\$" "$dir/cassandra.yaml" ||
    die "could not derive $dir/cassandra.yaml from infra/cassandra/cassandra.yaml"
}

# start_cassandra_node NAME: its own JVM with the base options, its paths, a JMX port of its own
# and two shortcuts for a ring on one machine (docs/operations.md, "Cluster").
start_cassandra_node() {
  local name="$1" dir="$CLUSTER_DIR/$1"
  cassandra_installed || install_cassandra
  check_cassandra_java
  write_cassandra_yaml "$name"
  local -a opts
  mapfile -t opts < <(cassandra_jvm_base_opts "$CLUSTER_CASSANDRA_HEAP")
  opts+=(
    "-Dcassandra.config=file://$dir/cassandra.yaml"
    "-Dcassandra.storagedir=$dir/data"
    "-Dcassandra.logdir=$dir/logs"
    "-Dlogback.configurationFile=$CASSANDRA_CONF/logback.xml"
    "-Djna.tmpdir=$dir/tmp"
    "-Djava.io.tmpdir=$dir/tmp"
    "-Dcassandra.triggers_dir=$dir/triggers"
    "-Dcassandra.jmx.local.port=$((17100 + $(node_index "$name")))"
    -Dcassandra-foreground=yes
    -Dcassandra.ring_delay_ms=1000
    -Dcassandra.skip_wait_for_gossip_to_settle=0
    -Dcassandra.superuser_setup_delay_ms=0
  )
  spawn "$name" "$CLUSTER_LOG_DIR/$name.log" "${CASSANDRA_LAUNCH[@]}" "$JAVA" "${opts[@]}" \
    -cp "$CASSANDRA_CONF:$(cat "$CASSANDRA_CP")" org.apache.cassandra.service.CassandraDaemon
}

# --- Redis

# redis_nodes: every node's URL, comma-separated (the services' redis.nodes).
redis_nodes() {
  local n nodes=()
  for n in "${REDIS_NODES[@]}"; do nodes+=("redis://127.0.0.1:$(node_port "$n")"); done
  (IFS=,; echo "${nodes[*]}")
}

# redis_pong NAME: the node answers, in a cluster or not yet.
redis_pong() { [[ "$(redis-cli -p "$(node_port "$1")" ping 2>/dev/null)" == PONG ]]; }

start_redis_node() {
  local name="$1" dir="$CLUSTER_DIR/$1" port
  port="$(node_port "$name")"
  install_redis
  mkdir -p "$dir"
  spawn "$name" "$CLUSTER_LOG_DIR/$name.log" redis-server --bind 127.0.0.1 --port "$port" \
    --daemonize no --protected-mode yes --dir "$dir" --logfile "" \
    --cluster-enabled yes --cluster-config-file nodes.conf --cluster-node-timeout 2000 \
    --appendonly yes
}

# create_redis_cluster: 3 masters and 3 replicas, once: only while every node knows only itself
# (a restarted node keeps its place from nodes.conf).
create_redis_cluster() {
  local n port addrs=()
  for n in "${REDIS_NODES[@]}"; do
    port="$(node_port "$n")"
    addrs+=("127.0.0.1:$port")
    redis-cli -p "$port" cluster info 2>/dev/null | grep -q '^cluster_known_nodes:1' || return 0
  done
  say "creating the Redis cluster (3 masters, 3 replicas)"
  redis-cli --cluster create "${addrs[@]}" --cluster-replicas 1 --cluster-yes \
    >>"$CLUSTER_LOG_DIR/redis-cluster-create.log" 2>&1 ||
    { tail -n 20 "$CLUSTER_LOG_DIR/redis-cluster-create.log" >&2; die "redis-cli --cluster create failed"; }
}

# --- services

# jwt_secret: the cluster's HS256 secret, made once.
jwt_secret() {
  local file="$CLUSTER_DIR/jwt-secret"
  [[ -s "$file" ]] || od -An -tx1 -N24 /dev/urandom | tr -d ' \n' >"$file"
  cat "$file"
}

# service_env NAME: the environment of one service: every node of every engine, and its own
# address. CHAT_REDIS__URL points at a cluster node too, so that a build without redis.nodes
# never writes into the single-node Redis on 6379.
service_env() {
  local name="$1" port
  port="$(node_port "$name")"
  printf '%s\n' \
    NO_COLOR=1 \
    "CHAT_JWT_SECRET=$(jwt_secret)" \
    "CHAT_NATS__URL=$(nats_urls)" \
    CHAT_NATS__REPLICAS=3 \
    "CHAT_CASSANDRA__NODES=$(cassandra_nodes)" \
    CHAT_CASSANDRA__REPLICATION_FACTOR=3 \
    "CHAT_REDIS__NODES=$(redis_nodes)" \
    "CHAT_REDIS__URL=redis://127.0.0.1:$(node_port redis-1)/"
  case "$(node_kind "$name")" in
    edge) echo "CHAT_EDGE__LISTEN=127.0.0.1:$port" ;;
    projector) echo "CHAT_PROJECTOR__HEALTH_LISTEN=127.0.0.1:$port" ;;
    receipts)
      local p="${name#receipts-}"
      printf '%s\n' CHAT_RECEIPTS__PARTITIONS=2 "CHAT_RECEIPTS__PARTITION=${p%-*}" \
        "CHAT_RECEIPTS__HEALTH_LISTEN=127.0.0.1:$port"
      ;;
    notifier)
      printf '%s\n' "CHAT_NOTIFIER__HEALTH_LISTEN=127.0.0.1:$port" \
        "CHAT_NOTIFIER__FCM_BASE_URL=http://127.0.0.1:$FCM_PORT" \
        "CHAT_NOTIFIER__SERVICE_ACCOUNT_FILE=$CLUSTER_DIR/fcm-service-account.json"
      ;;
  esac
}

# service_bin KIND: the built binary.
service_bin() { echo "$ROOT/target/$CLUSTER_PROFILE/$1"; }

start_service_node() {
  local name="$1" kind bin
  kind="$(node_kind "$name")"
  bin="$(service_bin "$kind")"
  [[ -x "$bin" ]] || die "$bin is missing: build first (scripts/cluster up builds)"
  if [[ "$kind" == fcm-emulator ]]; then
    # The emulator's key, with the token endpoint on the cluster's emulator port. It keeps a
    # million deliveries (about 1 GB at most): a full chaos run pushes some 130,000 and checks them all.
    sed "s#127.0.0.1:9099#127.0.0.1:$FCM_PORT#g" "$ROOT/infra/fcm-emulator/service-account.json" \
      >"$CLUSTER_DIR/fcm-service-account.json"
    spawn "$name" "$CLUSTER_LOG_DIR/$name.log" env NO_COLOR=1 "$bin" \
      --listen "127.0.0.1:$FCM_PORT" --token-url "http://127.0.0.1:$FCM_PORT/token" \
      --service-account "$CLUSTER_DIR/fcm-service-account.json" \
      --public-key "$ROOT/infra/fcm-emulator/public-key.pem" --max-deliveries 1000000
    return
  fi
  local -a env
  mapfile -t env < <(service_env "$name")
  spawn "$name" "$CLUSTER_LOG_DIR/$name.log" env "${env[@]}" "$bin"
}

# --- any node

# start_node NAME: start it unless it runs; a foreign process on its address is an error.
start_node() {
  local name="$1" host port
  host="$(node_host "$name")"
  port="$(node_port "$name")"
  if pid_alive "$name"; then
    say "$name already running (pid $(cat "$RUN_DIR/$name.pid"))"
    return 0
  fi
  ! addr_open "$host" "$port" ||
    die "cannot start $name: $host:$port is in use by a process that is not ours"
  say "starting $name ($(node_address "$name"))"
  case "$(node_kind "$name")" in
    nats) start_nats_node "$name" ;;
    cassandra) start_cassandra_node "$name" ;;
    redis) start_redis_node "$name" ;;
    *) start_service_node "$name" ;;
  esac
}

# wait_node NAME TIMEOUT: until the node is ready; fails with its log tail when it exits or the
# timeout passes.
wait_node() {
  wait_until "$1" "$CLUSTER_LOG_DIR/$1.log" "$2" node_ready "$1"
}

# stop_node NAME: continue it if suspended, TERM, KILL after a grace period.
stop_node() {
  local grace=20
  [[ "$(node_kind "$1")" == cassandra ]] && grace=60
  if pid_alive "$1"; then kill -CONT "$(cat "$RUN_DIR/$1.pid")" 2>/dev/null || true; fi
  stop_pid "$1" "$grace"
}
