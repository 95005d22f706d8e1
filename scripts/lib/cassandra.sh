# shellcheck shell=bash
# Apache Cassandra 5.0 single node from Maven Central jars (infra/cassandra/pom.xml), run in its
# own JVM on 127.0.0.1:9042 (CQL) / :7000 (storage). Needs JDK 11 or 17. Sourced after common.sh.
#   CHAT_CASSANDRA_HEAP=1g   heap size (-Xms = -Xmx)
#   CHAT_CASSANDRA_FAST=1    tests only: -Dcassandra.skip_sync=true (no fsync at all; a crash of
#                            the machine loses data). Off by default for the dev node.

CASSANDRA_CONF="$ROOT/infra/cassandra"
CASSANDRA_CP="$LOCAL_DIR/cassandra/classpath.txt"
CASSANDRA_LOG="$LOG_DIR/cassandra.log"
JAVA="${JAVA_HOME:+$JAVA_HOME/bin/}java"

# True when classpath.txt is newer than the pom and every jar in it is still in ~/.m2.
cassandra_installed() {
  [[ -s "$CASSANDRA_CP" && "$CASSANDRA_CP" -nt "$CASSANDRA_CONF/pom.xml" ]] || return 1
  local jar jars
  IFS=: read -r -a jars <"$CASSANDRA_CP"
  for jar in "${jars[@]}"; do [[ -f "$jar" ]] || return 1; done
}

install_cassandra() {
  cassandra_installed && return 0
  command -v mvn >/dev/null || die "mvn is missing (apt-get install -y maven)"
  local log="$LOG_DIR/cassandra-install.log"
  say "resolving Cassandra jars with Maven (infra/cassandra/pom.xml, log $log)"
  mkdir -p "$(dirname "$CASSANDRA_CP")"
  mvn -q -B -f "$CASSANDRA_CONF/pom.xml" dependency:build-classpath \
    -Dmdep.outputFile="$CASSANDRA_CP" >"$log" 2>&1 ||
    { tail -n 30 "$log" >&2; die "mvn could not resolve the Cassandra jars"; }
  # The plugin leaves an unchanged classpath file as it was: mark it as checked against this pom.
  touch "$CASSANDRA_CP"
  cassandra_installed || die "classpath $CASSANDRA_CP is incomplete"
}

# cassandra_jvm_base_opts HEAP: the JVM options every node needs: the JDK 17 module flags of
# Cassandra's conf/jvm17-server.options and a small fixed heap (the stock formula would pick 6 GB).
# scripts/lib/cluster.sh adds its own per-node options to these.
cassandra_jvm_base_opts() {
  local heap="$1" m
  local -a opts=(
    "-Xms$heap" "-Xmx$heap" -Xss256k
    -XX:+UseG1GC -XX:+ParallelRefProcEnabled -XX:MaxTenuringThreshold=1 -XX:MaxGCPauseMillis=300
    -XX:+PerfDisableSharedMem -XX:+ExitOnOutOfMemoryError
    -Djava.net.preferIPv4Stack=true
    -Djdk.attach.allowAttachSelf=true
    -Dio.netty.tryReflectionSetAccessible=true
    -Dio.netty.allocator.useCacheForAllThreads=true -Dio.netty.allocator.maxOrder=11
  )
  for m in java.base/jdk.internal.misc java.management.rmi/com.sun.jmx.remote.internal.rmi \
    java.rmi/sun.rmi.registry java.rmi/sun.rmi.server java.sql/java.sql java.base/java.lang.ref \
    jdk.unsupported/sun.misc; do
    opts+=(--add-exports "$m=ALL-UNNAMED")
  done
  for m in java.base/java.lang.module java.base/jdk.internal.loader java.base/jdk.internal.ref \
    java.base/jdk.internal.reflect java.base/jdk.internal.math java.base/jdk.internal.module \
    java.base/jdk.internal.util.jar jdk.management/com.sun.management.internal \
    java.base/sun.nio.ch java.base/java.io java.base/java.lang.reflect java.base/java.lang \
    java.base/java.util java.base/java.nio; do
    opts+=(--add-opens "$m=ALL-UNNAMED")
  done
  printf '%s\n' "${opts[@]}"
}

# JVM options of the single node: the base ones, its paths and the fast-start flags of a node
# that is alone in its ring.
cassandra_jvm_opts() {
  cassandra_jvm_base_opts "${CHAT_CASSANDRA_HEAP:-1g}"
  local -a opts=(
    "-Dcassandra.config=file://$CASSANDRA_CONF/cassandra.yaml" # a URI, not a plain path
    "-Dcassandra.storagedir=$DATA_DIR/cassandra"
    "-Dcassandra.logdir=$LOG_DIR/cassandra"
    "-Dlogback.configurationFile=$CASSANDRA_CONF/logback.xml"
    "-Djna.tmpdir=$LOCAL_DIR/cassandra/tmp"
    "-Djava.io.tmpdir=$LOCAL_DIR/cassandra/tmp"
    "-Dcassandra.triggers_dir=$LOCAL_DIR/cassandra/triggers"
    -Dcassandra-foreground=yes # otherwise Cassandra closes stdout/stderr
    -Dcassandra.skip_wait_for_gossip_to_settle=0
    -Dcassandra.initial_token=0
    -Dcassandra.superuser_setup_delay_ms=0
  )
  [[ "${CHAT_CASSANDRA_FAST:-0}" == 1 ]] && opts+=(-Dcassandra.skip_sync=true)
  printf '%s\n' "${opts[@]}"
}

# check_cassandra_java: dies unless $JAVA is a JDK Cassandra 5.0 runs on (11 or 17).
check_cassandra_java() {
  local jv
  jv="$("$JAVA" -XshowSettings:properties -version 2>&1 | awk '/java.specification.version/ {print $3}')"
  [[ "$jv" == 11 || "$jv" == 17 ]] ||
    die "Cassandra 5.0 needs JDK 11 or 17; '$JAVA' is '${jv:-missing}' (set JAVA_HOME)"
}

# cql_ready [HOST]: the native protocol answers on HOST:9042 (default 127.0.0.1): an OPTIONS
# request (v4: version 04, flags 00, stream 0000, opcode 05, body length 0) must get a SUPPORTED
# response (version 84, opcode 06).
cql_ready() {
  local -a reply
  # shellcheck disable=SC2016 # $0 belongs to the inner shell
  read -r -a reply < <(timeout 5 bash -c 'exec 3<>"/dev/tcp/$0/9042" &&
    printf "\x04\x00\x00\x00\x05\x00\x00\x00\x00" >&3 && head -c 5 <&3 | od -An -tx1' \
    "${1:-127.0.0.1}" 2>/dev/null)
  [[ "${reply[0]:-}" == 84 && "${reply[4]:-}" == 06 ]]
}

# CASSANDRA_LAUNCH: what runs the JVM: it first sets the process's timer slack (inherited by
# every thread it starts) to $CHAT_CASSANDRA_TIMER_SLACK_NS, 1 ms by default (Linux: 50 µs;
# where it cannot be set, Cassandra starts all the same).
# Cassandra's idle request threads spin, parking 10 µs at a time until they have been idle
# for 10 ms (SEPWorker, not configurable); with 1 ms of slack each park lasts up to a
# millisecond, so a burst of requests costs a few dozen wake-ups instead of hundreds. A request
# arriving while a thread spins may wait up to that long. In production the same is systemd's
# TimerSlackNSec= (docs/operations.md; measured in docs/benchmarks.md).
# shellcheck disable=SC2016 # $0 and $@ belong to the inner shell
CASSANDRA_LAUNCH=(bash -c '{ echo "$0" >/proc/self/timerslack_ns; } 2>/dev/null; exec "$@"'
  "${CHAT_CASSANDRA_TIMER_SLACK_NS:-1000000}")

# start_cassandra [--no-wait]: idempotent; waits (180 s) for CQL unless --no-wait.
start_cassandra() {
  if ! already_running cassandra 9042; then
    cassandra_installed || install_cassandra
    check_cassandra_java
    mkdir -p "$DATA_DIR/cassandra" "$LOG_DIR/cassandra" "$LOCAL_DIR/cassandra/"{tmp,triggers}
    local -a opts
    mapfile -t opts < <(cassandra_jvm_opts)
    say "starting cassandra (log $CASSANDRA_LOG, heap ${CHAT_CASSANDRA_HEAP:-1g}${CHAT_CASSANDRA_FAST:+, fast=$CHAT_CASSANDRA_FAST})"
    # The conf folder comes first on the classpath.
    spawn cassandra "$CASSANDRA_LOG" "${CASSANDRA_LAUNCH[@]}" "$JAVA" "${opts[@]}" \
      -cp "$CASSANDRA_CONF:$(cat "$CASSANDRA_CP")" org.apache.cassandra.service.CassandraDaemon
  fi
  [[ "${1:-}" == --no-wait ]] || wait_cassandra
}

wait_cassandra() {
  wait_until cassandra "$CASSANDRA_LOG" 180 cql_ready
  say "cassandra ready on 127.0.0.1:9042 (CQL)"
}

stop_cassandra() { stop_pid cassandra 60; }
