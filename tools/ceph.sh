#!/usr/bin/env bash
# A single-node Ceph cluster (one mon, one mgr, one bluestore OSD on a sparse
# file) on 127.0.0.1, for the Gnocchi functional tests. Idempotent: installs
# Debian's packages when missing, bootstraps once, starts what is not
# running.
#
#   tools/ceph.sh start|stop|env
#
# Everything binds 127.0.0.1 (public/cluster addr set per daemon: a global
# public_network moves the monitor off its monmap port). No cephx: it is a
# throw-away test cluster.
set -euo pipefail

BASE=${TELEMETRY_CEPH_DIR:-/var/tmp/telemetry-ceph}
MON_PORT=${TELEMETRY_CEPH_MON_PORT:-16789}
CONF=$BASE/ceph.conf
export CEPH_CONF=$CONF

log() { echo "ceph.sh: $*" >&2; }

# shellcheck source=tools/lib.sh
. "$(dirname "$0")/lib.sh"

install() {
    ensure_packages ceph-mon ceph-osd ceph-mgr ceph-common python3-rados
}

configure() {
    mkdir -p "$BASE/mon" "$BASE/mgr" "$BASE/osd" "$BASE/run" "$BASE/log"
    [ -f "$BASE/fsid" ] || cat /proc/sys/kernel/random/uuid > "$BASE/fsid"
    cat > "$CONF" <<EOF
[global]
fsid = $(cat "$BASE/fsid")
mon host = [v1:127.0.0.1:$MON_PORT]
ms bind msgr2 = false
auth cluster required = none
auth service required = none
auth client required = none
osd pool default size = 1
osd pool default min size = 1
mon allow pool size one = true
mon warn on pool no redundancy = false
osd crush chooseleaf type = 0
run dir = $BASE/run
log file = $BASE/log/\$name.log
ms bind ipv4 = true
ms bind ipv6 = false
[client]
admin socket =
[mon]
admin socket = $BASE/run/\$name.asok
mon data = $BASE/mon/\$name
public addr = 127.0.0.1
mon allow pool delete = true
[mgr]
admin socket = $BASE/run/\$name.asok
mgr data = $BASE/mgr/\$name
public addr = 127.0.0.1
mgr disabled modules = dashboard prometheus restful
[osd]
admin socket = $BASE/run/\$name.asok
osd data = $BASE/osd/\$name
osd objectstore = bluestore
bluestore block path = $BASE/osd/\$name.block
bluestore block create = true
bluestore block size = 8589934592
osd memory target = 939524096
public addr = 127.0.0.1
cluster addr = 127.0.0.1
# Placed in CRUSH by this script: the OSD's own update fails without cephx.
osd class update on start = false
osd crush update on start = false
EOF
}

running() {  # daemon id
    [ -f "$BASE/run/$1.pid" ] && kill -0 "$(cat "$BASE/run/$1.pid")" 2>/dev/null
}

bootstrap_mon() {
    [ -d "$BASE/mon/mon.a" ] && return 0
    log "creating the monitor"
    monmaptool --create --clobber --fsid "$(cat "$BASE/fsid")" \
        --addv a "[v1:127.0.0.1:$MON_PORT]" "$BASE/monmap" >/dev/null
    ceph-authtool --create-keyring "$BASE/mon.keyring" --gen-key -n mon. \
        --cap mon 'allow *' >/dev/null
    ceph-mon --mkfs -i a --monmap "$BASE/monmap" \
        --keyring "$BASE/mon.keyring" -c "$CONF"
}

bootstrap_osd() {
    [ -f "$BASE/osd/osd.0/ready" ] && return 0
    log "creating the OSD"
    [ -f "$BASE/osd/uuid" ] || cat /proc/sys/kernel/random/uuid > "$BASE/osd/uuid"
    local uuid
    uuid=$(cat "$BASE/osd/uuid")
    # A monitor that has just been created may still refuse commands
    # (the first run on a new machine): retry before giving up loudly.
    local i out
    for i in $(seq 1 30); do
        if out=$(timeout 10 ceph -c "$CONF" osd new "$uuid" 0 2>&1); then
            break
        fi
        if [ "$i" = 30 ]; then
            log "ceph osd new failed: $out"
            exit 1
        fi
        sleep 1
    done
    ceph -c "$CONF" osd crush add osd.0 1.0 root=default >/dev/null 2>&1
    rm -rf "$BASE/osd/osd.0" "$BASE/osd/osd.0.block"
    mkdir -p "$BASE/osd/osd.0"
    if ! ceph-osd -c "$CONF" -i 0 --mkfs --osd-uuid "$uuid" >/dev/null 2>&1; then
        log "OSD mkfs failed:"
        tail -n 5 "$BASE/log/osd.0.log" >&2
        exit 1
    fi
    touch "$BASE/osd/osd.0/ready"
}

start() {
    install
    configure
    bootstrap_mon
    running mon.a || ceph-mon -c "$CONF" -i a --pid-file "$BASE/run/mon.a.pid"
    for _ in $(seq 1 100); do
        timeout 5 ceph -c "$CONF" mon stat >/dev/null 2>&1 && break
        sleep 0.2
    done
    mkdir -p "$BASE/mgr/mgr.x"
    running mgr.x || ceph-mgr -c "$CONF" -i x --pid-file "$BASE/run/mgr.x.pid"
    bootstrap_osd
    running osd.0 || ceph-osd -c "$CONF" -i 0 --pid-file "$BASE/run/osd.0.pid"
    for _ in $(seq 1 150); do
        if timeout 5 ceph -c "$CONF" osd stat 2>/dev/null | grep -q '1 up'; then
            break
        fi
        sleep 0.2
    done
    if ! timeout 5 ceph -c "$CONF" osd pool ls 2>/dev/null | grep -qx gnocchi; then
        ceph -c "$CONF" osd pool create gnocchi 8 >/dev/null 2>&1
        ceph -c "$CONF" osd pool application enable gnocchi rgw >/dev/null 2>&1 || true
    fi
    log "$(timeout 10 ceph -c "$CONF" health 2>&1)"
    env_lines
}

stop() {
    for d in osd.0 mgr.x mon.a; do
        if running "$d"; then
            kill "$(cat "$BASE/run/$d.pid")" || true
        fi
    done
}

env_lines() {
    echo "TELEMETRY_CEPH_CONF=$CONF"
}

case "${1:-start}" in
    start) start ;;
    stop) stop ;;
    env) env_lines ;;
    *) echo "usage: $0 start|stop|env" >&2; exit 2 ;;
esac
