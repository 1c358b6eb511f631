#!/usr/bin/env bash
# Removes the compose cluster started by up.sh: its containers, networks and volumes, and
# the certificates it made. Safe to run when nothing is there.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
if ! command -v docker >/dev/null 2>&1 || ! docker info >/dev/null 2>&1; then
    echo "docker is not usable here; nothing to remove"
    exit 0
fi
# project container|network|volume: the ids of the project's objects of that kind.
project() {
    local label="label=com.docker.compose.project=$PROJECT"
    case "$1" in
        container) docker ps -aq --filter "$label" ;;
        *) docker "$1" ls -q --filter "$label" ;;
    esac
}
containers=$(project container | wc -l) networks=$(project network | wc -l) volumes=$(project volume | wc -l)
if [ "$((containers + networks + volumes))" -gt 0 ]; then
    log=$(mktemp)
    if ! compose down --volumes --remove-orphans --timeout 5 >"$log" 2>&1; then
        cat "$log" >&2
    fi
    rm -f "$log"
    # Anything of the project that compose did not know about (say, from an edited file).
    left=$(project container)
    [ -z "$left" ] || docker rm -f $left >/dev/null
    for n in $(project network); do docker network rm "$n" >/dev/null || true; done
    for v in $(project volume); do docker volume rm "$v" >/dev/null || true; done
    if [ -n "$(project container)$(project network)$(project volume)" ]; then
        echo "error: could not remove everything of project $PROJECT:" >&2
        docker ps -a --filter "label=com.docker.compose.project=$PROJECT" >&2
        docker network ls --filter "label=com.docker.compose.project=$PROJECT" >&2
        exit 1
    fi
fi
rm -rf "$CERTS_DIR"
echo "compose cluster removed ($containers containers, $networks networks, $volumes volumes)"
