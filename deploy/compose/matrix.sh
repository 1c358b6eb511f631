#!/usr/bin/env bash
# The reachability matrix of the compose cluster started by up.sh: from every endpoint to
# every other one, across racks and tenants, a ping and a TCP exchange on each port of
# layout.sh, printed as one table per probe. Each cell's expected result comes from the
# policy (layout.sh's `expect`: the same tenant and segment talk, plus the Romana policy
# up.sh applied) and is cross-checked with `romanactl policy explain`, the control plane's
# own reading of the policy. Exits 0 only if every cell is what both say.
#   deploy/compose/matrix.sh
set -euo pipefail
. "$(dirname "$0")/lib.sh"
. "$COMPOSE_DIR/layout.sh"

if ! docker inspect -f '{{.State.Running}}' romana-ctl 2>/dev/null | grep -q true; then
    echo "error: the compose cluster is not running; start it with deploy/compose/up.sh" >&2
    exit 1
fi

declare -A HOST TENANT SEGMENT ADDRESS
NAMES=()
for e in "${ENDPOINTS[@]}"; do
    read -r name host tenant segment <<<"$e"
    NAMES+=("$name")
    HOST[$name]=$host TENANT[$name]=$tenant SEGMENT[$name]=$segment
    ADDRESS[$name]=$(docker exec "romana-$host" ip -n "$name" -4 -o addr show dev eth0 2>/dev/null \
        | awk '{ sub("/.*", "", $4); print $4; exit }')
    if [ -z "${ADDRESS[$name]}" ]; then
        echo "error: endpoint $name has no address on $host (did up.sh finish?)" >&2
        exit 1
    fi
    # Every endpoint serves each TCP port: a line "ok" to whoever connects.
    for port in "${TCP_PORTS[@]}"; do
        if ! docker exec "romana-$host" ip netns exec "$name" ss -Hltn "sport = :$port" | grep -q .; then
            docker exec -d "romana-$host" ip netns exec "$name" \
                socat "TCP-LISTEN:$port,bind=${ADDRESS[$name]},fork,reuseaddr" SYSTEM:'echo ok'
        fi
    done
done
sleep 0.3

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# The probes of one source, all at once inside its host container: lines "DST PROBE RESULT",
# RESULT allow or deny. A probe that fails is tried once more, so that one lost packet is not
# reported as a block.
probe_script() {
    local src="$1" dst probe
    echo 'p() { ip netns exec "$1" "${@:2}" >/dev/null 2>&1; }'
    echo 'tcp() { [ "$(ip netns exec "$1" socat -T2 - "TCP:$2,connect-timeout=1" </dev/null 2>/dev/null)" = ok ]; }'
    for dst in "${NAMES[@]}"; do
        [ "$dst" = "$src" ] && continue
        for probe in "${PROBES[@]}"; do
            case "$probe" in
                icmp) check="p $src ping -c1 -W1 ${ADDRESS[$dst]}" ;;
                tcp/*) check="tcp $src ${ADDRESS[$dst]}:${probe#tcp/}" ;;
            esac
            echo "( if $check || $check; then echo '$dst $probe allow'; else echo '$dst $probe deny'; fi ) &"
        done
    done
    echo wait
}
for src in "${NAMES[@]}"; do
    probe_script "$src" | docker exec -i "romana-${HOST[$src]}" bash >"$work/seen.$src" &
done

# The control plane's verdict for every cell, in one romanactl container session.
explain_script() {
    local src dst probe
    for src in "${NAMES[@]}"; do
        for dst in "${NAMES[@]}"; do
            [ "$dst" = "$src" ] && continue
            for probe in "${PROBES[@]}"; do
                case "$probe" in
                    icmp) args="--proto icmp" ;;
                    tcp/*) args="--proto tcp --port ${probe#tcp/}" ;;
                esac
                echo "v=\$(romanactl --root '$ROMANA_ROOT' policy explain --from ${ADDRESS[$src]} --to ${ADDRESS[$dst]} $args -o json 2>&1 | tr -d ' \\n' | sed -n 's/.*\"verdict\":\"\\([a-z]*\\)\".*/\\1/p')"
                echo "echo '$src $dst $probe' \${v:-error}"
            done
        done
    done
}
explain_script | docker exec -i romana-ctl bash >"$work/explain"
wait

declare -A SEEN EXPLAIN
for src in "${NAMES[@]}"; do
    while read -r dst probe result; do SEEN["$src $dst $probe"]=$result; done <"$work/seen.$src"
done
while read -r src dst probe verdict; do EXPLAIN["$src $dst $probe"]=$verdict; done <"$work/explain"

# One table per probe. A cell is what happened: "." answered, "X" blocked; then "!" if that
# is not what the policy says, "?" if policy explain disagrees with the expectation.
cells=0 bad=0
problems=()
for probe in "${PROBES[@]}"; do
    printf '\n%-22s' "$probe  (from \\ to)"
    for dst in "${NAMES[@]}"; do printf '%-6s' "$dst"; done
    echo
    for src in "${NAMES[@]}"; do
        printf '%-22s' "$src ${TENANT[$src]}/${SEGMENT[$src]} ${HOST[$src]}"
        for dst in "${NAMES[@]}"; do
            if [ "$dst" = "$src" ]; then printf '%-6s' "-"; continue; fi
            key="$src $dst $probe"
            want=$(expect "${TENANT[$src]}" "${SEGMENT[$src]}" "${TENANT[$dst]}" "${SEGMENT[$dst]}" "$probe")
            seen=${SEEN[$key]:-none} explained=${EXPLAIN[$key]:-none}
            cell=$([ "$seen" = allow ] && echo "." || echo "X")
            cells=$((cells + 1))
            if [ "$seen" != "$want" ]; then
                cell+="!"
                problems+=("$src -> $dst $probe: expected $want, seen $seen")
            fi
            if [ "$explained" != "$want" ]; then
                cell+="?"
                problems+=("$src -> $dst $probe: expected $want, policy explain says $explained")
            fi
            [ "$cell" = . ] || [ "$cell" = X ] || bad=$((bad + 1))
            printf '%-6s' "$cell"
        done
        echo
    done
done
echo
echo "endpoints: $(for n in "${NAMES[@]}"; do printf '%s=%s ' "$n" "${ADDRESS[$n]}"; done)"
echo "legend: . answered, X blocked; ! not what the policy says; ? policy explain disagrees"
if [ "$bad" -gt 0 ]; then
    printf '  %s\n' "${problems[@]}"
    echo "matrix: $bad of $cells cells wrong"
    exit 1
fi
echo "matrix: all $cells cells as the policy says"
