#!/usr/bin/env bash
# Starts, stops and describes the real servers the tests, benchmarks and the
# demo run against, all on loopback: two memcached instances (default 1 MiB
# item size), Redis, and an S3-compatible server (moto in server mode, from
# PyPI). Installs what is missing (Debian packages, a venv under .venv/).
#
# Usage:
#   bash scripts/servers.sh start [SERVICE...]   start (all by default); idempotent
#   bash scripts/servers.sh stop [SERVICE...]    stop what this script started
#   bash scripts/servers.sh freeze SERVICE...     SIGSTOP (a hung server: it
#                                                accepts connections, never answers)
#   bash scripts/servers.sh thaw SERVICE...       SIGCONT
#   bash scripts/servers.sh status               one line per service
#   bash scripts/servers.sh env                  print `export NAME=value` lines
#   eval "$(bash scripts/servers.sh env)"        ...to use them in a shell
#
# SERVICE: memcached (both instances), memcached1, memcached2, redis, s3;
# fleet (memcached1..memcached4: four servers for the per-server health
# tests), memcached3, memcached4; redis-cluster (a three-master Redis Cluster,
# no replicas: redis-c1..redis-c3); redis-replica (a read replica of redis).
# `start` without a SERVICE starts the
# first set only (memcached, redis, s3).
#
# Ports are STRATACACHE_PORT_BASE (default 21210) and the next three:
#   memcached1 = base, memcached2 = base+1, redis = base+2, s3 = base+3;
# then memcached3 = base+4, memcached4 = base+5, redis-c1..3 = base+6..base+8,
# redis-replica = base+9.
# Redis Sentinel (`sentinel`: redis-sp primary = base+10, redis-sr its
# replica = base+11, sentinels redis-s1..3 = base+12..base+14, service name
# "stratacache", down-after-milliseconds 500): fresh state at each start;
# kill redis-sp (`stop redis-sp`) and the sentinels promote redis-sr.
# With STRATACACHE_REDIS_PASSWORD set, redis-sp/redis-sr and the cluster
# nodes require it (and replicate with it); with STRATACACHE_SENTINEL_PASSWORD set, the sentinels
# require theirs; with STRATACACHE_SENTINEL_TLS set, all five speak TLS
# only (the redis-tls certificates).
# redis-auth (base+15): Redis with `requirepass stratacache-pw` and an ACL
# user `app` (password `app-pw`). redis-tls (base+16): Redis on TLS only
# (on 127.0.0.1 and 127.0.0.2, which its certificate does not name), its
# certificate signed by a CA made once per state directory (openssl) in
# <state dir>/tls/ca.pem. redis-mtls (base+17): the same, asking clients
# for a certificate signed by that CA (<state dir>/tls/client.pem, .key).
# redis-cluster-tls (redis-t1..redis-t3 = base+18..base+20): a three-master
# Redis Cluster on TLS only (`tls-cluster yes`: the cluster bus and the
# addresses CLUSTER SLOTS names are TLS too), with the redis-tls
# certificates; STRATACACHE_REDIS_PASSWORD protects it as redis-cluster.
# State (pid files, logs) goes to target/servers/<base>/ unless
# STRATACACHE_SERVERS_DIR is set. Two checkouts running their suites at once
# pick different bases.
#
# The variables `env` prints:
#   STRATACACHE_MEMCACHED      "127.0.0.1:P1,127.0.0.1:P2"
#   STRATACACHE_REDIS_URL      "redis://127.0.0.1:P3/0"
#   STRATACACHE_S3_ENDPOINT    "http://127.0.0.1:P4"  (credentials: testing/testing)
#   STRATACACHE_S3_BUCKET      "stratacache-test"
#   STRATACACHE_MEMCACHED_FLEET "127.0.0.1:P1,...,127.0.0.1:P6" (four servers)
#   STRATACACHE_REDIS_REPLICA_URL "redis://127.0.0.1:P10/0" (replica of STRATACACHE_REDIS_URL)
#   STRATACACHE_REDIS_CLUSTER  "redis://127.0.0.1:P7,redis://127.0.0.1:P8,redis://127.0.0.1:P9"
#   STRATACACHE_REDIS_SENTINELS "127.0.0.1:P13,127.0.0.1:P14,127.0.0.1:P15" (the sentinels)
#   STRATACACHE_REDIS_SENTINEL_SERVICE "stratacache"
#   STRATACACHE_REDIS_AUTH_URL "redis://127.0.0.1:P16/0" (no password in it),
#   STRATACACHE_REDIS_AUTH_PASSWORD, STRATACACHE_REDIS_AUTH_USER,
#   STRATACACHE_REDIS_AUTH_USER_PASSWORD
#   STRATACACHE_REDIS_TLS_URL  "rediss://127.0.0.1:P17/0", STRATACACHE_REDIS_TLS_CA (PEM file)
#   STRATACACHE_REDIS_MTLS_URL "rediss://127.0.0.1:P18/0",
#   STRATACACHE_REDIS_TLS_CLIENT_CERT, STRATACACHE_REDIS_TLS_CLIENT_KEY
#   STRATACACHE_REDIS_CLUSTER_TLS "rediss://127.0.0.1:P19,...,rediss://127.0.0.1:P21"
#     (CA: STRATACACHE_REDIS_TLS_CA)
#   AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_DEFAULT_REGION
#   STRATACACHE_PORT_BASE, STRATACACHE_SERVERS_DIR
set -euo pipefail
source "$(dirname "$0")/lib.sh"

BASE="${STRATACACHE_PORT_BASE:-21210}"
MC1_PORT=$BASE
MC2_PORT=$((BASE + 1))
REDIS_PORT=$((BASE + 2))
S3_PORT=$((BASE + 3))
DIR="${STRATACACHE_SERVERS_DIR:-$REPO_ROOT/target/servers/$BASE}"
VENV="${STRATACACHE_VENV:-$REPO_ROOT/.venv}"
MOTO_SPEC='moto[server]>=5,<6'

port_of() {
  case "$1" in
    memcached1) echo "$MC1_PORT" ;;
    memcached2) echo "$MC2_PORT" ;;
    redis) echo "$REDIS_PORT" ;;
    s3) echo "$S3_PORT" ;;
    memcached3) echo $((BASE + 4)) ;;
    memcached4) echo $((BASE + 5)) ;;
    redis-c1) echo $((BASE + 6)) ;;
    redis-c2) echo $((BASE + 7)) ;;
    redis-c3) echo $((BASE + 8)) ;;
    redis-replica) echo $((BASE + 9)) ;;
    redis-sp) echo $((BASE + 10)) ;;
    redis-sr) echo $((BASE + 11)) ;;
    redis-s1) echo $((BASE + 12)) ;;
    redis-s2) echo $((BASE + 13)) ;;
    redis-s3) echo $((BASE + 14)) ;;
    redis-auth) echo $((BASE + 15)) ;;
    redis-tls) echo $((BASE + 16)) ;;
    redis-mtls) echo $((BASE + 17)) ;;
    redis-t1) echo $((BASE + 18)) ;;
    redis-t2) echo $((BASE + 19)) ;;
    redis-t3) echo $((BASE + 20)) ;;
  esac
}

expand() {
  local out=()
  [ $# -eq 0 ] && set -- memcached redis s3
  for s in "$@"; do
    case "$s" in
      memcached) out+=(memcached1 memcached2) ;;
      fleet) out+=(memcached1 memcached2 memcached3 memcached4) ;;
      redis-cluster) out+=(redis-c1 redis-c2 redis-c3) ;;
      redis-cluster-tls) out+=(redis-t1 redis-t2 redis-t3) ;;
      redis-t1 | redis-t2 | redis-t3) out+=("$s") ;;
      sentinel) out+=(redis-sp redis-sr redis-s1 redis-s2 redis-s3) ;;
      redis-sp | redis-sr | redis-s1 | redis-s2 | redis-s3) out+=("$s") ;;
      memcached1 | memcached2 | memcached3 | memcached4 | redis | s3 | redis-c1 | redis-c2 | redis-c3 | redis-replica) out+=("$s") ;;
      redis-auth | redis-tls | redis-mtls) out+=("$s") ;;
      *) echo "servers.sh: unknown service '$s' (memcached, memcached1..4, fleet, redis, redis-cluster, redis-c1..3, sentinel, redis-sp, redis-sr, redis-s1..3, redis-auth, redis-tls, redis-mtls, redis-cluster-tls, redis-t1..3, s3)" >&2; exit 2 ;;
    esac
  done
  echo "${out[@]}"
}

listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

pid_alive() {
  local f="$DIR/$1.pid"
  [ -f "$f" ] && kill -0 "$(cat "$f")" 2>/dev/null
}

ensure_installed() {
  local want_apt=() want_s3=0
  for s in "$@"; do
    case "$s" in
      memcached*) command -v memcached >/dev/null || want_apt+=(memcached) ;;
      redis | redis-c* | redis-replica | redis-s* | redis-auth) command -v redis-server >/dev/null || want_apt+=(redis-server) ;;
      redis-tls | redis-mtls | redis-t*)
        command -v redis-server >/dev/null || want_apt+=(redis-server)
        command -v openssl >/dev/null || want_apt+=(openssl)
        ;;
      s3) want_s3=1 ;;
    esac
  done
  if [ ${#want_apt[@]} -gt 0 ]; then
    echo "servers.sh: installing ${want_apt[*]} (apt)" >&2
    apt_install "${want_apt[@]}"
  fi
  if [ "$want_s3" = 1 ]; then
    [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
    if ! "$VENV/bin/python" -c 'import moto.server, flask' 2>/dev/null; then
      echo "servers.sh: installing $MOTO_SPEC into $VENV (pip)" >&2
      "$VENV/bin/pip" install -q "$MOTO_SPEC"
    fi
  fi
}

start_one() {
  local s=$1 port
  port=$(port_of "$s")
  if pid_alive "$s" && listening "$port"; then
    return 0
  fi
  if listening "$port"; then
    echo "servers.sh: port $port ($s) is taken by another process: set STRATACACHE_PORT_BASE to a free range" >&2
    exit 1
  fi
  local user_args=()
  [ "$(id -u)" -eq 0 ] && user_args=(-u root)
  case "$s" in
    memcached1 | memcached2 | memcached3 | memcached4)
      memcached -d -l 127.0.0.1 -p "$port" -U 0 -m 128 -c 1024 "${user_args[@]}" \
        -P "$DIR/$s.pid" >>"$DIR/$s.log" 2>&1
      ;;
    redis)
      redis-server --bind 127.0.0.1 --port "$port" --save "" --appendonly no \
        --daemonize yes --pidfile "$DIR/redis.pid" --logfile "$DIR/redis.log" --dir "$DIR" >/dev/null
      ;;
    redis-replica)
      redis-server --bind 127.0.0.1 --port "$port" --save "" --appendonly no \
        --replicaof 127.0.0.1 "$REDIS_PORT" \
        --daemonize yes --pidfile "$DIR/redis-replica.pid" --logfile "$DIR/redis-replica.log" --dir "$DIR" >/dev/null
      ;;
    redis-c1 | redis-c2 | redis-c3 | redis-t1 | redis-t2 | redis-t3)
      # A node of a fresh cluster each start (its config file is its identity).
      rm -f "$DIR/nodes-$port.conf"
      local auth=()
      [ -n "${STRATACACHE_REDIS_PASSWORD:-}" ] &&
        auth=(--requirepass "$STRATACACHE_REDIS_PASSWORD" --masterauth "$STRATACACHE_REDIS_PASSWORD")
      local listen=(--port "$port")
      if [[ "$s" == redis-t* ]]; then
        make_tls_certs
        # TLS only, the cluster bus too (on port+10000).
        listen=(--port 0 --tls-port "$port" --tls-cluster yes --tls-replication yes --tls-auth-clients no
          --tls-cert-file "$DIR/tls/server.pem" --tls-key-file "$DIR/tls/server.key"
          --tls-ca-cert-file "$DIR/tls/ca.pem")
      fi
      redis-server --bind 127.0.0.1 "${listen[@]}" --save "" --appendonly no "${auth[@]}" \
        --cluster-enabled yes --cluster-config-file "nodes-$port.conf" \
        --cluster-node-timeout 2000 --cluster-require-full-coverage no \
        --daemonize yes --pidfile "$DIR/$s.pid" --logfile "$DIR/$s.log" --dir "$DIR" >/dev/null
      ;;
    redis-sp | redis-sr | redis-s1 | redis-s2 | redis-s3) start_sentinel_part "$s" "$port" ;;
    redis-auth)
      redis-server --bind 127.0.0.1 --port "$port" --save "" --appendonly no \
        --requirepass "$AUTH_PASSWORD" --user "$AUTH_USER" on ">$AUTH_USER_PASSWORD" '~*' '&*' '+@all' \
        --daemonize yes --pidfile "$DIR/$s.pid" --logfile "$DIR/$s.log" --dir "$DIR" >/dev/null
      ;;
    redis-tls | redis-mtls)
      make_tls_certs
      local clients=no
      [ "$s" = redis-mtls ] && clients=yes
      redis-server --bind 127.0.0.1 127.0.0.2 --port 0 --tls-port "$port" --save "" --appendonly no \
        --tls-cert-file "$DIR/tls/server.pem" --tls-key-file "$DIR/tls/server.key" \
        --tls-ca-cert-file "$DIR/tls/ca.pem" --tls-auth-clients "$clients" \
        --daemonize yes --pidfile "$DIR/$s.pid" --logfile "$DIR/$s.log" --dir "$DIR" >/dev/null
      ;;
    s3)
      nohup "$VENV/bin/python" -m moto.server -H 127.0.0.1 -p "$port" >>"$DIR/s3.log" 2>&1 &
      echo $! >"$DIR/s3.pid"
      ;;
  esac
}

wait_ready() {
  local s=$1 port i
  port=$(port_of "$s")
  for i in $(seq 1 200); do
    if listening "$port"; then return 0; fi
    sleep 0.1
  done
  echo "servers.sh: $s did not listen on 127.0.0.1:$port within 20 s; see $DIR/$s.log" >&2
  tail -5 "$DIR/$s.log" >&2 2>/dev/null || true
  exit 1
}

stop_one() {
  local s=$1 f="$DIR/$1.pid" pid i
  [ -f "$f" ] || return 0
  pid=$(cat "$f")
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid" 2>/dev/null || true
    for i in $(seq 1 50); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$f"
}

# Joins redis-c1..3 (FIRST=6) or, over TLS, redis-t1..3 (FIRST=18) into one
# cluster (slots split three ways) unless it is one already, and waits until
# it serves.
form_cluster() {
  local first=${1:-6} tls=()
  local p1=$((BASE + first)) p2=$((BASE + first + 1)) p3=$((BASE + first + 2)) i
  [ "$first" = 18 ] && tls=(--tls --cacert "$DIR/tls/ca.pem")
  [ -n "${STRATACACHE_REDIS_PASSWORD:-}" ] && local -x REDISCLI_AUTH="$STRATACACHE_REDIS_PASSWORD"
  if ! redis-cli "${tls[@]}" -p "$p1" cluster info 2>/dev/null | grep -q 'cluster_state:ok'; then
    redis-cli "${tls[@]}" --cluster create "127.0.0.1:$p1" "127.0.0.1:$p2" "127.0.0.1:$p3" \
      --cluster-replicas 0 --cluster-yes >"$DIR/redis-cluster-create-$first.log" 2>&1
  fi
  # Every node must agree before the cluster serves every slot.
  for i in $(seq 1 200); do
    if redis-cli "${tls[@]}" -p "$p1" cluster info 2>/dev/null | grep -q 'cluster_state:ok' &&
      redis-cli "${tls[@]}" -p "$p2" cluster info 2>/dev/null | grep -q 'cluster_state:ok' &&
      redis-cli "${tls[@]}" -p "$p3" cluster info 2>/dev/null | grep -q 'cluster_state:ok'; then
      return 0
    fi
    sleep 0.1
  done
  echo "servers.sh: the Redis Cluster did not form; see $DIR/redis-cluster-create-$first.log" >&2
  exit 1
}

# -- redis-auth, redis-tls ----------------------------------------------------
AUTH_PASSWORD=stratacache-pw
AUTH_USER=app
AUTH_USER_PASSWORD=app-pw

# A CA, a server certificate it signs (127.0.0.1 and localhost) and a
# client certificate, once per state directory.
make_tls_certs() {
  local t="$DIR/tls"
  [ -f "$t/client.pem" ] && return 0
  mkdir -p "$t"
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=stratacache test CA" \
    -keyout "$t/ca.key" -out "$t/ca.pem" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" \
    -keyout "$t/server.key" -out "$t/server.csr" 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' >"$t/san.ext"
  openssl x509 -req -in "$t/server.csr" -CA "$t/ca.pem" -CAkey "$t/ca.key" -CAcreateserial \
    -days 2 -extfile "$t/san.ext" -out "$t/server.pem" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj "/CN=stratacache test client" \
    -keyout "$t/client.key" -out "$t/client.csr" 2>/dev/null
  # X.509 v3 (extensions), as rustls requires of a client certificate.
  printf 'extendedKeyUsage=clientAuth\n' >"$t/client.ext"
  openssl x509 -req -in "$t/client.csr" -CA "$t/ca.pem" -CAkey "$t/ca.key" -CAcreateserial \
    -days 2 -extfile "$t/client.ext" -out "$t/client.pem" 2>/dev/null
}

# -- Redis Sentinel (the `sentinel` services) ---------------------------------
SENTINEL_SERVICE=stratacache

start_sentinel_part() {
  local s=$1 port=$2 primary=$((BASE + 10))
  case "$s" in
    redis-sp | redis-sr)
      local args=()
      [ "$s" = redis-sr ] && args=(--replicaof 127.0.0.1 "$primary")
      [ -n "${STRATACACHE_REDIS_PASSWORD:-}" ] &&
        args+=(--requirepass "$STRATACACHE_REDIS_PASSWORD" --masterauth "$STRATACACHE_REDIS_PASSWORD")
      local listen=(--port "$port")
      if [ -n "${STRATACACHE_SENTINEL_TLS:-}" ]; then
        make_tls_certs
        listen=(--port 0 --tls-port "$port" --tls-replication yes --tls-auth-clients no
          --tls-cert-file "$DIR/tls/server.pem" --tls-key-file "$DIR/tls/server.key"
          --tls-ca-cert-file "$DIR/tls/ca.pem")
      fi
      redis-server --bind 127.0.0.1 "${listen[@]}" --save "" --appendonly no "${args[@]}" \
        --daemonize yes --pidfile "$DIR/$s.pid" --logfile "$DIR/$s.log" --dir "$DIR" >/dev/null
      ;;
    *)
      # Sentinels rewrite their config file: a fresh one each start.
      cat >"$DIR/$s.conf" <<CONF
port $port
bind 127.0.0.1
daemonize yes
pidfile $DIR/$s.pid
logfile $DIR/$s.log
dir $DIR
sentinel monitor $SENTINEL_SERVICE 127.0.0.1 $primary 2
sentinel down-after-milliseconds $SENTINEL_SERVICE 500
sentinel failover-timeout $SENTINEL_SERVICE 5000
sentinel parallel-syncs $SENTINEL_SERVICE 1
CONF
      if [ -n "${STRATACACHE_REDIS_PASSWORD:-}" ]; then
        echo "sentinel auth-pass $SENTINEL_SERVICE $STRATACACHE_REDIS_PASSWORD" >>"$DIR/$s.conf"
      fi
      if [ -n "${STRATACACHE_SENTINEL_PASSWORD:-}" ]; then
        printf 'requirepass %s\nsentinel sentinel-pass %s\n' "$STRATACACHE_SENTINEL_PASSWORD" \
          "$STRATACACHE_SENTINEL_PASSWORD" >>"$DIR/$s.conf"
      fi
      if [ -n "${STRATACACHE_SENTINEL_TLS:-}" ]; then
        make_tls_certs
        sed -i "s/^port $port\$/port 0\ntls-port $port/" "$DIR/$s.conf"
        printf '%s\n' "tls-replication yes" "tls-auth-clients no" "tls-cert-file $DIR/tls/server.pem" \
          "tls-key-file $DIR/tls/server.key" "tls-ca-cert-file $DIR/tls/ca.pem" >>"$DIR/$s.conf"
      fi
      redis-server "$DIR/$s.conf" --sentinel >/dev/null
      ;;
  esac
}

# Waits until the replica is in sync and every sentinel knows it in sync (a
# failover needs a replica to promote).
form_sentinel() {
  local i s ok
  local tls=()
  [ -n "${STRATACACHE_SENTINEL_TLS:-}" ] && tls=(--tls --cacert "$DIR/tls/ca.pem")
  for i in $(seq 1 200); do
    ok=1
    REDISCLI_AUTH="${STRATACACHE_REDIS_PASSWORD:-}" redis-cli "${tls[@]}" -p $((BASE + 11)) info replication 2>/dev/null |
      grep -q 'master_link_status:up' || ok=0
    for s in 12 13 14; do
      # Listed and in sync in every sentinel's view, as the client's replica
      # reads require (right after discovery a sentinel reports it "err").
      [ "$(REDISCLI_AUTH="${STRATACACHE_SENTINEL_PASSWORD:-}" redis-cli "${tls[@]}" -p $((BASE + s)) sentinel replicas "$SENTINEL_SERVICE" 2>/dev/null | grep -A1 '^master-link-status$' | grep -c '^ok$')" -ge 1 ] || ok=0
      [ "$(REDISCLI_AUTH="${STRATACACHE_SENTINEL_PASSWORD:-}" redis-cli "${tls[@]}" -p $((BASE + s)) sentinel sentinels "$SENTINEL_SERVICE" 2>/dev/null | grep -c '^name$')" -ge 2 ] || ok=0
    done
    [ "$ok" = 1 ] && return 0
    sleep 0.1
  done
  echo "servers.sh: the sentinels did not see the replica and each other within 20 s; see $DIR/redis-s1.log" >&2
  exit 1
}

print_env() {
  cat <<EOF
export STRATACACHE_PORT_BASE=$BASE
export STRATACACHE_SERVERS_DIR=$DIR
export STRATACACHE_MEMCACHED=127.0.0.1:$MC1_PORT,127.0.0.1:$MC2_PORT
export STRATACACHE_REDIS_URL=redis://127.0.0.1:$REDIS_PORT/0
export STRATACACHE_S3_ENDPOINT=http://127.0.0.1:$S3_PORT
export STRATACACHE_S3_BUCKET=stratacache-test
export STRATACACHE_MEMCACHED_FLEET=127.0.0.1:$MC1_PORT,127.0.0.1:$MC2_PORT,127.0.0.1:$((BASE + 4)),127.0.0.1:$((BASE + 5))
export STRATACACHE_REDIS_REPLICA_URL=redis://127.0.0.1:$((BASE + 9))/0
export STRATACACHE_REDIS_CLUSTER=redis://127.0.0.1:$((BASE + 6)),redis://127.0.0.1:$((BASE + 7)),redis://127.0.0.1:$((BASE + 8))
export STRATACACHE_REDIS_SENTINELS=127.0.0.1:$((BASE + 12)),127.0.0.1:$((BASE + 13)),127.0.0.1:$((BASE + 14))
export STRATACACHE_REDIS_SENTINEL_SERVICE=$SENTINEL_SERVICE
export STRATACACHE_REDIS_AUTH_URL=redis://127.0.0.1:$((BASE + 15))/0
export STRATACACHE_REDIS_AUTH_PASSWORD=$AUTH_PASSWORD
export STRATACACHE_REDIS_AUTH_USER=$AUTH_USER
export STRATACACHE_REDIS_AUTH_USER_PASSWORD=$AUTH_USER_PASSWORD
export STRATACACHE_REDIS_TLS_URL=rediss://127.0.0.1:$((BASE + 16))/0
export STRATACACHE_REDIS_TLS_CA=$DIR/tls/ca.pem
export STRATACACHE_REDIS_MTLS_URL=rediss://127.0.0.1:$((BASE + 17))/0
export STRATACACHE_REDIS_TLS_CLIENT_CERT=$DIR/tls/client.pem
export STRATACACHE_REDIS_TLS_CLIENT_KEY=$DIR/tls/client.key
export STRATACACHE_REDIS_CLUSTER_TLS=rediss://127.0.0.1:$((BASE + 18)),rediss://127.0.0.1:$((BASE + 19)),rediss://127.0.0.1:$((BASE + 20))
export AWS_ACCESS_KEY_ID=testing
export AWS_SECRET_ACCESS_KEY=testing
export AWS_DEFAULT_REGION=us-east-1
EOF
}

cmd="${1:-}"
[ $# -gt 0 ] && shift
case "$cmd" in
  start)
    read -r -a services <<<"$(expand "$@")"
    mkdir -p "$DIR"
    ensure_installed "${services[@]}"
    for s in "${services[@]}"; do start_one "$s"; done
    for s in "${services[@]}"; do wait_ready "$s"; done
    [[ " ${services[*]} " == *" redis-c1 "* ]] && form_cluster 6
    [[ " ${services[*]} " == *" redis-t1 "* ]] && form_cluster 18
    [[ " ${services[*]} " == *" redis-s1 "* ]] && form_sentinel
    echo "servers.sh: started ${services[*]} (port base $BASE)" >&2
    ;;
  stop)
    read -r -a services <<<"$(expand "$@")"
    for s in "${services[@]}"; do stop_one "$s"; done
    echo "servers.sh: stopped ${services[*]}" >&2
    ;;
  freeze | thaw)
    read -r -a services <<<"$(expand "$@")"
    sig=STOP; [ "$cmd" = thaw ] && sig=CONT
    for s in "${services[@]}"; do
      pid_alive "$s" || { echo "servers.sh: $s is not running" >&2; exit 1; }
      kill -"$sig" "$(cat "$DIR/$s.pid")"
    done
    ;;
  status)
    for s in memcached1 memcached2 redis s3 memcached3 memcached4 redis-c1 redis-c2 redis-c3 redis-replica redis-sp redis-sr redis-s1 redis-s2 redis-s3 redis-auth redis-tls redis-mtls redis-t1 redis-t2 redis-t3; do
      if pid_alive "$s" && listening "$(port_of "$s")"; then
        echo "$s running on 127.0.0.1:$(port_of "$s") (pid $(cat "$DIR/$s.pid"))"
      else
        echo "$s stopped"
      fi
    done
    ;;
  env) print_env ;;
  *)
    sed -n '2,/^set -euo/p' "$0" | sed 's/^# \{0,1\}//; /^set -euo/d' >&2
    exit 2
    ;;
esac
