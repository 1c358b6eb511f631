#!/usr/bin/env bash
# Installs what building and running romana-rs needs on a fresh Debian machine, and nothing
# that is already there. Sourced by the README's two commands; safe to run again.
set -euo pipefail

need_pkgs=()
command -v etcd >/dev/null 2>&1 || need_pkgs+=(etcd-server)
command -v etcdctl >/dev/null 2>&1 || need_pkgs+=(etcd-client)
command -v nft >/dev/null 2>&1 || need_pkgs+=(nftables)
command -v ip >/dev/null 2>&1 || need_pkgs+=(iproute2)
command -v protoc >/dev/null 2>&1 || need_pkgs+=(protobuf-compiler)
command -v cc >/dev/null 2>&1 || need_pkgs+=(build-essential)
command -v curl >/dev/null 2>&1 || need_pkgs+=(curl)
command -v tcpdump >/dev/null 2>&1 || need_pkgs+=(tcpdump)
command -v ping >/dev/null 2>&1 || need_pkgs+=(iputils-ping)
# deploy/systemd's units are checked with `systemd-analyze verify`.
command -v systemd-analyze >/dev/null 2>&1 || need_pkgs+=(systemd)
# The CNI plugin's tests drive it through libcni (a small Go program built offline against
# Debian's packaged libcni) chained with the reference plugins.
command -v go >/dev/null 2>&1 || need_pkgs+=(golang-go)
[ -d /usr/share/gocode/src/github.com/containernetworking/cni/libcni ] \
    || need_pkgs+=(golang-github-appc-cni-dev)
[ -x /usr/lib/cni/tuning ] || need_pkgs+=(containernetworking-plugins)
# `romana-bench datapath` measures TCP throughput between namespaces with iperf3.
command -v iperf3 >/dev/null 2>&1 || need_pkgs+=(iperf3)
if [ "${#need_pkgs[@]}" -gt 0 ]; then
    echo "==> installing Debian packages: ${need_pkgs[*]}"
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_pkgs[@]}" >/dev/null
fi

if ! command -v cargo >/dev/null 2>&1; then
    [ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"
fi
if ! command -v cargo >/dev/null 2>&1; then
    echo "error: cargo not found; install Rust (https://rustup.rs) and run this again" >&2
    exit 1
fi
