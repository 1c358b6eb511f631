#!/usr/bin/env bash
# Builds the images of the compose cluster locally (no registry is used; nothing is pulled):
#   1. the workspace's release binaries (cargo build --release --bins); with
#      ROMANA_COMPOSE_PROFILE=dev the debug ones (cargo build --bins), which scripts/test.sh
#      has built anyway: a cold release build takes ~15 minutes on 2 cores;
#   2. romana-base:bookworm, a Debian bookworm minbase made by debootstrap and imported with
#      `docker import`; kept between runs (skipped when it exists with the same package list)
#      unless --rebuild is given;
#   3. romana:dev, FROM the base, with the binaries and the container scripts.
# Prints how long each step took. Needs root (debootstrap) and a running docker engine.
#   deploy/compose/build-images.sh [--rebuild]
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/setup.sh

BASE_IMAGE=romana-base:bookworm
IMAGE=romana:dev
# What the containers need: ip, nft, ping, socat (the TCP matrix), pgrep/sysctl, etcd and
# etcdctl. Changing this list rebuilds the base.
BASE_PACKAGES=iproute2,nftables,iputils-ping,socat,procps,etcd-server,etcd-client
BINARIES=(romana-root romana-topology romana-tenant romana-ipam romana-policy romana-agent
    romana-cni romanactl)

rebuild=0
for arg in "$@"; do
    case "$arg" in
        --rebuild) rebuild=1 ;;
        -h | --help) sed -n '2,10p' "$0"; exit 0 ;;
        *) echo "error: unknown argument $arg (expected --rebuild)" >&2; exit 2 ;;
    esac
done
if ! docker info >/dev/null 2>&1; then
    echo "error: docker is not usable (is the engine running, are you root?)" >&2
    exit 1
fi

step_start=0
begin() { echo "==> $*"; step_start=$(date +%s.%N); }
took() { awk -v a="$(date +%s.%N)" -v b="$step_start" 'BEGIN { printf "    took %.1f s\n", a - b }'; }
total_start=$(date +%s)

case "${ROMANA_COMPOSE_PROFILE:-release}" in
    release) cargo_flags=(--release) bindir=target/release ;;
    dev) cargo_flags=() bindir=target/debug ;;
    *) echo "error: ROMANA_COMPOSE_PROFILE is release or dev, not $ROMANA_COMPOSE_PROFILE" >&2; exit 2 ;;
esac
begin "cargo build${cargo_flags[*]:+ ${cargo_flags[*]}} --bins"
cargo build "${cargo_flags[@]}" --bins
for b in "${BINARIES[@]}"; do
    [ -x "$bindir/$b" ] || { echo "error: $bindir/$b was not built" >&2; exit 1; }
done
took

base_label() { docker image inspect -f '{{index .Config.Labels "romana.base.packages"}}' \
    "$BASE_IMAGE" 2>/dev/null || true; }
if [ "$rebuild" = 0 ] && [ "$(base_label)" = "$BASE_PACKAGES" ]; then
    echo "==> base image $BASE_IMAGE exists (--rebuild makes it again)"
else
    begin "debootstrap bookworm minbase ($BASE_PACKAGES) and docker import as $BASE_IMAGE"
    command -v debootstrap >/dev/null 2>&1 || {
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
    }
    # The machine's own Debian mirror, as apt is configured.
    mirror=$(grep -hoE 'https?://[^ ]+/debian/?( |$)' /etc/apt/sources.list \
        /etc/apt/sources.list.d/* 2>/dev/null | head -1 | tr -d ' ' || true)
    mirror=${mirror:-http://deb.debian.org/debian}
    rootfs=$(mktemp -d /var/tmp/romana-base.XXXXXX)
    trap 'rm -rf "$rootfs"' EXIT
    if ! debootstrap --variant=minbase --include="$BASE_PACKAGES" bookworm "$rootfs/root" \
        "$mirror" >"$rootfs/debootstrap.log" 2>&1; then
        echo "error: debootstrap from $mirror failed; the end of its log:" >&2
        tail -20 "$rootfs/debootstrap.log" >&2
        exit 1
    fi
    # Smaller image: no package caches, docs or locales.
    rm -rf "$rootfs"/root/var/cache/apt/archives/*.deb "$rootfs"/root/var/lib/apt/lists/* \
        "$rootfs"/root/usr/share/doc/* "$rootfs"/root/usr/share/man/* \
        "$rootfs"/root/usr/share/locale/*
    tar -C "$rootfs/root" -c . | docker import \
        --change "LABEL romana.base.packages=$BASE_PACKAGES" \
        --change 'CMD ["/bin/bash"]' - "$BASE_IMAGE" >/dev/null
    rm -rf "$rootfs"
    trap - EXIT
    took
fi

begin "docker build $IMAGE (FROM $BASE_IMAGE, binaries of $bindir and container scripts)"
stage=$(mktemp -d /var/tmp/romana-image.XXXXXX)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/bin"
for b in "${BINARIES[@]}"; do
    cp "$bindir/$b" "$stage/bin/"
done
cp -r deploy/compose/container "$stage/container"
cp deploy/compose/Dockerfile "$stage/Dockerfile"
previous=$(docker image inspect -f '{{.Id}}' "$IMAGE" 2>/dev/null || true)
docker build -q --build-arg "BASE=$BASE_IMAGE" -t "$IMAGE" "$stage" 2>&1 >/dev/null \
    | { grep -v -e "^$" -e "legacy builder is deprecated" -e "buildx component" -e "docs.docker.com/go/buildx" || true; } >&2
# The image this one replaced would be left untagged: remove it (unless a container uses it).
if [ -n "$previous" ] && [ "$previous" != "$(docker image inspect -f '{{.Id}}' "$IMAGE")" ]; then
    docker rmi "$previous" >/dev/null 2>&1 || true
fi
took
echo "==> images ready in $(( $(date +%s) - total_start )) s: $IMAGE ($(docker image inspect \
    -f '{{.Size}}' "$IMAGE" | awk '{ printf "%d MB", $1 / 1000000 }'))"
