#!/usr/bin/env bash
# Removes the compose cluster started by up.sh: its containers, networks and volumes, and
# the certificates it made. Safe to run when nothing is there.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
if ! command -v docker >/dev/null 2>&1 || ! docker info >/dev/null 2>&1; then
    echo "docker is not usable here; nothing to remove"
    exit 0
fi
compose down --volumes --remove-orphans --timeout 5 2>&1 | grep -v '^Network .* not found' || true
# Anything of the project compose did not know about (a cluster from an edited file).
left=$(docker ps -aq --filter "label=com.docker.compose.project=$PROJECT")
[ -z "$left" ] || docker rm -f $left >/dev/null
for n in $(docker network ls -q --filter "label=com.docker.compose.project=$PROJECT"); do
    docker network rm "$n" >/dev/null || true
done
for v in $(docker volume ls -q --filter "label=com.docker.compose.project=$PROJECT"); do
    docker volume rm "$v" >/dev/null || true
done
rm -rf "$CERTS_DIR"
echo "compose cluster removed"
