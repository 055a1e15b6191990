#!/usr/bin/env bash
# The remote write receivers of the functional tests: Prometheus 2.42
# (Debian's, also tools/prometheus.sh's) and VictoriaMetrics (Debian's
# victoria-metrics), installed when missing. The tests start and stop
# their own receiver processes (an outage is part of what they test), each
# in a directory of its own; "stop" ends any a killed test left behind.
#
#   tools/remote_write.sh start|stop|env
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tools/lib.sh
. "$HERE/lib.sh"

start() {
    ensure_packages prometheus victoria-metrics
    # Debian's package enables a system service; the tests run their own.
    env_lines
}

stop() {
    # Only the receivers the tests start: they all keep their data under
    # a telemetry-rw- directory.
    pkill -f -- '-storageDataPath=/tmp/telemetry-rw-' 2>/dev/null || true
    pkill -f -- '--storage.tsdb.path=/tmp/telemetry-rw-' 2>/dev/null || true
}

env_lines() {
    echo "TELEMETRY_RW_PROMETHEUS=$(command -v prometheus)"
    echo "TELEMETRY_RW_VICTORIAMETRICS=$(command -v victoria-metrics)"
}

case "${1:-start}" in
    start) start ;;
    stop) stop ;;
    env) env_lines ;;
    *) echo "usage: $0 start|stop|env" >&2; exit 2 ;;
esac
