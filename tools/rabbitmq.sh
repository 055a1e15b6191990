#!/usr/bin/env bash
# A private RabbitMQ node for the functional tests and benchmarks, with the
# AMQP 1.0 plugin and a TLS listener. Idempotent: installs RabbitMQ from
# Debian's packages when missing, starts the node unless it runs.
#
#   tools/rabbitmq.sh start|stop|status|env
#
# Why a private node: the tests stop and start it, and need a TLS listener;
# a machine's own broker is left alone. Everything binds to 127.0.0.1.
set -euo pipefail

NODE=${TELEMETRY_RABBIT_NODE:-telemetry-test@localhost}
PORT=${TELEMETRY_RABBIT_PORT:-5682}
TLS_PORT=${TELEMETRY_RABBIT_TLS_PORT:-5681}
DIST_PORT=${TELEMETRY_RABBIT_DIST_PORT:-25682}
BASE=${TELEMETRY_RABBIT_DIR:-/var/tmp/${NODE%@*}-rabbit}
TLS=$BASE/tls

log() { echo "rabbitmq.sh: $*" >&2; }

# shellcheck source=tools/lib.sh
. "$(dirname "$0")/lib.sh"

install() {
    ensure_packages rabbitmq-server:rabbitmq-server openssl
    # Debian's package starts nothing here, but has an epmd to reach.
    if ! pgrep -x epmd >/dev/null 2>&1; then
        su rabbitmq -s /bin/sh -c 'epmd -address 127.0.0.1 -daemon'
    fi
}

certificates() {
    [ -f "$TLS/server.pem" ] && [ -f "$TLS/other-ca.pem" ] && return 0
    log "generating a test CA and server certificate in $TLS"
    mkdir -p "$TLS"
    openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj '/CN=telemetry test CA' \
        -keyout "$TLS/ca-key.pem" -out "$TLS/ca.pem" 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -subj '/CN=localhost' \
        -keyout "$TLS/server-key.pem" -out "$TLS/server.csr" 2>/dev/null
    printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' > "$TLS/san.ext"
    openssl x509 -req -in "$TLS/server.csr" -CA "$TLS/ca.pem" -CAkey "$TLS/ca-key.pem" \
        -CAcreateserial -days 3650 -extfile "$TLS/san.ext" -out "$TLS/server.pem" 2>/dev/null
    # A CA that signed nothing here: the "wrong CA" of the tests.
    openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj '/CN=unrelated CA' \
        -keyout "$TLS/other-ca-key.pem" -out "$TLS/other-ca.pem" 2>/dev/null
    chmod 0644 "$TLS"/*.pem
}

configure() {
    mkdir -p "$BASE/mnesia" "$BASE/log"
    cat > "$BASE/rabbitmq.conf" <<EOF
listeners.tcp.default = 127.0.0.1:$PORT
listeners.ssl.default = 127.0.0.1:$TLS_PORT
ssl_options.cacertfile = $TLS/ca.pem
ssl_options.certfile = $TLS/server.pem
ssl_options.keyfile = $TLS/server-key.pem
ssl_options.verify = verify_none
ssl_options.fail_if_no_peer_cert = false
loopback_users = none
log.file.level = warning
EOF
    echo '[rabbitmq_amqp1_0].' > "$BASE/enabled_plugins"
    chown rabbitmq:rabbitmq "$BASE" "$BASE/mnesia" "$BASE/log" \
        "$BASE/rabbitmq.conf" "$BASE/enabled_plugins"
    # Not while the node runs: its database files come and go under a
    # recursive chown, which then fails on one that vanished (CI saw it).
    if ! running; then
        chown -R rabbitmq:rabbitmq "$BASE"
    fi
}

node_env() {
    export RABBITMQ_NODENAME=$NODE
    export RABBITMQ_DIST_PORT=$DIST_PORT
    export RABBITMQ_CONFIG_FILE=$BASE/rabbitmq
    export RABBITMQ_ENABLED_PLUGINS_FILE=$BASE/enabled_plugins
    export RABBITMQ_MNESIA_BASE=$BASE/mnesia
    export RABBITMQ_LOG_BASE=$BASE/log
    export RABBITMQ_PID_FILE=$BASE/rabbit.pid
    export ERL_EPMD_ADDRESS=127.0.0.1
}

running() {
    rabbitmqctl -q -n "$NODE" status >/dev/null 2>&1
}

start() {
    install
    certificates
    configure
    node_env
    if running; then
        log "$NODE already running"
    else
        log "starting $NODE on 127.0.0.1:$PORT (TLS $TLS_PORT)"
        rabbitmq-server -detached >/dev/null 2>&1 || true
        # await_startup fails at once while the Erlang node is not up yet.
        local deadline=$((SECONDS + 90))
        until rabbitmqctl -q -n "$NODE" await_startup >/dev/null 2>&1; do
            if [ $SECONDS -ge $deadline ]; then
                log "$NODE did not start within 90 s; its log:"
                tail -n 40 "$BASE"/log/*.log >&2 || true
                exit 1
            fi
            sleep 0.5
        done
    fi
    env_lines
}

stop() {
    node_env
    if running; then
        rabbitmqctl -q -n "$NODE" stop >/dev/null 2>&1 || true
    fi
    # Wait for the port to close, so a following start binds it.
    for _ in $(seq 1 100); do
        (exec 3<>/dev/tcp/127.0.0.1/"$PORT") 2>/dev/null || return 0
        sleep 0.1
    done
}

env_lines() {
    echo "TELEMETRY_RABBIT_NODE=$NODE"
    echo "TELEMETRY_RABBIT_PORT=$PORT"
    echo "TELEMETRY_RABBIT_TLS_PORT=$TLS_PORT"
    echo "TELEMETRY_RABBIT_CA=$TLS/ca.pem"
    echo "TELEMETRY_RABBIT_OTHER_CA=$TLS/other-ca.pem"
}

case "${1:-start}" in
    start) start ;;
    stop) stop ;;
    status) node_env; running && echo running || { echo stopped; exit 1; } ;;
    env) env_lines ;;
    *) echo "usage: $0 start|stop|status|env" >&2; exit 2 ;;
esac
