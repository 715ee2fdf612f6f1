#!/usr/bin/env bash
# The newest RabbitMQ Debian's archive offers, in a root of its own, for
# `make test-rabbitmq-next` (the course must run on it as on bookworm's 3.10):
#
#   scripts/rabbitmq-next.sh ROOT     debootstrap ROOT with rabbitmq-server if it is not
#                                     there yet; print the RabbitMQ version it holds
#
# Tries Debian's unstable suite (sid) first; the archive is sometimes mid-transition
# and cannot be installed for a day, so then the newest stable suite (trixie). Needs
# root and debootstrap (installed here if missing, with apt-get). ~400 MB, ~1 minute.
# The launcher then runs the broker inside ROOT (QUEUE_EXP_RABBITMQ_ROOT=ROOT).
set -euo pipefail

root="${1:?usage: $0 ROOT}"
suites="${RABBITMQ_NEXT_SUITES:-sid trixie}"
mirror="${RABBITMQ_NEXT_MIRROR:-http://deb.debian.org/debian}"
server=/usr/lib/rabbitmq/bin/rabbitmq-server

version() {
    chroot "$root" dpkg-query -W -f='${Version}' rabbitmq-server
}

if [ -x "$root$server" ]; then
    echo "RabbitMQ $(version) in $root (cached)"
    exit 0
fi
if [ "$(id -u)" != 0 ]; then
    echo "error: making $root needs root (debootstrap, chroot)" >&2
    exit 1
fi
if ! command -v debootstrap >/dev/null 2>&1; then
    echo "installing debootstrap from Debian's packages"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap \
        >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq --no-install-recommends debootstrap >/dev/null; }
fi
mkdir -p "$(dirname "$root")"
for suite in $suites; do
    began=$(date +%s)
    echo "debootstrap $suite with rabbitmq-server into $root"
    if debootstrap --variant=minbase --include=rabbitmq-server "$suite" "$root" "$mirror" \
            >"$root.$suite.log" 2>&1; then
        echo "$suite: done in $(( $(date +%s) - began )) s, $(du -sh "$root" | cut -f1)"
        echo "RabbitMQ $(version) in $root"
        exit 0
    fi
    echo "$suite could not be installed today (the archive may be mid-transition):"
    grep -E '^(E|W):' "$root.$suite.log" | tail -3 || tail -3 "$root.$suite.log"
    rm -rf --one-file-system "$root"
done
echo "error: no Debian suite of [$suites] could be installed into $root" >&2
exit 1
