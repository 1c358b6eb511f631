#!/usr/bin/env bash
# End to end on docker compose: up.sh (images, certificates, cluster, layout, endpoints),
# matrix.sh (every cell as the policy says), then root failover as an operator sees it:
# with one root replica stopped, `romanactl --root ROOT1,ROOT2 host status` still answers;
# then down.sh. Everything is removed on exit, also on failure or interrupt. Each step is
# bounded in time. Needs root and a docker engine with compose; without them it prints
# SKIPPED and passes, except under CI=true (or CI=1), where it fails.
#   deploy/compose/test.sh
set -euo pipefail
. "$(dirname "$0")/lib.sh"

missing=""
if ! command -v docker >/dev/null 2>&1; then
    missing="docker (apt-get install docker.io, then start the engine)"
elif ! docker info >/dev/null 2>&1; then
    missing="a running docker engine (docker info fails; start dockerd, run as root)"
elif ! "${COMPOSE[@]}" version >/dev/null 2>&1; then
    missing="docker compose or docker-compose (apt-get install docker-compose)"
elif [ "$(id -u)" -ne 0 ]; then
    missing="root (debootstrap and network namespaces)"
fi
if [ -n "$missing" ]; then
    if [ "${CI:-}" = true ] || [ "${CI:-}" = 1 ]; then
        echo "error: the compose cluster test needs $missing" >&2
        exit 1
    fi
    echo "SKIPPED: the compose cluster test needs $missing"
    exit 0
fi

cleanup() {
    local rc=$?
    echo "==> compose test: removing the cluster"
    "$COMPOSE_DIR/down.sh" || true
    exit "$rc"
}
child=""
trap cleanup EXIT
# An interrupt stops the running step at once (timeout passes the signal on), then cleanup.
trap '[ -z "$child" ] || kill -TERM "$child" 2>/dev/null; wait; exit 130' INT TERM

# step SECONDS NAME COMMAND...: runs COMMAND, killed (with its children) after SECONDS.
step() {
    local limit="$1" name="$2" t0 rc=0
    shift 2
    echo "==> compose test: $name"
    t0=$(date +%s)
    # In the background so that a signal to this script is handled while the step runs.
    timeout -k 10 "$limit" "$@" &
    child=$!
    wait "$child" || rc=$?
    child=""
    if [ "$rc" -ne 0 ]; then
        [ "$rc" -eq 124 ] && echo "error: $name did not finish within $limit s" >&2
        echo "error: compose test step failed: $name (exit $rc)" >&2
        return "$rc"
    fi
    echo "    ($name: $(( $(date +%s) - t0 )) s)"
}

# A cold build (release binaries, debootstrap) takes most of this.
step 1800 "up.sh" "$COMPOSE_DIR/up.sh"
step 180 "matrix.sh" "$COMPOSE_DIR/matrix.sh"

root_failover() {
    docker stop -t 10 romana-root1 >/dev/null
    echo "    romana-root1 stopped; romanactl --root $ROOT_LIST host status:"
    local out
    out=$(ROMANA_ROOT="$ROOT_LIST" "$COMPOSE_DIR/romanactl" --timeout 20 host status) || {
        echo "error: romanactl --root $ROOT_LIST host status failed with root1 stopped" >&2
        return 1
    }
    echo "$out" | sed 's/^/    /'
    local h
    for h in "${HOST_NAMES[@]}"; do
        awk -v h="$h" '$1 == h && $4 == "up" { found = 1 } END { exit !found }' <<<"$out" || {
            echo "error: host $h is not listed with its agent up" >&2
            return 1
        }
    done
}
# An etcd follower cut off the network (as a partition: its address vanishes, nothing
# answers) under a stream of romanactl calls: at most the call in flight at the cut fails;
# after the heal the member rejoins (pre-vote: without disturbing the leader) and every call
# succeeds. A follower, so that the figure does not depend on which member won the first
# election; losing the leader (an election with no leader, where reads fail fast) is
# integration/tests/store_failover.rs's.
etcd_follower() {
    docker exec romana-etcd1 etcdctl \
        --endpoints https://etcd1:2379,https://etcd2:2379,https://etcd3:2379 \
        --cacert /etc/romana/pki/ca.pem --cert /etc/romana/pki/client.pem \
        --key /etc/romana/pki/client-key.pem --command-timeout 3s -w json endpoint status |
        python3 -c '
import json, sys
for e in json.load(sys.stdin):
    s = e["Status"]
    if s["header"]["member_id"] != s["leader"]:
        print(e["Endpoint"].split("//")[1].split(":")[0])
        break
'
}
etcd_partition() {
    local net="${PROJECT}_mgmt" ip failed=0 i member
    member=$(etcd_follower)
    [ -n "$member" ] || { echo "error: no etcd follower found" >&2; return 1; }
    ip=$(docker inspect -f "{{(index .NetworkSettings.Networks \"$net\").IPAddress}}" "romana-$member")
    calls() {
        local n=0 j out
        for j in $(seq 1 "$1"); do
            # Failures go to stderr as it is (reopening /dev/stderr would truncate a CI log).
            out=$("$COMPOSE_DIR/romanactl" --timeout 20 ipam list 2>&1 >/dev/null) \
                || { n=$((n + 1)); printf '      failed: %s\n' "$out" >&2; }
        done
        echo "$n"
    }
    docker network disconnect "$net" "romana-$member"
    echo "    $member ($ip, a follower) disconnected from $net"
    failed=$(calls 20)
    echo "    20 calls during the partition: $failed failed"
    docker network connect --ip "$ip" "$net" "romana-$member"
    for i in $(seq 1 60); do
        [ "$(docker inspect -f '{{.State.Health.Status}}' "romana-$member")" = healthy ] && break
        sleep 1
    done
    echo "    $member reconnected: $(docker inspect -f '{{.State.Health.Status}}' "romana-$member") after ${i}s"
    local after
    after=$(calls 10)
    echo "    10 calls after the heal: $after failed"
    [ "$failed" -le 1 ] || { echo "error: $failed calls failed during an etcd partition" >&2; return 1; }
    [ "$after" -eq 0 ] || { echo "error: $after calls failed after the heal" >&2; return 1; }
}
step 240 "an etcd member partitioned and healed under romanactl calls" \
    bash -c ". '$COMPOSE_DIR/lib.sh'; $(declare -f etcd_follower etcd_partition); etcd_partition"
# Last: it needs romanactl's --root list failover (from main's proto/src/discover.rs).
step 120 "a root replica stopped: host status through the other one" \
    bash -c ". '$COMPOSE_DIR/lib.sh'; $(declare -f root_failover); root_failover"
step 120 "down.sh" "$COMPOSE_DIR/down.sh"
trap - EXIT
left=$(docker ps -aq --filter "label=com.docker.compose.project=$PROJECT")
[ -z "$left" ] || { echo "error: containers left after down.sh: $left" >&2; exit 1; }
echo "==> compose test passed"
