#!/usr/bin/env bash
# Brings up a local romana-rs datacenter on this machine, entirely in network namespaces (the
# machine's own network is not touched): etcd and every service in a management namespace,
# a spine, two leaves, 2 racks x 2 hosts each running romana-agent, one tenant with two
# segments and endpoints made by romana-cni. It prints what it started, a ping that works and
# one that isolation blocks, and how to use and stop it. Needs root.
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/setup.sh

STATE="$PWD/.local/lab"
if [ "$(id -u)" -ne 0 ]; then
    echo "error: network namespaces need root; run: sudo $0" >&2
    exit 1
fi
if [ -f "$STATE/pid" ] && kill -0 "$(cat "$STATE/pid")" 2>/dev/null; then
    echo "==> a lab is already running (pid $(cat "$STATE/pid")); stopping it first"
    deploy/local/down.sh
fi

echo "==> building (cargo build --bins)"
cargo build --bins

rm -rf "$STATE"
mkdir -p "$STATE"
echo "==> starting romana-lab (log: $STATE/lab.log)"
setsid nohup target/debug/romana-lab "$STATE" >"$STATE/lab.log" 2>&1 < /dev/null &
echo $! > "$STATE/pid"

for _ in $(seq 1 600); do
    if [ -f "$STATE/ready" ]; then
        cat "$STATE/summary"
        exit 0
    fi
    if ! kill -0 "$(cat "$STATE/pid")" 2>/dev/null; then
        echo "error: romana-lab exited while starting; its log:" >&2
        tail -40 "$STATE/lab.log" >&2
        exit 1
    fi
    sleep 0.2
done
echo "error: romana-lab not ready after 120 s; see $STATE/lab.log" >&2
deploy/local/down.sh || true
exit 1
