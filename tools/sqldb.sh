#!/usr/bin/env bash
# The SQL databases of the alarm-database tests: PostgreSQL (127.0.0.1:5432,
# trust auth, as this machine's) and MariaDB (127.0.0.1:3306, root without a
# password), each started when it does not answer (installed from Debian's
# packages when missing), with a database telemetry_alarms in each. "stop"
# stops only the servers this script started; "env" prints their URLs.
#
#   tools/sqldb.sh start|stop|env
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
BASE=${TELEMETRY_SQLDB_DIR:-/var/tmp/telemetry-sqldb}
DB=telemetry_alarms

log() { echo "sqldb.sh: $*" >&2; }
# shellcheck source=tools/lib.sh
. "$HERE/lib.sh"

mariadb_up() {
    mariadb -h 127.0.0.1 -P 3306 -u root -e 'SELECT 1' >/dev/null 2>&1
}

start() {
    mkdir -p "$BASE"
    if ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
        touch "$BASE/started-postgresql"
    fi
    ensure_postgres_db "$DB"
    if ! mariadb_up; then
        ensure_packages mariadbd:mariadb-server
        log "starting MariaDB"
        mkdir -p /run/mysqld
        chown mysql:mysql /run/mysqld 2>/dev/null || true
        start-stop-daemon --start --oknodo --background \
            --exec /usr/sbin/mariadbd
        touch "$BASE/started-mariadb"
        await 60 /dev/null MariaDB mariadb_up
    fi
    mariadb -h 127.0.0.1 -P 3306 -u root \
        -e "CREATE DATABASE IF NOT EXISTS $DB CHARACTER SET utf8mb4"
}

stop() {
    if [ -f "$BASE/started-mariadb" ]; then
        start-stop-daemon --stop --oknodo --retry 20 --exec /usr/sbin/mariadbd
        rm -f "$BASE/started-mariadb"
    fi
    if [ -f "$BASE/started-postgresql" ]; then
        pg_ctlcluster --skip-systemctl-redirect \
            "$(ls /etc/postgresql | sort -n | tail -n 1)" main stop
        rm -f "$BASE/started-postgresql"
    fi
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    env)
        echo "TELEMETRY_PG_URL=postgresql+psycopg2://postgres@127.0.0.1:5432/$DB"
        echo "TELEMETRY_MARIADB_URL=mysql+pymysql://root@127.0.0.1:3306/$DB?charset=utf8mb4"
        ;;
    *) echo "usage: $0 start|stop|env" >&2; exit 2 ;;
esac
