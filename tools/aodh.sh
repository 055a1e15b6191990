#!/usr/bin/env bash
# Aodh (PyPI "aodh", with its dependencies) in a virtualenv of its own, for
# the parity tests: its evaluators are driven directly
# (tests/functional/aodh_driver.py) on the data our rules read. Nothing
# runs: "start" installs when missing, "stop" has nothing to stop, "env"
# prints the virtualenv's python.
#
#   tools/aodh.sh start|stop|env
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
VENV=${TELEMETRY_AODH_VENV:-/var/tmp/telemetry-aodh-venv}
VERSION=${TELEMETRY_AODH_VERSION:-23.0.0}

log() { echo "aodh.sh: $*" >&2; }
# shellcheck source=tools/lib.sh
. "$HERE/lib.sh"

start() {
    if ! "$VENV/bin/python" -c 'import aodh.evaluator.composite' \
            2>/dev/null; then
        log "installing Aodh $VERSION into $VENV (a minute or two)"
        ensure_packages python3-venv
        python3 -m venv "$VENV"
        "$VENV/bin/pip" install -q "aodh==$VERSION"
    fi
}

case "${1:-}" in
    start) start ;;
    stop) ;;
    env) echo "TELEMETRY_AODH_PYTHON=$VENV/bin/python" ;;
    *) echo "usage: $0 start|stop|env" >&2; exit 2 ;;
esac
