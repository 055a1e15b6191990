#!/usr/bin/env bash
# Prometheus, Pushgateway and Alertmanager for the functional tests and
# benchmarks, as plain processes on loopback with generated configuration.
# Idempotent: installs Debian's packages when missing, starts what does not
# run yet.
#
#   tools/prometheus.sh start|stop|env
#
# Prometheus scrapes every 0.5 s the targets listed in $BASE/targets/*.json
# (file service discovery: a test writes its agent's address there) and the
# Pushgateway (honor_labels), and keeps what it gets for the tests to query.
set -euo pipefail

BASE=${TELEMETRY_PROM_DIR:-/var/tmp/telemetry-prometheus}
PROM_PORT=${TELEMETRY_PROM_PORT:-19090}
PUSH_PORT=${TELEMETRY_PUSHGATEWAY_PORT:-19091}
AM_PORT=${TELEMETRY_ALERTMANAGER_PORT:-19093}

log() { echo "prometheus.sh: $*" >&2; }

# shellcheck source=tools/lib.sh
. "$(dirname "$0")/lib.sh"

install() {
    ensure_packages curl prometheus prometheus-pushgateway \
        prometheus-alertmanager
}

configure() {
    mkdir -p "$BASE/targets" "$BASE/prom-data" "$BASE/am-data"
    [ -f "$BASE/targets/none.json" ] || echo '[]' > "$BASE/targets/none.json"
    cat > "$BASE/prometheus.yml" <<CONF
global:
  scrape_interval: 500ms
  evaluation_interval: 500ms
scrape_configs:
  - job_name: telemetry
    honor_labels: true
    honor_timestamps: true
    file_sd_configs:
      - files: ['$BASE/targets/*.json']
        refresh_interval: 1s
  - job_name: pushgateway
    honor_labels: true
    static_configs:
      - targets: ['127.0.0.1:$PUSH_PORT']
CONF
    cat > "$BASE/alertmanager.yml" <<CONF
route:
  receiver: blackhole
receivers:
  - name: blackhole
CONF
}

up() {
    curl -fsS -o /dev/null "http://127.0.0.1:$1$2" 2>/dev/null
}

launch() {  # name port ready-path command...
    local name=$1 port=$2 path=$3
    shift 3
    if up "$port" "$path"; then
        log "$name already running on 127.0.0.1:$port"
        return 0
    fi
    log "starting $name on 127.0.0.1:$port"
    nohup "$@" >> "$BASE/$name.log" 2>&1 &
    echo $! > "$BASE/$name.pid"
    for _ in $(seq 1 100); do
        up "$port" "$path" && return 0
        sleep 0.1
    done
    log "$name did not start; its log:"
    tail -n 30 "$BASE/$name.log" >&2
    exit 1
}

start() {
    install
    configure
    launch pushgateway "$PUSH_PORT" /-/ready \
        prometheus-pushgateway --web.listen-address="127.0.0.1:$PUSH_PORT"
    launch alertmanager "$AM_PORT" /-/ready \
        prometheus-alertmanager --config.file="$BASE/alertmanager.yml" \
        --storage.path="$BASE/am-data" \
        --web.listen-address="127.0.0.1:$AM_PORT" --cluster.listen-address=
    launch prometheus "$PROM_PORT" /-/ready \
        prometheus --config.file="$BASE/prometheus.yml" \
        --storage.tsdb.path="$BASE/prom-data" \
        --web.listen-address="127.0.0.1:$PROM_PORT" \
        --web.enable-lifecycle --web.enable-admin-api
    env_lines
}

stop() {
    for name in prometheus alertmanager pushgateway; do
        if [ -f "$BASE/$name.pid" ]; then
            kill "$(cat "$BASE/$name.pid")" 2>/dev/null || true
            rm -f "$BASE/$name.pid"
        fi
    done
}

env_lines() {
    echo "TELEMETRY_PROM_URL=http://127.0.0.1:$PROM_PORT"
    echo "TELEMETRY_PUSHGATEWAY_URL=http://127.0.0.1:$PUSH_PORT"
    echo "TELEMETRY_ALERTMANAGER_URL=http://127.0.0.1:$AM_PORT"
    echo "TELEMETRY_PROM_TARGETS=$BASE/targets"
}

case "${1:-start}" in
    start) start ;;
    stop) stop ;;
    env) env_lines ;;
    *) echo "usage: $0 start|stop|env" >&2; exit 2 ;;
esac
