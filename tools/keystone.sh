#!/usr/bin/env bash
# Keystone (PyPI) on 127.0.0.1 for the functional tests: SQLite database,
# fernet tokens, the admin user of `keystone-manage bootstrap`, and a
# "telemetry" user with the admin role on the "service" project -- the
# [keystone_authtoken]-style credentials of the seed deployment.
# Idempotent: installs into its own virtualenv when missing, bootstraps
# once, starts the API unless it answers.
#
#   tools/keystone.sh start|stop|env
#
# tools/gnocchi.sh uses it for a Gnocchi API in auth_mode = keystone.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
BASE=${TELEMETRY_KEYSTONE_DIR:-/var/tmp/telemetry-keystone}
VENV=${TELEMETRY_KEYSTONE_VENV:-/var/tmp/telemetry-keystone-venv}
PORT=${TELEMETRY_KEYSTONE_PORT:-15000}
ADMIN_PASSWORD=${TELEMETRY_KEYSTONE_ADMIN_PASSWORD:-admin-secret}
USER=telemetry
PASSWORD=telemetry-secret
URL="http://127.0.0.1:$PORT/v3"

log() { echo "keystone.sh: $*" >&2; }
# shellcheck source=tools/lib.sh
. "$HERE/lib.sh"

install() {
    if [ ! -x "$VENV/bin/keystone-manage" ] || [ ! -x "$VENV/bin/gunicorn" ]; then
        log "installing Keystone into $VENV"
        ensure_packages python3-venv
        python3 -m venv "$VENV"
        "$VENV/bin/pip" install -q 'keystone>=26' gunicorn
    fi
}

configure() {
    mkdir -p "$BASE"
    cat > "$BASE/keystone.conf" <<EOF
[DEFAULT]
debug = false
log_file = $BASE/keystone.log
[database]
connection = sqlite:///$BASE/keystone.db
[token]
provider = fernet
[fernet_tokens]
key_repository = $BASE/fernet-keys
[fernet_receipts]
key_repository = $BASE/fernet-receipts
[credential]
key_repository = $BASE/credential-keys
EOF
}

manage() {
    "$VENV/bin/keystone-manage" --config-file "$BASE/keystone.conf" "$@" \
        >> "$BASE/manage.log" 2>&1
}

bootstrap() {
    [ -f "$BASE/bootstrapped" ] && return 0
    log "creating Keystone's database and admin"
    manage db_sync
    manage fernet_setup --keystone-user root --keystone-group root
    manage fernet_receipts_setup --keystone-user root --keystone-group root \
        2>/dev/null || true
    manage credential_setup --keystone-user root --keystone-group root
    manage bootstrap --bootstrap-password "$ADMIN_PASSWORD" \
        --bootstrap-admin-url "$URL" --bootstrap-internal-url "$URL" \
        --bootstrap-public-url "$URL" --bootstrap-region-id RegionOne
    touch "$BASE/bootstrapped"
}

api_up() {
    curl -fsS -o /dev/null "$URL" 2>/dev/null
}

running() {
    [ -f "$BASE/api.pid" ] && kill -0 "$(cat "$BASE/api.pid")" 2>/dev/null
}

# admin_token: a project-scoped token of the bootstrap admin.
admin_token() {
    curl -fsS -i -H 'Content-Type: application/json' -d "{
      \"auth\": {\"identity\": {\"methods\": [\"password\"], \"password\": {
        \"user\": {\"name\": \"admin\", \"domain\": {\"id\": \"default\"},
                 \"password\": \"$ADMIN_PASSWORD\"}}},
        \"scope\": {\"project\": {\"name\": \"admin\",
                                  \"domain\": {\"id\": \"default\"}}}}}" \
        "$URL/auth/tokens" | tr -d '\r' | sed -n 's/^[Xx]-[Ss]ubject-[Tt]oken: //p'
}

# api METHOD PATH [BODY]: an admin call; prints the JSON answer.
api() {
    curl -fsS -X "$1" -H "X-Auth-Token: $TOKEN" \
        -H 'Content-Type: application/json' ${3:+-d "$3"} "$URL$2"
}

# id_of COLLECTION NAME: the id of a named project, user, role or service.
id_of() {
    api GET "/$1?name=$2" | python3 -c \
        "import json,sys; r=json.load(sys.stdin)['$1']; print(r[0]['id'] if r else '')"
}

# The service user the tests and Gnocchi's keystonemiddleware log in as,
# and a "metric" service in the catalog (its endpoint set by gnocchi.sh).
accounts() {
    [ -f "$BASE/accounts" ] && return 0
    TOKEN=$(admin_token)
    local project user role
    project=$(id_of projects service)
    [ -n "$project" ] || project=$(api POST /projects \
        '{"project": {"name": "service", "domain_id": "default"}}' |
        python3 -c "import json,sys; print(json.load(sys.stdin)['project']['id'])")
    user=$(id_of users "$USER")
    [ -n "$user" ] || user=$(api POST /users "{\"user\": {\"name\": \"$USER\",
        \"domain_id\": \"default\", \"password\": \"$PASSWORD\"}}" |
        python3 -c "import json,sys; print(json.load(sys.stdin)['user']['id'])")
    role=$(id_of roles admin)
    api PUT "/projects/$project/users/$user/roles/$role" > /dev/null
    touch "$BASE/accounts"
}

# register_metric_endpoint GNOCCHI_URL: the catalog's "metric" service.
register_metric_endpoint() {
    TOKEN=$(admin_token)
    local service
    service=$(id_of services gnocchi)
    [ -n "$service" ] || service=$(api POST /services \
        '{"service": {"name": "gnocchi", "type": "metric"}}' |
        python3 -c "import json,sys; print(json.load(sys.stdin)['service']['id'])")
    if ! api GET "/endpoints?service_id=$service" | grep -q "$1"; then
        for iface in public internal admin; do
            api POST /endpoints "{\"endpoint\": {\"service_id\": \"$service\",
                \"interface\": \"$iface\", \"url\": \"$1\",
                \"region_id\": \"RegionOne\"}}" > /dev/null
        done
    fi
}

start() {
    ensure_packages curl
    install
    configure
    bootstrap
    if ! api_up; then
        # Write-ahead logging: in SQLite's default journal mode a steady
        # stream of readers (token checks from every test at once) starves
        # a writer until its busy timeout, and Keystone answers 500
        # "database is locked" -- seen as Heat failing to resume a stack
        # (enabling its domain user). The mode is kept in the file.
        python3 -c "import sqlite3, sys; sqlite3.connect(sys.argv[1]
            ).execute('PRAGMA journal_mode=WAL')" "$BASE/keystone.db"
        log "starting Keystone on 127.0.0.1:$PORT"
        # Keystone parses the process' argv as its own options, so gunicorn
        # takes everything from its config file and has no arguments.
        cat > "$BASE/gunicorn.conf.py" <<EOF
bind = '127.0.0.1:$PORT'
workers = 2
pidfile = '$BASE/api.pid'
wsgi_app = 'keystone.wsgi.api:application'
raw_env = ['OS_KEYSTONE_CONFIG_FILES=$BASE/keystone.conf']
EOF
        # The whole subshell's output goes to the log (and it becomes
        # gunicorn): a shell left holding the caller's stdout kept
        # "keystone.sh start | tail" and heat.sh's $(...) waiting.
        (cd "$BASE" && OS_KEYSTONE_CONFIG_FILES="$BASE/keystone.conf" \
            exec nohup "$VENV/bin/gunicorn") >> "$BASE/api.log" 2>&1 \
            < /dev/null &
        await 60 "$BASE/api.log" Keystone api_up
    fi
    accounts
    env_lines
}

stop() {
    if running; then
        kill "$(cat "$BASE/api.pid")" 2>/dev/null || true
    fi
}

env_lines() {
    echo "TELEMETRY_KEYSTONE_URL=$URL"
    echo "TELEMETRY_KEYSTONE_USER=$USER"
    echo "TELEMETRY_KEYSTONE_PASSWORD=$PASSWORD"
}

case "${1:-start}" in
    start) start ;;
    stop) stop ;;
    register-metric) register_metric_endpoint "$2" ;;
    env) env_lines ;;
    *) echo "usage: $0 start|stop|env|register-metric URL" >&2; exit 2 ;;
esac
