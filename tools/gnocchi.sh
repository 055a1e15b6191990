#!/usr/bin/env bash
# Gnocchi 4.7 (PyPI) on 127.0.0.1 with PostgreSQL as indexer and Ceph as
# storage, for the functional tests and benchmarks. Idempotent: starts the
# single-node Ceph of tools/ceph.sh, PostgreSQL if it is down, installs
# Gnocchi in its own virtualenv when missing, and starts gnocchi-api and
# gnocchi-metricd unless they run.
#
#   tools/gnocchi.sh start|stop|env
#
# Gnocchi runs from a virtualenv of Debian's /usr/bin/python3 with system
# site packages: only that Python has Ceph's `rados` module. The project's
# own test environment stays separate and talks to Gnocchi over HTTP.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
BASE=${TELEMETRY_GNOCCHI_DIR:-/var/tmp/telemetry-gnocchi}
VENV=${TELEMETRY_GNOCCHI_VENV:-/var/tmp/telemetry-gnocchi-venv}
PORT=${TELEMETRY_GNOCCHI_PORT:-18041}
DB=${TELEMETRY_GNOCCHI_DB:-telemetry_gnocchi}
# A second API on the same indexer and storage needs no metricd of its own.
METRICD=${TELEMETRY_GNOCCHI_METRICD:-1}
# basic, or keystone: tools/keystone.sh's Keystone checks the tokens and
# its catalog gets this API as the "metric" service.
AUTH=${TELEMETRY_GNOCCHI_AUTH:-basic}
CEPH_CONF=${TELEMETRY_CEPH_CONF:-/var/tmp/telemetry-ceph/ceph.conf}

log() { echo "gnocchi.sh: $*" >&2; }
# shellcheck source=tools/lib.sh
. "$HERE/lib.sh"

install() {
    if [ ! -x "$VENV/bin/gnocchi-api" ]; then
        log "installing Gnocchi into $VENV (a few minutes)"
        ensure_packages python3-venv
        /usr/bin/python3 -m venv --system-site-packages "$VENV"
        "$VENV/bin/pip" install -q 'gnocchi[postgresql,ceph]==4.7.*'
        # pip may reuse a uwsgi wheel built for another Python 3.11 build,
        # which then fails (No module named '_csv'): build this one here.
        "$VENV/bin/pip" install -q --no-cache-dir --force-reinstall \
            --no-deps uwsgi
    fi
    if [ "$AUTH" = keystone ] && \
            ! "$VENV/bin/python" -c 'import keystonemiddleware' 2>/dev/null; then
        "$VENV/bin/pip" install -q keystonemiddleware
    fi
}

# Gnocchi's paste file, in $BASE; with keystone, keystonemiddleware is
# pointed at our config file (Gnocchi's own paste file makes it read
# /etc/gnocchi/gnocchi.conf only).
paste_file() {
    cp "$("$VENV/bin/python" -c 'import gnocchi.rest, os
print(os.path.dirname(gnocchi.rest.__file__))')/api-paste.ini" "$BASE/"
    [ "$AUTH" = keystone ] || return 0
    sed -i "/^\[filter:keystone_authtoken\]/,/^$/ s|^oslo_config_project = gnocchi$|&\noslo_config_file = $BASE/gnocchi.conf|" \
        "$BASE/api-paste.ini"
}

# The [keystone_authtoken] section of auth_mode = keystone (printed).
keystone_section() {
    [ "$AUTH" = keystone ] || return 0
    local url user password
    url=$(sed -n 's/^TELEMETRY_KEYSTONE_URL=//p' <<< "$KEYSTONE_ENV")
    user=$(sed -n 's/^TELEMETRY_KEYSTONE_USER=//p' <<< "$KEYSTONE_ENV")
    password=$(sed -n 's/^TELEMETRY_KEYSTONE_PASSWORD=//p' <<< "$KEYSTONE_ENV")
    cat <<EOF
[keystone_authtoken]
www_authenticate_uri = $url
auth_url = $url
auth_type = password
username = $user
password = $password
project_name = service
user_domain_name = Default
project_domain_name = Default
EOF
}

configure() {
    mkdir -p "$BASE"
    paste_file
    cat > "$BASE/gnocchi.conf" <<EOF
[DEFAULT]
debug = false
[api]
auth_mode = $AUTH
paste_config = $BASE/api-paste.ini
host = 127.0.0.1
port = $PORT
workers = 2
[indexer]
url = postgresql://postgres@127.0.0.1:5432/$DB
[storage]
driver = ceph
ceph_pool = gnocchi
ceph_conffile = $CEPH_CONF
ceph_username = admin
[incoming]
driver = ceph
ceph_pool = gnocchi
ceph_conffile = $CEPH_CONF
ceph_username = admin
[metricd]
workers = 1
metric_processing_delay = 1
metric_reporting_delay = 60
metric_cleanup_delay = 60
[statsd]
host = 127.0.0.1
$(keystone_section)
EOF
}

running() {
    [ -f "$BASE/$1.pid" ] && kill -0 "$(cat "$BASE/$1.pid")" 2>/dev/null
}

api_up() {
    # With keystone, an answer at all (401 without a token) means it is up.
    if [ "$AUTH" = keystone ]; then
        curl -sS -o /dev/null "http://127.0.0.1:$PORT/" 2>/dev/null
    else
        curl -fsS -o /dev/null -u admin: "http://127.0.0.1:$PORT/v1/status" 2>/dev/null
    fi
}

start() {
    if [ "$AUTH" = keystone ]; then
        KEYSTONE_ENV=$(bash "$HERE/keystone.sh" start)
    fi
    # Already serving (the tests call start before each case): nothing to
    # check or upgrade again.
    if api_up && { [ "$METRICD" != 1 ] || running metricd; }; then
        registered
        env_lines
        return 0
    fi
    bash "$HERE/ceph.sh" start >/dev/null
    ensure_packages curl
    ensure_postgres_db "$DB"
    install
    configure
    export VIRTUAL_ENV=$VENV PATH=$VENV/bin:$PATH
    # 8 incoming sacks, not 128: metricd scans each of them every second,
    # which on a test cluster costs Ceph more than the measures do.
    "$VENV/bin/gnocchi-upgrade" --config-file "$BASE/gnocchi.conf" \
        --sacks-number 8 \
        >> "$BASE/upgrade.log" 2>&1
    if [ "$METRICD" = 1 ] && ! running metricd; then
        nohup "$VENV/bin/gnocchi-metricd" --config-file "$BASE/gnocchi.conf" \
            >> "$BASE/metricd.log" 2>&1 < /dev/null &
        echo $! > "$BASE/metricd.pid"
    fi
    if ! api_up; then
        log "starting gnocchi-api on 127.0.0.1:$PORT"
        nohup "$VENV/bin/gnocchi-api" --config-file "$BASE/gnocchi.conf" \
            >> "$BASE/api.log" 2>&1 < /dev/null &
        echo $! > "$BASE/api.pid"
        await 60 "$BASE/api.log" gnocchi-api api_up
    fi
    registered
    env_lines
}

# With keystone: this API in the catalog (again if Keystone was recreated
# since), and Keystone's settings for the caller.
registered() {
    [ "$AUTH" = keystone ] || return 0
    local since=${TELEMETRY_KEYSTONE_DIR:-/var/tmp/telemetry-keystone}/bootstrapped
    if ! [ "$BASE/registered" -nt "$since" ]; then
        bash "$HERE/keystone.sh" register-metric "http://127.0.0.1:$PORT"
        touch "$BASE/registered"
    fi
    echo "$KEYSTONE_ENV"
}

stop() {
    for name in api metricd; do
        if running "$name"; then
            kill "$(cat "$BASE/$name.pid")" 2>/dev/null || true
        fi
    done
}

env_lines() {
    echo "TELEMETRY_GNOCCHI_URL=http://127.0.0.1:$PORT"
    echo "TELEMETRY_CEPH_CONF=$CEPH_CONF"
}

case "${1:-start}" in
    start) start ;;
    stop) stop ;;
    env) env_lines ;;
    *) echo "usage: $0 start|stop|env" >&2; exit 2 ;;
esac
