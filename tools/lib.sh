# Shared by the tools/ scripts (sourced, not run).

# ensure_packages CMD_OR_PKG...: install Debian packages that are missing.
# An argument "pkg" is checked with dpkg; "cmd:pkg" by the command's
# presence.
ensure_packages() {
    local missing=() arg cmd pkg
    for arg in "$@"; do
        if [[ $arg == *:* ]]; then
            cmd=${arg%%:*}
            pkg=${arg#*:}
            command -v "$cmd" >/dev/null 2>&1 || missing+=("$pkg")
        else
            dpkg -s "$arg" >/dev/null 2>&1 || missing+=("$arg")
        fi
    done
    if [ ${#missing[@]} -gt 0 ]; then
        echo "$(basename "$0"): installing ${missing[*]} from Debian's packages" >&2
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
}

# await SECONDS LOGFILE NAME CMD...: run CMD every 0.2 s until it succeeds;
# after SECONDS, show the end of LOGFILE and fail.
await() {
    local seconds=$1 logfile=$2 name=$3 i
    shift 3
    for i in $(seq 1 $((seconds * 5))); do
        "$@" && return 0
        sleep 0.2
    done
    echo "$(basename "$0"): $name did not answer in ${seconds}s:" >&2
    tail -n 30 "$logfile" >&2
    exit 1
}

# ensure_postgres_db NAME: PostgreSQL up on 127.0.0.1:5432 (Debian's
# cluster, started if down) and a database NAME in it.
ensure_postgres_db() {
    local db=$1 version
    if ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
        ensure_packages pg_ctlcluster:postgresql
        echo "$(basename "$0"): starting PostgreSQL" >&2
        version=$(ls /etc/postgresql | sort -n | tail -n 1)
        pg_ctlcluster --skip-systemctl-redirect "$version" main start
        for _ in $(seq 1 50); do
            pg_isready -q -h 127.0.0.1 -p 5432 && break
            sleep 0.2
        done
    fi
    if ! su postgres -c "psql -h 127.0.0.1 -tAc \"SELECT 1 FROM pg_database WHERE datname='$db'\"" \
            2>/dev/null | grep -q 1; then
        su postgres -c "psql -h 127.0.0.1 -qc 'CREATE DATABASE $db'"
    fi
}
