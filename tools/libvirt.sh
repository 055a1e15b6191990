#!/usr/bin/env bash
# libvirt + QEMU (Debian's packages) for the compute pollster tests, with
# a tiny guest that moves its counters: Debian's cloud kernel and a
# busybox initramfs that reads and writes its disk and sends packets.
# Idempotent: installs what is missing, builds the guest once, starts the
# daemons unless they answer. No systemd: the daemons run by hand, on
# unix sockets only.
#
#   tools/libvirt.sh start|stop|env
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
BASE=${TELEMETRY_LIBVIRT_DIR:-/var/tmp/telemetry-libvirt}
URI=qemu:///system

log() { echo "libvirt.sh: $*" >&2; }
# shellcheck source=tools/lib.sh
. "$HERE/lib.sh"

PACKAGES=(libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients
          qemu-system-x86 qemu-utils libvirt-dev pkg-config cpio xz-utils)

install() {
    local missing=() p
    for p in "${PACKAGES[@]}"; do
        dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        log "installing ${missing[*]} from Debian's packages"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends "${missing[@]}" \
            >/dev/null
    fi
    # libvirtd dies at start without them, even with user = "root".
    getent group libvirt-qemu >/dev/null || groupadd -r libvirt-qemu
    getent passwd libvirt-qemu >/dev/null || \
        useradd -r -g libvirt-qemu -d /var/lib/libvirt -s /usr/sbin/nologin \
            libvirt-qemu
    mkdir -p /var/log/libvirt/qemu /var/run/libvirt
}

configure() {
    mkdir -p "$BASE"
    cat > "$BASE/libvirtd.conf" <<CONF
listen_tls = 0
listen_tcp = 0
unix_sock_group = "root"
unix_sock_ro_perms = "0777"
unix_sock_rw_perms = "0770"
# No D-Bus (polkit) here: a read-only client is let in without it.
auth_unix_ro = "none"
auth_unix_rw = "none"
CONF
    mkdir -p /etc/libvirt
    if ! grep -q '^user = "root"' /etc/libvirt/qemu.conf 2>/dev/null; then
        printf 'user = "root"\ngroup = "root"\n' >> /etc/libvirt/qemu.conf
    fi
}

# The guest: kernel + initramfs, built once into $BASE/guest.
build_guest() {
    local g=$BASE/guest
    [ -f "$g/vmlinuz" ] && [ -f "$g/initrd.gz" ] && return 0
    log "building the test guest (Debian cloud kernel + busybox)"
    local work
    work=$(mktemp -d)
    chmod 777 "$work"      # apt-get download runs as _apt
    (
        cd "$work"
        apt-get update -qq
        local image
        image=$(apt-cache depends linux-image-cloud-amd64 \
            | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
        [ -n "$image" ] || { log "no cloud kernel package found"; exit 1; }
        apt-get download -qq "$image" busybox-static >/dev/null
        mkdir kernel busybox
        dpkg-deb -x linux-image-*.deb kernel
        dpkg-deb -x busybox-static_*.deb busybox
        local root=$work/root version mod
        version=$(ls kernel/lib/modules | head -n 1)
        mkdir -p "$root"/{bin,dev,proc,sys,mod,tmp}
        cp busybox/bin/busybox "$root/bin/busybox"
        # Loaded in this order (measured): each needs the ones before.
        for mod in virtio_ring virtio virtio_pci_modern_dev \
                   virtio_pci_legacy_dev virtio_pci virtio_blk failover \
                   net_failover virtio_net virtio_balloon; do
            local f
            f=$(find kernel/lib/modules/"$version" -name "$mod.ko*" \
                | head -n 1)
            [ -n "$f" ] || { log "module $mod not found"; exit 1; }
            case $f in
                *.xz) xz -dc "$f" > "$root/mod/$mod.ko" ;;
                *.zst) zstd -dcq "$f" > "$root/mod/$mod.ko" ;;
                *) cp "$f" "$root/mod/$mod.ko" ;;
            esac
            echo "$mod" >> "$root/mod/order"
        done
        cat > "$root/init" <<'INIT'
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
for m in $(cat /mod/order); do insmod /mod/$m.ko; done
ip link set eth0 up 2>/dev/null
ip addr add 192.0.2.2/24 dev eth0 2>/dev/null
echo "telemetry guest up"
i=0
while true; do
    # Disk reads and writes, and packets out, every second.
    dd if=/dev/vda of=/dev/null bs=64k count=4 skip=$((i % 64)) 2>/dev/null
    echo 3 > /proc/sys/vm/drop_caches
    dd if=/dev/zero of=/dev/vda bs=4k count=2 seek=$((1024 + i % 256)) \
        conv=fsync 2>/dev/null
    ping -c 1 -W 1 192.0.2.1 >/dev/null 2>&1
    i=$((i + 1))
    sleep 1
done
INIT
        chmod +x "$root/init" "$root/bin/busybox"
        mkdir -p "$g"
        cp kernel/boot/vmlinuz-* "$g/vmlinuz.tmp"
        (cd "$root" && find . | cpio -o -H newc --quiet | gzip -1) \
            > "$g/initrd.gz.tmp"
        mv "$g/vmlinuz.tmp" "$g/vmlinuz"
        mv "$g/initrd.gz.tmp" "$g/initrd.gz"
    )
    rm -rf "$work"
}

api_up() {
    virsh -c "$URI" -r version >/dev/null 2>&1
}

start() {
    install
    configure
    build_guest
    if ! pgrep -x virtlogd >/dev/null; then
        virtlogd -d
    fi
    if ! api_up; then
        log "starting libvirtd"
        pkill -x libvirtd 2>/dev/null || true
        rm -f "$BASE/libvirtd.pid"
        libvirtd -d -f "$BASE/libvirtd.conf" -p "$BASE/libvirtd.pid" \
            >> "$BASE/libvirtd.log" 2>&1
        await 60 "$BASE/libvirtd.log" libvirtd api_up
    fi
    env_lines
}

stop() {
    if [ -f "$BASE/libvirtd.pid" ]; then
        kill "$(cat "$BASE/libvirtd.pid")" 2>/dev/null || true
    fi
}

env_lines() {
    echo "TELEMETRY_LIBVIRT_URI=$URI"
    echo "TELEMETRY_LIBVIRT_GUEST=$BASE/guest"
}

case "${1:-start}" in
    start) start ;;
    stop) stop ;;
    env) env_lines ;;
    *) echo "usage: $0 start|stop|env" >&2; exit 2 ;;
esac
