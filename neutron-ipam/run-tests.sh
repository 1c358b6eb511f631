#!/usr/bin/env bash
# Tests the Neutron IPAM driver and ML2 mechanism driver against real etcd and real romana
# services.
#
# Idempotent, from any directory, as root on a fresh Debian 12 machine: creates (or reuses)
# the virtualenv neutron-ipam/.venv, installs neutron 29.x, grpcio, grpcio-tools, pytest,
# PyMySQL, uWSGI and the driver (editable), generates the gRPC stubs from ../proto/proto,
# and runs two pytest sessions:
#   tests/     the driver inside this process, set up as neutron-server sets it up
#   apitests/  real neutron-servers (MariaDB + neutron-db-manage + uWSGI serving
#              neutron.wsgi.api) driven through the REST API only
# It builds nothing Rust: the service binaries must already be in target/debug
# (cargo build --bins at the repository root), or in $ROMANA_BIN_DIR.
# Extra arguments go to both pytest runs (e.g. -k concurrency, -x); a run that the
# arguments leave without tests is not a failure. ROMANA_NEUTRON_SUITES=tests or apitests
# runs only one of them.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/.." && pwd)"
VENV="$HERE/.venv"
PY="$VENV/bin/python"
# What the virtualenv holds; a change here reinstalls.
REQUIREMENTS=("neutron>=29,<30" "grpcio>=1.60" "grpcio-tools>=1.60" "pytest>=7"
              "PyMySQL>=1.0" "uWSGI>=2.0.20" "requests>=2.25")
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

# --- Debian packages: etcd, MariaDB, iproute2 and ping for the tests, venv support for Debian's
# python3, a C compiler and Python's headers for pip to build uWSGI -------------------------
need_pkgs=()
command -v etcd >/dev/null 2>&1 || need_pkgs+=(etcd-server)
[ -x /usr/sbin/mariadbd ] || command -v mariadbd >/dev/null 2>&1 || need_pkgs+=(mariadb-server)
command -v mariadb-install-db >/dev/null 2>&1 || need_pkgs+=(mariadb-server)
command -v ip >/dev/null 2>&1 || need_pkgs+=(iproute2)
command -v ping >/dev/null 2>&1 || need_pkgs+=(iputils-ping)
command -v python3 >/dev/null 2>&1 || need_pkgs+=(python3)
if [ ! -x "$PY" ] && ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
    need_pkgs+=(python3-venv)
fi
if [ ! -x "$VENV/bin/uwsgi" ]; then
    command -v gcc >/dev/null 2>&1 || need_pkgs+=(gcc libc6-dev)
    if ! python3 -c 'import os, sysconfig; raise SystemExit(not os.path.exists(
            os.path.join(sysconfig.get_paths()["include"], "Python.h")))' 2>/dev/null; then
        need_pkgs+=(python3-dev)
    fi
fi
if [ "${#need_pkgs[@]}" -gt 0 ]; then
    echo "==> neutron-ipam: installing Debian packages: ${need_pkgs[*]}"
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    # (policy-rc.d or not, the tests start their own mariadbd; a service the package may
    # have started is not used.)
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq \
        $(printf '%s\n' "${need_pkgs[@]}" | sort -u) >/dev/null
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
    || ! "$PY" -c 'import neutron, grpc, grpc_tools, pytest, pymysql, requests, romana_neutron_ipam' \
        >/dev/null 2>&1 || [ ! -x "$VENV/bin/uwsgi" ]; then
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
export ROMANA_BIN_DIR="$BIN"
export PYTHONWARNINGS="ignore::DeprecationWarning,ignore::Warning:futurist._utils"
suites="${ROMANA_NEUTRON_SUITES:-tests apitests}"
rc=0
summary=""
for suite in $suites; do
    case "$suite" in
        tests) what="the driver in-process (real etcd and romana services from $BIN)" ;;
        apitests) what="real neutron-servers over REST (MariaDB, uWSGI; services from $BIN)" ;;
        *) echo "error: unknown suite $suite in ROMANA_NEUTRON_SUITES" >&2; exit 2 ;;
    esac
    echo "==> neutron-ipam: pytest $suite: $what"
    t0=$(date +%s)
    set +e
    "$PY" -m pytest -p no:cacheprovider -q -rfEsxX "$HERE/$suite" "$@"
    one=$?
    set -e
    # 5: no tests collected, which extra arguments (-k ...) may well cause in one suite.
    if [ "$one" -eq 5 ] && [ "$#" -gt 0 ]; then one=0; fi
    summary="$summary $suite=exit $one in $(( $(date +%s) - t0 ))s;"
    [ "$rc" -ne 0 ] || rc=$one
done
echo "==> neutron-ipam:$summary total $(( $(date +%s) - start ))s"
exit $rc
