#!/usr/bin/env bash
# Stop everything the functional tests and tools/ started -- the services
# the tools/ scripts start, and what the tests start on their own (the
# second RabbitMQ node of the outage tests, extra Gnocchi APIs, libvirtd
# and virtlogd) -- and, with --purge, remove what they created:
#
#     bash tools/cleanup.sh            # stop
#     bash tools/cleanup.sh --purge    # stop, then delete their files
#
# --purge removes /var/tmp/telemetry-* (databases, virtualenvs, logs, test
# CA; about 1 GB), /var/tmp/telemetry-*-rabbit and the library's own state
# under /var/lib/telemetry_lib (spools, alarm state). The Debian packages
# the scripts installed are listed, not removed: other software may use
# them (remove them with apt-get if nothing else does).
set -u
HERE=$(cd "$(dirname "$0")" && pwd)

for s in heat keystone gnocchi ceph prometheus libvirt rabbitmq sqldb \
        remote_write; do
    bash "$HERE/$s.sh" stop >/dev/null 2>&1 || true
done
# The outage tests' own node (tests/functional/rabbit.py).
TELEMETRY_RABBIT_NODE=telemetry-outage@localhost TELEMETRY_RABBIT_PORT=5692 \
    TELEMETRY_RABBIT_TLS_PORT=5691 TELEMETRY_RABBIT_DIST_PORT=25692 \
    bash "$HERE/rabbitmq.sh" stop >/dev/null 2>&1 || true
# Gnocchi APIs a test started on a port of its own, and libvirt's daemons.
pkill -f -- "telemetry-gnocchi-venv/bin/(gnocchi-api|gnocchi-metricd|uwsgi)" \
    2>/dev/null || true
pkill -x libvirtd 2>/dev/null || true
pkill -x virtlogd 2>/dev/null || true
echo "cleanup.sh: stopped the test services"

if [ "${1:-}" = "--purge" ]; then
    rm -rf /var/tmp/telemetry-* /var/lib/telemetry_lib
    # The alarm-database tests' databases (the servers are the machine's).
    su postgres -c "psql -h 127.0.0.1 -qc 'DROP DATABASE IF EXISTS \
telemetry_alarms'" >/dev/null 2>&1 || true
    mariadb -h 127.0.0.1 -u root -e 'DROP DATABASE IF EXISTS telemetry_alarms' \
        >/dev/null 2>&1 || true
    echo "cleanup.sh: removed /var/tmp/telemetry-* and /var/lib/telemetry_lib"
    echo "cleanup.sh: Debian packages the tools may have installed (not" \
        "removed): rabbitmq-server prometheus prometheus-pushgateway" \
        "prometheus-alertmanager ceph-mon ceph-osd ceph-mgr ceph-common" \
        "python3-rados curl openssl python3-venv victoria-metrics and" \
        "libvirt's (see" \
        "tools/libvirt.sh)"
fi
