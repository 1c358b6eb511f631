#!/usr/bin/env bash
# Brings up a local romana-rs cluster on this machine: a single-node etcd and every
# control-plane service on loopback, then sets the example address layout. State, logs and
# PIDs live in .local/cluster/; `deploy/local/down.sh` stops everything and removes them.
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/setup.sh

STATE="$PWD/.local/cluster"
BIN="$PWD/target/debug"
ETCD_URL="http://127.0.0.1:${ROMANA_ETCD_PORT:-2379}"
ROOT_URL="http://127.0.0.1:9600"

if [ -f "$STATE/pids" ]; then
    echo "==> a local cluster is already recorded in $STATE; stopping it first"
    deploy/local/down.sh
fi

echo "==> building (cargo build --bins)"
cargo build --bins

mkdir -p "$STATE/logs"
: > "$STATE/pids"

start() { # name, command...
    local name="$1"; shift
    nohup "$@" >"$STATE/logs/$name.log" 2>&1 &
    echo "$! $name" >> "$STATE/pids"
}

wait_for() { # what, command...
    local what="$1"; shift
    for _ in $(seq 1 100); do
        if "$@" >/dev/null 2>&1; then return 0; fi
        sleep 0.2
    done
    echo "error: $what did not come up; see $STATE/logs/" >&2
    deploy/local/down.sh >/dev/null 2>&1 || true
    exit 1
}

port="${ETCD_URL##*:}"
if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "error: 127.0.0.1:$port is already in use; stop that etcd or set ROMANA_ETCD_PORT" >&2
    exit 1
fi

echo "==> starting etcd on $ETCD_URL"
start etcd etcd --name romana-local --data-dir "$STATE/etcd" \
    --listen-client-urls "$ETCD_URL" --advertise-client-urls "$ETCD_URL" \
    --listen-peer-urls "http://127.0.0.1:$((port + 1))" \
    --initial-advertise-peer-urls "http://127.0.0.1:$((port + 1))" \
    --initial-cluster "romana-local=http://127.0.0.1:$((port + 1))"
wait_for etcd curl -fsS "$ETCD_URL/health"

export ROMANA_ETCD_ENDPOINTS="$ETCD_URL"
echo "==> starting services"
start root "$BIN/romana-root" --listen 127.0.0.1:9600
start topology "$BIN/romana-topology" --listen 127.0.0.1:9601
start tenant "$BIN/romana-tenant" --listen 127.0.0.1:9602
start ipam "$BIN/romana-ipam" --listen 127.0.0.1:9603

export ROMANA_ROOT="$ROOT_URL"
for kind in topology tenant ipam; do
    wait_for "$kind-service" sh -c "'$BIN/romanactl' status -o json | grep -q '\"kind\": *\"$kind\"'"
done

if ! "$BIN/romanactl" config show >/dev/null 2>&1; then
    "$BIN/romanactl" config init --address-space 10.0.0.0/8 \
        --host-bits 8 --rack-bits 2 --tenant-bits 4 --segment-bits 4 >/dev/null
fi

cat <<MSG

romana-rs local cluster is up.
  etcd              $ETCD_URL            (data in $STATE/etcd)
  romana-root       $ROOT_URL
  romana-topology   http://127.0.0.1:9601
  romana-tenant     http://127.0.0.1:9602
  romana-ipam       http://127.0.0.1:9603
  logs              $STATE/logs/

Use it (romanactl needs only the root address):
  export ROMANA_ROOT=$ROOT_URL PATH=$BIN:\$PATH
  romanactl status
  romanactl config show
  romanactl host add h1 --ip 192.168.0.11 --rack 0
  romanactl tenant add acme
  romanactl segment add acme web
  romanactl ipam allocate --host h1 --tenant acme --segment web --endpoint pod-1
  romanactl ipam list
  romanactl topology fabric

Stop it and remove its state:
  deploy/local/down.sh
MSG
"$BIN/romanactl" status
