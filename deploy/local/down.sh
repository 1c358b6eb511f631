#!/usr/bin/env bash
# Stops the lab started by deploy/local/up.sh: romana-lab tears down every namespace, agent,
# service and etcd it made when it gets SIGTERM.
set -euo pipefail
cd "$(dirname "$0")/../.."
STATE="$PWD/.local/lab"
if [ ! -f "$STATE/pid" ]; then
    echo "no lab recorded in $STATE"
    exit 0
fi
pid="$(cat "$STATE/pid")"
if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid"
    for _ in $(seq 1 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    if kill -0 "$pid" 2>/dev/null; then
        echo "romana-lab (pid $pid) did not stop in 30 s; killing it" >&2
        kill -KILL "$pid" 2>/dev/null || true
    fi
fi
# Anything the lab could not remove (it was killed): its namespaces are named rt<pid>-*.
for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep "^rt${pid}-" || true); do
    for p in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$p" 2>/dev/null || true; done
    ip netns del "$ns" 2>/dev/null || true
done
rm -rf "$STATE"
echo "lab stopped and removed"
