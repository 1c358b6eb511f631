#!/usr/bin/env bash
# Tests the Neutron IPAM driver against real etcd and real romana services.
#
# Idempotent, from any directory, as root on a fresh Debian 12 machine: creates (or reuses)
# the virtualenv neutron-ipam/.venv, installs neutron 29.x, grpcio, grpcio-tools, pytest and
# the driver (editable), generates the gRPC stubs from ../proto/proto, and runs pytest.
# It builds nothing Rust: the service binaries must already be in target/debug
# (cargo build --bins at the repository root), or in $ROMANA_BIN_DIR.
# Extra arguments go to pytest (e.g. -k concurrency, -x).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/.." && pwd)"
VENV="$HERE/.venv"
PY="$VENV/bin/python"
# What the virtualenv holds; a change here reinstalls.
REQUIREMENTS=("neutron>=29,<30" "grpcio>=1.60" "grpcio-tools>=1.60" "pytest>=7")
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1
cd "$HERE"
start=$(date +%s)

# --- the service binaries (built by the repository's cargo build, not here) ---------------
if [ -n "${ROMANA_BIN_DIR:-}" ]; then
    BIN="$ROMANA_BIN_DIR"
else
    target="${CARGO_TARGET_DIR:-$REPO/target}"
    case "$target" in /*) ;; *) target="$REPO/$target" ;; esac
    BIN="$target/debug"
fi
missing=()
for b in romana-root romana-topology romana-tenant romana-ipam romanactl; do
    [ -x "$BIN/$b" ] || missing+=("$b")
done
if [ "${#missing[@]}" -gt 0 ]; then
    echo "error: missing in $BIN: ${missing[*]}; run cargo build --bins at $REPO first" >&2
    exit 1
fi

# --- Debian packages: etcd for the tests, venv support for Debian's python3 ----------------
need_pkgs=()
command -v etcd >/dev/null 2>&1 || need_pkgs+=(etcd-server)
command -v python3 >/dev/null 2>&1 || need_pkgs+=(python3)
if [ ! -x "$PY" ] && ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
    need_pkgs+=(python3-venv)
fi
if [ "${#need_pkgs[@]}" -gt 0 ]; then
    echo "==> neutron-ipam: installing Debian packages: ${need_pkgs[*]}"
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_pkgs[@]}" >/dev/null
fi

# --- the virtualenv -------------------------------------------------------------------------
if [ -x "$PY" ] && ! "$PY" -c 'import sys' >/dev/null 2>&1; then
    echo "==> neutron-ipam: $VENV is broken; recreating it"
    rm -rf "$VENV"
fi
if [ ! -x "$PY" ]; then
    echo "==> neutron-ipam: creating $VENV"
    python3 -m venv "$VENV"
fi
stamp="$VENV/.romana-requirements"
want="$(printf '%s\n' "${REQUIREMENTS[@]}" "$(cat "$HERE/pyproject.toml" "$HERE/setup.py")" \
    | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ] \
    || ! "$PY" -c 'import neutron, grpc, grpc_tools, pytest, romana_neutron_ipam' \
        >/dev/null 2>&1; then
    echo "==> neutron-ipam: pip install ${REQUIREMENTS[*]} (a few minutes the first time)"
    "$PY" -m pip install -q --upgrade pip setuptools wheel
    "$PY" -m pip install -q "${REQUIREMENTS[@]}"
    echo "==> neutron-ipam: pip install -e neutron-ipam (generates the gRPC stubs)"
    "$PY" -m pip install -q --no-build-isolation -e "$HERE"
    echo "$want" > "$stamp"
fi

# --- stubs from ../proto/proto (regenerated when the protos change) --------------------------
"$PY" -m romana_neutron_ipam.gen_stubs

# --- tests ----------------------------------------------------------------------------------
echo "==> neutron-ipam: pytest (real etcd and romana services from $BIN)"
export ROMANA_BIN_DIR="$BIN"
export PYTHONWARNINGS="ignore::DeprecationWarning,ignore::Warning:futurist._utils"
set +e
"$PY" -m pytest -p no:cacheprovider -q "$HERE/tests" "$@"
rc=$?
set -e
echo "==> neutron-ipam: pytest exit $rc after $(( $(date +%s) - start ))s"
exit $rc
