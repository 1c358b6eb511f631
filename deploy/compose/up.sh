#!/usr/bin/env bash
# Brings up romana-rs as a docker compose cluster on this machine: 3 etcd members (TLS,
# client certificates, etcd auth), 2 replicas of every service (mutual TLS), a spine and two
# leaf routers, 2 racks x 2 hosts running romana-agent; then sets it up as the local lab
# does (layout, hosts, fabric routes, tenants, segments, a policy, endpoints made by
# romana-cni in network namespaces inside the host containers), and prints what it started,
# how to use it and how to stop it. Images are built locally (build-images.sh, cached).
# Traffic stays on networks it creates; the machine's own routing is not touched.
#   deploy/compose/up.sh [--rebuild]     # --rebuild: the base image too
set -euo pipefail
. "$(dirname "$0")/lib.sh"
. "$COMPOSE_DIR/layout.sh"

if [ "$(id -u)" -ne 0 ]; then
    echo "error: building the base image (debootstrap) needs root; run: sudo $0" >&2
    exit 1
fi
started=$(date +%s)
"$COMPOSE_DIR/build-images.sh" "$@"

if cluster_exists; then
    echo "==> a compose cluster is already there; removing it first"
    "$COMPOSE_DIR/down.sh"
fi

echo "==> certificates in $CERTS_DIR (a development CA; romanactl certs)"
make_certs() {
    local ca="$CERTS_DIR/ca" kind r h n bin
    bin="$REPO_DIR/target/$([ "${ROMANA_COMPOSE_PROFILE:-release}" = dev ] && echo debug || echo release)/romanactl"
    rm -rf "$CERTS_DIR"
    mkdir -p "$CERTS_DIR"
    "$bin" certs init "$ca" >/dev/null
    # put CONTAINER ROLE FILE: $ca/FILE.pem (and key) as CONTAINER's ROLE.pem, with the CA.
    put() {
        mkdir -p "$CERTS_DIR/$1"
        cp "$ca/ca.pem" "$CERTS_DIR/$1/ca.pem"
        cp "$ca/$3.pem" "$CERTS_DIR/$1/$2.pem"
        cp "$ca/$3-key.pem" "$CERTS_DIR/$1/$2-key.pem"
    }
    "$bin" certs issue "$ca" --cn admin >/dev/null
    put ctl client admin
    for n in "${ETCD[@]}"; do
        "$bin" certs issue "$ca" --server --dns "$n" --out "$n" >/dev/null
        put "$n" server "$n"
        put "$n" client admin # its health check reads etcd as admin
    done
    for kind in root topology tenant ipam policy; do
        "$bin" certs issue "$ca" --cn "service:$kind" >/dev/null
        for r in 1 2; do
            "$bin" certs issue "$ca" --server --dns "$kind$r" --out "$kind$r" >/dev/null
            put "$kind$r" server "$kind$r"
            put "$kind$r" client "service-$kind"
        done
    done
    for h in "${HOST_NAMES[@]}"; do
        "$bin" certs issue "$ca" --cn "host:$h" >/dev/null
        put "$h" client "host-$h"
    done
    # Containers read them as root; the CA key stays in $ca, mounted nowhere.
    chmod 0755 "$CERTS_DIR"/*
}
make_certs

echo "==> etcd: 3 members, then etcd users and roles (romanactl etcd-auth setup)"
quiet compose up -d "${ETCD[@]}" ctl
wait_healthy 90 "${ETCD[@]}"
hosts_flags=()
for h in "${HOST_NAMES[@]}"; do hosts_flags+=(--host "$h"); done
docker exec romana-ctl romanactl etcd-auth setup --etcd-endpoints "$ETCD_ENDPOINTS" \
    --etcd-ca /etc/romana/pki/ca.pem --etcd-cert /etc/romana/pki/client.pem \
    --etcd-key /etc/romana/pki/client-key.pem "${hosts_flags[@]}" | sed 's/^/    /'

echo "==> services (2 replicas each), routers, hosts: compose up -d"
quiet compose up -d
wait_healthy 120 "${ETCD[@]}" "${SERVICES[@]}" ctl "${ROUTERS[@]}"

echo "==> layout and hosts"
ctl config init "${LAYOUT[@]}" | sed 's/^/    /'
for h in "${HOSTS[@]}"; do
    read -r name rack ip <<<"$h"
    ctl host add "$name" --ip "$ip" --rack "$rack" | tail -n +2 | sed 's/^/    /'
done
echo "==> waiting for every agent to be up and converged"
wait_healthy 90 "${HOST_NAMES[@]}"

echo "==> fabric routes (romanactl topology fabric) on the spine and the leaves"
apply_fabric() {
    local fabric device
    fabric=$(ctl topology fabric)
    for device in leaf-0 leaf-1 spine; do
        awk -v d="$device" 'NR > 1 && $1 == d { print $2, $3 }' <<<"$fabric" | while read -r p via; do
            case "$via" in leaf-*) via=$(leaf_uplink "${via#leaf-}") ;; esac
            echo "$p $via"
        done | docker exec -i "romana-${device/-/}" romana-router-routes | sed "s/^/    $device: /"
    done
    for device in "${ROUTERS[@]}"; do
        docker exec "romana-$device" romana-router-health >/dev/null \
            || { echo "error: $device did not take its routes" >&2; exit 1; }
    done
}
apply_fabric

echo "==> tenants, segments, policy"
for t in "${TENANTS[@]}"; do
    read -r tenant segments <<<"$t"
    ctl tenant add "$tenant" >/dev/null
    for s in $segments; do ctl segment add "$tenant" "$s" >/dev/null; done
    echo "    tenant $tenant: segments default${segments:+ $segments}"
done
ctl policy apply -f - <<<"$POLICY" | sed 's/^/    /'

echo "==> endpoints (romana-cni ADD in network namespaces inside the host containers)"
declare -A ADDRESS
for e in "${ENDPOINTS[@]}"; do
    read -r name host tenant segment <<<"$e"
    ADDRESS[$name]=$(docker exec "romana-$host" romana-endpoint add "$name" "$tenant" "$segment")
    printf '    %-3s %-15s on %s (tenant %s, segment %s)\n' "$name" "${ADDRESS[$name]}" \
        "$host" "$tenant" "$segment"
done

# The agents program each new endpoint's route and nft elements; wait until the first
# same-segment pair across racks answers (bounded) before saying the cluster is up.
read -r a ahost _ <<<"${ENDPOINTS[0]}"
read -r b _ <<<"${ENDPOINTS[1]}"
for i in $(seq 1 60); do
    docker exec "romana-$ahost" ip netns exec "$a" ping -c1 -W1 "${ADDRESS[$b]}" >/dev/null 2>&1 \
        && break
    if [ "$i" = 60 ]; then
        echo "error: $a cannot ping $b (${ADDRESS[$b]}) after 60 tries; agent logs: docker logs romana-$ahost" >&2
        exit 1
    fi
    sleep 0.5
done
wait_healthy 60 "${HOST_NAMES[@]}"

cat <<EOF

romana-rs compose cluster is up ($(( $(date +%s) - started )) s):
  etcd        etcd1 etcd2 etcd3 (TLS, client certificates, etcd auth on)  172.31.250.11-13
  services    root1 root2 topology1 topology2 tenant1 tenant2 ipam1 ipam2 policy1 policy2
              (mutual TLS, registered as https://NAME:PORT)               172.31.250.21-30
  fabric      spine; leaf0 (rack 0, 192.168.0.0/24); leaf1 (rack 1, 192.168.1.0/24)
  hosts       r0h0 192.168.0.11, r0h1 192.168.0.12 (rack 0); r1h0 192.168.1.11, r1h1 192.168.1.12 (rack 1)
  endpoints   $(for e in "${ENDPOINTS[@]}"; do read -r n h t s <<<"$e"; printf '%s=%s(%s/%s@%s) ' "$n" "${ADDRESS[$n]}" "$t" "$s" "$h"; done)
  policy      web-from-lb + lb-to-web: tenant lb may open TCP 80 on shop/web

Use it:
  deploy/compose/romanactl status                 # romanactl as admin, in container romana-ctl
  deploy/compose/romanactl host status
  deploy/compose/romanactl topology fabric
  deploy/compose/matrix.sh                        # ping and TCP, every endpoint to every endpoint
  docker exec romana-$ahost ip netns exec $a ping -c1 ${ADDRESS[$b]}   # $a -> $b
  docker exec romana-r0h0 nft list table inet romana
  docker exec romana-r0h0 romana-endpoint add NAME TENANT SEGMENT    # one more endpoint
  docker ps --filter label=com.docker.compose.project=$PROJECT

Stop it and remove containers, networks, volumes and certificates: deploy/compose/down.sh
EOF
