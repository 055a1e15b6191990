#!/usr/bin/env bash
# Heat (PyPI openstack-heat) on 127.0.0.1 for the autoscaling tests:
# heat-engine, the native API (signals, stacks) and the CloudFormation API
# (pre-signed alarm_url), under gunicorn; PostgreSQL database; RPC over the
# test RabbitMQ on a vhost of its own; Keystone from tools/keystone.sh,
# with the objects Heat needs (a heat service user, a stack domain and its
# admin, the heat_stack_user role, orchestration and cloudformation in the
# catalog). Idempotent: installs into its own virtualenv when missing,
# configures once, starts what is not running.
#
#   tools/heat.sh start|stop|env
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
BASE=${TELEMETRY_HEAT_DIR:-/var/tmp/telemetry-heat}
VENV=${TELEMETRY_HEAT_VENV:-/var/tmp/telemetry-heat-venv}
API_PORT=${TELEMETRY_HEAT_PORT:-18004}
CFN_PORT=${TELEMETRY_HEAT_CFN_PORT:-18000}
RABBIT_NODE=${TELEMETRY_RABBIT_NODE:-telemetry-test@localhost}
RABBIT_PORT=${TELEMETRY_RABBIT_PORT:-5682}
PASSWORD=heat-secret
# PostgreSQL, not SQLite: with SQLite, two stacks made at once failed with
# "database is locked".
DB=${TELEMETRY_HEAT_DB:-telemetry_heat}

log() { echo "heat.sh: $*" >&2; }
# shellcheck source=tools/lib.sh
. "$HERE/lib.sh"

keystone_env() {
    eval "$(bash "$HERE/keystone.sh" start | sed 's/^/export /')"
    KS_URL=$TELEMETRY_KEYSTONE_URL
    KS_BASE=${KS_URL%/v3}
    KS_DIR=${TELEMETRY_KEYSTONE_DIR:-/var/tmp/telemetry-keystone}
}

install() {
    if [ ! -x "$VENV/bin/heat-engine" ] || [ ! -x "$VENV/bin/gunicorn" ]; then
        log "installing Heat into $VENV (a minute or two)"
        ensure_packages python3-venv
        python3 -m venv "$VENV"
        "$VENV/bin/pip" install -q openstack-heat python-heatclient gunicorn \
            psycopg2-binary
    fi
    # An older venv of this script, made before the PostgreSQL switch.
    "$VENV/bin/python" -c 'import psycopg2' 2>/dev/null ||
        "$VENV/bin/pip" install -q psycopg2-binary
}

# ks METHOD PATH [BODY]: a Keystone admin call (token in $TOKEN).
ks() {
    curl -fsS -X "$1" -H "X-Auth-Token: $TOKEN" \
        -H 'Content-Type: application/json' ${3:+-d "$3"} "$KS_URL$2"
}

ks_id() {   # ks_id COLLECTION NAME [QUERY]
    ks GET "/$1?name=$2${3:-}" | python3 -c \
        "import json,sys; r=json.load(sys.stdin)['$1']; print(r[0]['id'] if r else '')"
}

ks_create() {   # ks_create COLLECTION KEY BODY: prints the new id
    ks POST "/$1" "$3" | python3 -c \
        "import json,sys; print(json.load(sys.stdin)['$2']['id'])"
}

keystone_objects() {
    mkdir -p "$BASE"
    [ -f "$BASE/keystone-done" ] && return 0
    log "creating Heat's users, domain, role and catalog entries"
    TOKEN=$(curl -fsS -i -H 'Content-Type: application/json' -d '{
      "auth": {"identity": {"methods": ["password"], "password": {
        "user": {"name": "admin", "domain": {"id": "default"},
                 "password": "'"${TELEMETRY_KEYSTONE_ADMIN_PASSWORD:-admin-secret}"'"}}},
        "scope": {"project": {"name": "admin", "domain": {"id": "default"}}}}}' \
        "$KS_URL/auth/tokens" | tr -d '\r' | sed -n 's/^[Xx]-[Ss]ubject-[Tt]oken: //p')
    local service admin user domain dadmin role svc
    service=$(ks_id projects service)
    admin=$(ks_id roles admin)
    user=$(ks_id users heat)
    [ -n "$user" ] || user=$(ks_create users user '{"user": {"name": "heat",
        "domain_id": "default", "password": "'$PASSWORD'"}}')
    ks PUT "/projects/$service/users/$user/roles/$admin" >/dev/null
    domain=$(ks_id domains heat)
    [ -n "$domain" ] || domain=$(ks_create domains domain \
        '{"domain": {"name": "heat", "description": "Heat stack users"}}')
    dadmin=$(ks_id users heat_domain_admin "&domain_id=$domain")
    [ -n "$dadmin" ] || dadmin=$(ks_create users user '{"user": {
        "name": "heat_domain_admin", "domain_id": "'"$domain"'",
        "password": "'$PASSWORD'"}}')
    ks PUT "/domains/$domain/users/$dadmin/roles/$admin" >/dev/null
    role=$(ks_id roles heat_stack_user)
    [ -n "$role" ] || ks_create roles role \
        '{"role": {"name": "heat_stack_user"}}' >/dev/null
    role=$(ks_id roles heat_stack_owner)
    [ -n "$role" ] || ks_create roles role \
        '{"role": {"name": "heat_stack_owner"}}' >/dev/null
    for spec in "heat orchestration http://127.0.0.1:$API_PORT/v1/%(tenant_id)s" \
                "heat-cfn cloudformation http://127.0.0.1:$CFN_PORT/v1"; do
        set -- $spec
        svc=$(ks_id services "$1")
        [ -n "$svc" ] || svc=$(ks_create services service \
            '{"service": {"name": "'"$1"'", "type": "'"$2"'"}}')
        if ! ks GET "/endpoints?service_id=$svc" | grep -q "$API_PORT\|$CFN_PORT"; then
            for iface in public internal admin; do
                ks POST /endpoints '{"endpoint": {"service_id": "'"$svc"'",
                    "interface": "'$iface'", "url": "'"$3"'",
                    "region_id": "RegionOne"}}' >/dev/null
            done
        fi
    done
    touch "$BASE/keystone-done"
}

rabbit_vhost() {
    local ctl="rabbitmqctl -q -n $RABBIT_NODE"
    if ! bash "$HERE/rabbitmq.sh" status >/dev/null 2>&1; then
        # Started here: "heat.sh stop" stops it again.
        touch "$BASE/started-rabbitmq"
    fi
    bash "$HERE/rabbitmq.sh" start >/dev/null
    $ctl list_vhosts 2>/dev/null | grep -qx heat || $ctl add_vhost heat
    $ctl set_permissions -p heat guest '.*' '.*' '.*' >/dev/null
}

configure() {
    mkdir -p "$BASE"
    cp "$VENV/etc/heat/api-paste.ini" "$BASE/api-paste.ini"
    local creds="auth_type = password
auth_url = $KS_URL
username = heat
password = $PASSWORD
user_domain_name = Default"
    cat > "$BASE/heat.conf" <<EOF
[DEFAULT]
transport_url = rabbit://guest:guest@127.0.0.1:$RABBIT_PORT/heat
heat_metadata_server_url = http://127.0.0.1:$CFN_PORT
heat_waitcondition_server_url = http://127.0.0.1:$CFN_PORT/v1/waitcondition
stack_domain_admin = heat_domain_admin
stack_domain_admin_password = $PASSWORD
stack_user_domain_name = heat
num_engine_workers = 1
region_name_for_services = RegionOne
log_dir = $BASE
debug = false
[database]
connection = postgresql+psycopg2://postgres@127.0.0.1:5432/$DB
[paste_deploy]
api_paste_config = $BASE/api-paste.ini
[keystone_authtoken]
www_authenticate_uri = $KS_URL
$creds
project_name = service
project_domain_name = Default
[trustee]
$creds
[clients_keystone]
auth_uri = $KS_BASE
[ec2authtoken]
auth_uri = $KS_URL
$creds
project_name = service
project_domain_name = Default
endpoint_override = $KS_BASE
[oslo_messaging_notifications]
driver = noop
EOF
    for app in api cfn; do
        cat > "$BASE/heat_${app}_app.py" <<EOF
# gunicorn entry point: Heat's WSGI app reads its config file from argv.
import sys
sys.argv = ['heat-$app', '--config-file', '$BASE/heat.conf']
from heat.wsgi.$app import application  # noqa: E402,F401
EOF
    done
    ensure_postgres_db "$DB"
    if [ ! -f "$BASE/db-done" ] || ! grep -q postgresql "$BASE/db-done"; then
        "$VENV/bin/heat-manage" --config-file "$BASE/heat.conf" db_sync \
            >> "$BASE/manage.log" 2>&1
        echo postgresql > "$BASE/db-done"
    fi
}

running() {   # running NAME
    [ -f "$BASE/$1.pid" ] && kill -0 "$(cat "$BASE/$1.pid")" 2>/dev/null
}

api_up() {
    curl -fsS -o /dev/null "http://127.0.0.1:$API_PORT/" 2>/dev/null ||
        [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$API_PORT/")" = 300 ]
}

start() {
    ensure_packages curl
    install
    keystone_env
    keystone_objects
    rabbit_vhost
    configure
    # Each daemon gets its own output and no descriptor of ours, so a
    # caller reading this script's output is not held open by them.
    cd "$BASE"
    if ! running engine; then
        log "starting heat-engine"
        nohup "$VENV/bin/heat-engine" --config-file "$BASE/heat.conf" \
            >> "$BASE/engine.out" 2>&1 < /dev/null &
        echo $! > "$BASE/engine.pid"
    fi
    for app in api cfn; do
        local port=$API_PORT
        [ "$app" = cfn ] && port=$CFN_PORT
        if ! running "$app"; then
            log "starting heat-$app on 127.0.0.1:$port"
            PYTHONPATH="$BASE" nohup "$VENV/bin/gunicorn" \
                --bind "127.0.0.1:$port" --workers 1 --pid "$BASE/$app.pid" \
                "heat_${app}_app:application" >> "$BASE/$app.out" 2>&1 \
                < /dev/null &
        fi
    done
    await 60 "$BASE/api.out" heat-api api_up
    env_lines
}

stop() {
    for name in api cfn engine; do
        if running "$name"; then
            kill "$(cat "$BASE/$name.pid")" 2>/dev/null || true
        fi
    done
    # Also any left by a run whose pid file was lost; the engine takes
    # ~10 s to exit.
    pkill -f -- "heat-engine --config-file $BASE/heat.conf" 2>/dev/null || true
    pkill -f -- "heat_(api|cfn)_app:application" 2>/dev/null || true
    for _ in $(seq 1 40); do
        pgrep -f -- "$BASE/heat.conf|heat_(api|cfn)_app:application" \
            >/dev/null || break
        sleep 0.5
    done
    pkill -9 -f -- "$BASE/heat.conf|heat_(api|cfn)_app:application" \
        2>/dev/null || true
    stop_rabbit
}

stop_rabbit() {
    # The RabbitMQ node, when this script's start started it (not when
    # tox or another script had).
    if [ -f "$BASE/started-rabbitmq" ]; then
        bash "$HERE/rabbitmq.sh" stop >/dev/null 2>&1 || true
        rm -f "$BASE/started-rabbitmq"
    fi
}

env_lines() {
    echo "TELEMETRY_HEAT_URL=http://127.0.0.1:$API_PORT/v1"
    echo "TELEMETRY_HEAT_CFN_URL=http://127.0.0.1:$CFN_PORT/v1"
}

case "${1:-start}" in
    start) start ;;
    stop) stop ;;
    env) env_lines ;;
    *) echo "usage: $0 start|stop|env" >&2; exit 2 ;;
esac
