#!/usr/bin/env bash
# Runs every check and test of romana-rs: formatting, clippy, unit and property tests, and
# the integration tests against real etcd processes (started and stopped by the tests), the
# Neutron driver's tests, and the docker compose cluster (built, checked and removed).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/setup.sh

echo "==> cargo fmt --check"
cargo fmt --all -- --check

echo "==> cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings

echo "==> building binaries (the namespace tests run the real agent and CNI plugin)"
cargo build --workspace --bins

echo "==> tests"
if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --workspace --no-fail-fast
else
    cargo test --workspace --no-fail-fast
fi
echo "==> Neutron IPAM driver tests (Python, against the real services)"
neutron-ipam/run-tests.sh

echo "==> compose cluster (deploy/compose/test.sh: images built locally, up, matrix, a root replica stopped, down)"
# The images take the debug binaries built above: a cold release build would add ~15 minutes.
ROMANA_COMPOSE_PROFILE=dev deploy/compose/test.sh

echo "==> all tests passed"
