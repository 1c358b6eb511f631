#!/usr/bin/env bash
# Stops the local cluster started by deploy/local/up.sh (by PID) and removes its state.
set -euo pipefail
cd "$(dirname "$0")/../.."
STATE="$PWD/.local/cluster"
if [ ! -f "$STATE/pids" ]; then
    echo "no local cluster recorded in $STATE"
    exit 0
fi
# Services first (they withdraw their registrations), etcd last.
tac "$STATE/pids" | while read -r pid name; do
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
        echo "stopped $name (pid $pid)"
    fi
done
rm -rf "$STATE"
echo "local cluster removed"
