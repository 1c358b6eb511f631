# Shared by the compose cluster's scripts (sourced, not run): the compose command, names,
# the romanactl of the ctl container, and a bounded wait for container health.

COMPOSE_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_DIR="$(cd "$COMPOSE_DIR/../.." && pwd)"
CERTS_DIR="$COMPOSE_DIR/.certs"
PROJECT=romana
IMAGE=romana:dev

# Both root replicas, as romanactl's --root takes them (tried in turn).
ROOT_LIST="https://root1:9600,https://root2:9600"
# The roots that the scripts, the CNI plugin and the health checks use: both replicas.
export ROMANA_ROOT="${ROMANA_ROOT:-$ROOT_LIST}"

ETCD_ENDPOINTS="https://etcd1:2379,https://etcd2:2379,https://etcd3:2379"
ETCD=(etcd1 etcd2 etcd3)
SERVICES=(root1 root2 topology1 topology2 tenant1 tenant2 ipam1 ipam2 policy1 policy2)
ROUTERS=(spine leaf0 leaf1)
# name rack address
HOSTS=("r0h0 0 192.168.0.11" "r0h1 0 192.168.0.12" "r1h0 1 192.168.1.11" "r1h1 1 192.168.1.12")
HOST_NAMES=(r0h0 r0h1 r1h0 r1h1)
# The spine reaches leaf N at this address (its uplink port).
leaf_uplink() { case "$1" in 0) echo 192.168.255.2 ;; 1) echo 192.168.255.10 ;; esac; }

# `docker compose` when the plugin exists, else docker-compose (v1).
if docker compose version >/dev/null 2>&1; then
    COMPOSE=(docker compose)
else
    COMPOSE=(docker-compose)
fi
compose() { "${COMPOSE[@]}" -p "$PROJECT" -f "$COMPOSE_DIR/docker-compose.yml" "$@"; }

# quiet COMMAND...: runs COMMAND; its output is shown only if it fails.
quiet() {
    local out rc=0
    out=$("$@" 2>&1) || rc=$?
    [ "$rc" -eq 0 ] || printf '%s\n' "$out" >&2
    return "$rc"
}

# Whether any container of the cluster exists (running or not).
cluster_exists() {
    [ -n "$(docker ps -aq --filter "label=com.docker.compose.project=$PROJECT" 2>/dev/null)" ]
}

# romanactl as admin in the ctl container on the management network.
ctl() { docker exec -i romana-ctl romanactl --root "$ROMANA_ROOT" "$@"; }

# wait_healthy SECONDS SERVICE...: until every container is healthy; on timeout, what is
# wrong with each one that is not (state, last health check output, end of its log) and
# `compose ps`, then exit 1.
wait_healthy() {
    local timeout="$1" deadline s state bad
    shift
    deadline=$(($(date +%s) + timeout))
    while :; do
        bad=()
        for s in "$@"; do
            state=$(docker inspect -f '{{.State.Status}}/{{if .State.Health}}{{.State.Health.Status}}{{end}}' \
                "romana-$s" 2>/dev/null || echo missing)
            [ "$state" = running/healthy ] || bad+=("$s")
        done
        [ "${#bad[@]}" -eq 0 ] && return 0
        if [ "$(date +%s)" -ge "$deadline" ]; then
            echo "error: not healthy after ${timeout} s: ${bad[*]}" >&2
            compose ps >&2 || true
            for s in "${bad[@]}"; do
                echo "--- romana-$s: $(docker inspect -f '{{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{end}}' "romana-$s" 2>&1)" >&2
                echo "    last health checks said:" >&2
                docker inspect -f '{{if .State.Health}}{{range .State.Health.Log}}{{.Output}}{{end}}{{end}}' \
                    "romana-$s" 2>&1 | grep . | tail -3 | sed 's/^/      /' >&2 || true
                echo "    end of its log:" >&2
                docker logs --tail 20 "romana-$s" 2>&1 | sed 's/^/      /' >&2 || true
            done
            return 1
        fi
        sleep 1
    done
}
