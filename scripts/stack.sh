#!/usr/bin/env bash
# The native local stack: PostgreSQL, Apache Kafka (KRaft, single node) and ClickHouse on
# 127.0.0.1 at their standard ports, for machines without a Docker engine.
#
#   bash scripts/stack.sh up       install what is missing, start what is not running, wait until
#                                  each service answers a real request
#   bash scripts/stack.sh down     stop what this script started (never a server it only reused)
#   bash scripts/stack.sh status   what runs where, and whether it is ours
#
# Everything it makes lives under $STACK_DIR (default: .stack/ in the repository, git-ignored):
# data, logs, pid files and the Kafka jars (fetched once from Maven Central, then reused).
# A server that already answers on a port is reused as it is and left alone by `down`.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
STACK_DIR=${STACK_DIR:-$ROOT/.stack}
HERE=$ROOT/scripts/stack

# Standard ports by default. A second stack beside the first (e.g. for the fault-injection suite
# or the benchmark, so they never stop the servers other tests use) sets its own STACK_DIR and
# STACK_*_PORT values.
PG_PORT=${STACK_PG_PORT:-5432}
KAFKA_PORT=${STACK_KAFKA_PORT:-9092}
KAFKA_CONTROLLER_PORT=${STACK_KAFKA_CONTROLLER_PORT:-9093}
CH_HTTP_PORT=${STACK_CH_HTTP_PORT:-8123}
CH_TCP_PORT=${STACK_CH_TCP_PORT:-9000}
CH_INTERSERVER_PORT=${STACK_CH_INTERSERVER_PORT:-9009}
PG_PASSWORD=postgres
# fsync off: tests and the demo commit thousands of single-row transactions, and the stack's data
# is disposable. STACK_PG_FSYNC=on runs a durable server, e.g. for the benchmark's trigger part.
PG_FSYNC=${STACK_PG_FSYNC:-off}
case $PG_FSYNC in on|off) ;; *) printf '[stack] error: STACK_PG_FSYNC must be on or off, not "%s"\n' "$PG_FSYNC" >&2; exit 1 ;; esac

log() { printf '[stack] %s\n' "$*" >&2; }
die() { printf '[stack] error: %s\n' "$*" >&2; exit 1; }
# die_log <log file or folder> <message>: the message, then the end of the log, so a CI transcript
# shows the cause and not only where to look for it.
die_log() {
  local where=$1; shift
  printf '[stack] error: %s (see %s)\n' "$*" "$where" >&2
  local f
  for f in $( [ -d "$where" ] && ls "$where"/*.log 2>/dev/null || echo "$where"); do
    [ -f "$f" ] || continue
    printf '[stack] --- last lines of %s ---\n' "$f" >&2
    tail -n 25 "$f" | sed 's/^/[stack] | /' >&2
  done
  exit 1
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

pid_alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

wait_until() { # wait_until <seconds> <description> <command...>
  local limit=$1 what=$2; shift 2
  local start=$SECONDS
  until "$@" >/dev/null 2>&1; do
    if (( SECONDS - start >= limit )); then return 1; fi
    sleep 0.5
  done
  log "$what is ready ($(( SECONDS - start )) s)"
}

APT_UPDATED=0
apt_install() {
  command -v apt-get >/dev/null || die "cannot install $* here: no apt-get. Install it yourself, or point DATABASE_URL / KAFKA_BROKERS / CLICKHOUSE_URL at running servers."
  if [ "$(id -u)" != 0 ]; then die "installing $* needs root (apt-get); run as root or install it first"; fi
  if [ $APT_UPDATED = 0 ]; then
    log "apt-get update"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
    APT_UPDATED=1
  fi
  log "apt-get install $*"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >&2
}

# ---------------------------------------------------------------- PostgreSQL
PG_DIR=$STACK_DIR/postgres
pg_bindir() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }
pg_ready() { pg_isready -q -h 127.0.0.1 -p $PG_PORT; }

# initdb refuses to run as root, so the cluster belongs to the `postgres` user; its data folder
# must be reachable by that user. A clone under a folder it cannot enter (e.g. /root) gets its
# cluster under /var/tmp instead, recorded in a link so `down` finds it.
pg_data_dir() {
  if [ -L "$PG_DIR/data" ]; then readlink "$PG_DIR/data"; return; fi
  echo "$PG_DIR/data"
}

as_postgres() { su postgres -s /bin/sh -c "$*"; }

pg_up() {
  if pg_ready; then
    if [ -f "$PG_DIR/started" ]; then log "PostgreSQL (ours) is running"; else log "PostgreSQL already answers on 127.0.0.1:$PG_PORT: reusing it"; fi
    return
  fi
  [ -n "$(pg_bindir)" ] || apt_install postgresql
  local bin; bin=$(pg_bindir)
  id postgres >/dev/null 2>&1 || die "the postgres system user is missing; reinstall the postgresql package"
  mkdir -p "$PG_DIR"
  local data; data=$(pg_data_dir)
  if [ ! -f "$data/PG_VERSION" ]; then
    chmod 755 "$STACK_DIR" "$PG_DIR"
    if ! as_postgres "cd '$PG_DIR'" 2>/dev/null; then
      data=/var/tmp/streamer-stack-postgres-$(echo "$STACK_DIR" | md5sum | cut -c1-8)
      ln -sfn "$data" "$PG_DIR/data"
      log "the postgres user cannot enter $PG_DIR; its cluster lives in $data"
    fi
    mkdir -p "$data" && chown postgres:postgres "$data" && chmod 700 "$data"
    local pwfile; pwfile=$(mktemp) && echo "$PG_PASSWORD" >"$pwfile" && chown postgres "$pwfile"
    log "initdb $data"
    as_postgres "'$bin/initdb' -D '$data' -U postgres --pwfile='$pwfile' --auth-local=trust --auth-host=scram-sha-256 -E UTF8 --locale=C.UTF-8" >"$PG_DIR/initdb.log" 2>&1 \
      || { rm -f "$pwfile"; die_log "$PG_DIR/initdb.log" "initdb failed"; }
    rm -f "$pwfile"
  fi
  mkdir -p "$PG_DIR/run" && chown postgres "$PG_DIR/run" 2>/dev/null || true
  local sock=$data
  log "starting PostgreSQL ($bin) on 127.0.0.1:$PG_PORT"
  as_postgres "'$bin/pg_ctl' -D '$data' -l '$data/server.log' -w -t 60 -o \"-p $PG_PORT -k '$sock' -c listen_addresses=127.0.0.1 -c max_connections=200 -c fsync=$PG_FSYNC\" start" >&2 \
    || die_log "$data/server.log" "PostgreSQL did not start"
  echo "$data" >"$PG_DIR/started"
  wait_until 60 PostgreSQL pg_ready || die_log "$data/server.log" "PostgreSQL does not answer on 127.0.0.1:$PG_PORT"
}

pg_down() {
  [ -f "$PG_DIR/started" ] || return 0
  local data; data=$(cat "$PG_DIR/started")
  log "stopping PostgreSQL ($data)"
  as_postgres "'$(pg_bindir)/pg_ctl' -D '$data' -m fast -w -t 60 stop" >&2 || true
  rm -f "$PG_DIR/started"
}

# ---------------------------------------------------------------- Kafka
KAFKA_DIR=$STACK_DIR/kafka
KAFKA_PID=$KAFKA_DIR/kafka.pid
kafka_ready() { node "$HERE/probe.mjs" kafka "127.0.0.1:$KAFKA_PORT"; }

# A KRaft cluster id: 16 random bytes, base64url. Never one that starts with '-': the storage
# tool's argument parser reads "-t -abc…" as a missing value and a new flag (Kafka's own
# Uuid.randomUuid skips those ids too). Passed as --cluster-id=… besides, which parses either way.
kafka_cluster_id() {
  node -e "const c=require('crypto');let id;do{id=c.randomBytes(16).toString('base64url')}while(id[0]==='-');process.stdout.write(id)"
}

kafka_up() {
  if pid_alive "$KAFKA_PID"; then
    wait_until 90 Kafka kafka_ready || die_log "$KAFKA_DIR/logs/server.log" "our Kafka (pid $(cat "$KAFKA_PID")) does not answer"
    return
  fi
  if port_open $KAFKA_PORT; then log "Kafka already answers on 127.0.0.1:$KAFKA_PORT: reusing it"; kafka_ready || die "something on 127.0.0.1:$KAFKA_PORT is not a working Kafka broker"; return; fi
  command -v java >/dev/null || apt_install openjdk-17-jre-headless
  if ! ls "$KAFKA_DIR"/libs/kafka_2.13-*.jar >/dev/null 2>&1; then
    command -v mvn >/dev/null || apt_install maven
    log "fetching the Kafka broker jars from Maven Central (once)"
    mkdir -p "$KAFKA_DIR"
    rm -rf "$KAFKA_DIR/libs.partial"
    mvn -q -B -f "$HERE/kafka-pom.xml" dependency:copy-dependencies -DincludeScope=runtime \
      -DoutputDirectory="$KAFKA_DIR/libs.partial" >&2 || die "could not fetch the Kafka jars with Maven"
    mv "$KAFKA_DIR/libs.partial" "$KAFKA_DIR/libs"
  fi
  mkdir -p "$KAFKA_DIR/data" "$KAFKA_DIR/logs"
  sed -e "s#@DATA@#$KAFKA_DIR/data#" -e "s#@PORT@#$KAFKA_PORT#g" -e "s#@CONTROLLER_PORT@#$KAFKA_CONTROLLER_PORT#g" \
    "$HERE/kafka-server.properties" >"$KAFKA_DIR/server.properties"
  local java_opts=(-Xms256m -Xmx512m -XX:+UseG1GC -Djava.awt.headless=true
    "-Dlog4j2.configurationFile=$HERE/kafka-log4j2.properties" "-Dkafka.logs.dir=$KAFKA_DIR/logs")
  if [ ! -f "$KAFKA_DIR/data/meta.properties" ]; then
    log "formatting Kafka storage (KRaft)"
    java "${java_opts[@]}" -cp "$KAFKA_DIR/libs/*" kafka.tools.StorageTool format -g \
      "--cluster-id=$(kafka_cluster_id)" \
      -c "$KAFKA_DIR/server.properties" >"$KAFKA_DIR/logs/format.log" 2>&1 \
      || die_log "$KAFKA_DIR/logs/format.log" "kafka storage format failed"
  fi
  log "starting Kafka on 127.0.0.1:$KAFKA_PORT"
  nohup java "${java_opts[@]}" -cp "$KAFKA_DIR/libs/*" kafka.Kafka "$KAFKA_DIR/server.properties" \
    >"$KAFKA_DIR/logs/stdout.log" 2>&1 </dev/null &
  echo $! >"$KAFKA_PID"
  wait_until 120 Kafka kafka_ready || die_log "$KAFKA_DIR/logs" "Kafka does not answer on 127.0.0.1:$KAFKA_PORT"
}

# ---------------------------------------------------------------- ClickHouse
CH_DIR=$STACK_DIR/clickhouse
CH_PID=$CH_DIR/clickhouse.pid
# Where ClickHouse keeps its tables. STACK_CH_DATA_DIR moves them elsewhere, e.g. onto a tmpfs
# (/dev/shm/…) for the benchmark: 18.16 writes ~30 files per insert, and on ext4 creating them
# costs 10–30 ms an insert once merges delete files too (see bench/README.md).
# Without it, a start keeps the folder of the last start while it exists (recorded in
# $CH_DIR/data-dir): a stop and start that does not repeat the variable (the outage tests) must not
# swap the tables for others.
CH_DATA_FILE=$CH_DIR/data-dir
if [ -n "${STACK_CH_DATA_DIR:-}" ]; then CH_DATA=$STACK_CH_DATA_DIR
elif [ -s "$CH_DATA_FILE" ] && [ -d "$(cat "$CH_DATA_FILE")" ]; then CH_DATA=$(cat "$CH_DATA_FILE")
else CH_DATA=$CH_DIR/data; fi
ch_ready() { [ "$(curl -sf "http://127.0.0.1:$CH_HTTP_PORT/?query=SELECT%201")" = 1 ]; }

ch_up() {
  if pid_alive "$CH_PID"; then
    wait_until 60 ClickHouse ch_ready || die_log "$CH_DIR/log" "our ClickHouse (pid $(cat "$CH_PID")) does not answer"
    return
  fi
  if port_open $CH_HTTP_PORT; then log "ClickHouse already answers on 127.0.0.1:$CH_HTTP_PORT: reusing it"; ch_ready || die "something on 127.0.0.1:$CH_HTTP_PORT is not a working ClickHouse"; return; fi
  [ -x /usr/sbin/clickhouse-server ] || apt_install clickhouse-server clickhouse-client
  mkdir -p "$CH_DATA" "$CH_DIR/tmp" "$CH_DIR/user_files" "$CH_DIR/format_schemas" "$CH_DIR/log"
  echo "$CH_DATA" >"$CH_DATA_FILE"
  [ "$CH_DATA" = "$CH_DIR/data" ] || log "ClickHouse keeps its tables in $CH_DATA (until that folder is removed)"
  # The package's own service start needs an init system, so we run the server ourselves with a
  # copy of its config whose paths point into the stack folder, listening on 127.0.0.1 only.
  sed -e "s#/var/lib/clickhouse/tmp/#$CH_DIR/tmp/#" \
      -e "s#/var/lib/clickhouse/user_files/#$CH_DIR/user_files/#" \
      -e "s#/var/lib/clickhouse/format_schemas/#$CH_DIR/format_schemas/#" \
      -e "s#/var/lib/clickhouse/#${CH_DATA%/}/#" \
      -e "s#/var/log/clickhouse-server/#$CH_DIR/log/#" \
      -e "s#<listen_host>::1</listen_host>##" \
      -e "s#<http_port>8123</http_port>#<http_port>$CH_HTTP_PORT</http_port>#" \
      -e "s#<tcp_port>9000</tcp_port>#<tcp_port>$CH_TCP_PORT</tcp_port>#" \
      -e "s#<interserver_http_port>9009</interserver_http_port>#<interserver_http_port>$CH_INTERSERVER_PORT</interserver_http_port>#" \
      /etc/clickhouse-server/config.xml >"$CH_DIR/config.xml"
  cp /etc/clickhouse-server/users.xml "$CH_DIR/users.xml"
  log "starting ClickHouse on 127.0.0.1:$CH_HTTP_PORT"
  # The server itself is the background job (not a subshell around it), so the pid file holds
  # the server's pid and `down` stops the server. It runs from its folder (relative paths).
  pushd "$CH_DIR" >/dev/null
  nohup /usr/sbin/clickhouse-server --config-file="$CH_DIR/config.xml" \
    >"$CH_DIR/log/stdout.log" 2>&1 </dev/null &
  echo $! >"$CH_PID"
  popd >/dev/null
  wait_until 60 ClickHouse ch_ready || die_log "$CH_DIR/log" "ClickHouse does not answer on 127.0.0.1:$CH_HTTP_PORT"
}

# ---------------------------------------------------------------- stop helpers
stop_pid() { # stop_pid <name> <pidfile>
  local name=$1 file=$2
  pid_alive "$file" || { rm -f "$file"; return 0; }
  local pid; pid=$(cat "$file")
  log "stopping $name (pid $pid)"
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
  if kill -0 "$pid" 2>/dev/null; then log "$name did not stop in 30 s: killing it"; kill -9 "$pid" 2>/dev/null || true; fi
  rm -f "$file"
}

status_line() { # status_line <name> <address> <ready-cmd> <ours?>
  local state=down; if $3 >/dev/null 2>&1; then state=up; fi
  printf '%-11s %-22s %-5s %s\n' "$1" "$2" "$state" "$4"
}

case "${1:-}" in
  up)
    mkdir -p "$STACK_DIR"
    # The readiness probe for Kafka is a real metadata request through kafkajs.
    [ -d "$ROOT/node_modules/kafkajs" ] || die "node_modules is missing: run 'npm ci' first"
    pg_up
    ch_up
    kafka_up
    log "stack is up: PostgreSQL 127.0.0.1:$PG_PORT, Kafka 127.0.0.1:$KAFKA_PORT, ClickHouse http://127.0.0.1:$CH_HTTP_PORT"
    ;;
  down)
    stop_pid Kafka "$KAFKA_PID"
    stop_pid ClickHouse "$CH_PID"
    pg_down
    log "stack is down (servers this script did not start were left alone)"
    ;;
  status)
    ours() { if [ -f "$1" ]; then echo "started by this stack ($STACK_DIR)"; else echo "not started by this stack"; fi; }
    status_line PostgreSQL "127.0.0.1:$PG_PORT" pg_ready "$(ours "$PG_DIR/started")"
    status_line Kafka "127.0.0.1:$KAFKA_PORT" "port_open $KAFKA_PORT" "$(ours "$KAFKA_PID")"
    status_line ClickHouse "127.0.0.1:$CH_HTTP_PORT" ch_ready "$(ours "$CH_PID")"
    ;;
  *)
    echo "usage: bash scripts/stack.sh up|down|status" >&2
    exit 2
    ;;
esac
