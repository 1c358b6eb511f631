"""Generates the gRPC stubs of the romana.v1 API from the repository's ``proto/proto``.

The stubs are never checked in: they are generated at build time (``setup.py`` calls
:func:`generate` from its ``build_py`` step) and by ``run-tests.sh``, into
``romana_neutron_ipam/gen/`` (git-ignored). Run by hand with::

    python -m romana_neutron_ipam.gen_stubs [--proto-dir DIR] [--force]

This module imports nothing from its own package, so that ``setup.py`` can load it by path
before the package is installed. It needs ``grpcio-tools``.
"""

import argparse
import hashlib
import os
import re
import shutil
import sys
import tempfile

PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
OUT_DIR = os.path.join(PACKAGE_DIR, "gen")
# neutron-ipam/romana_neutron_ipam -> <repo>/proto/proto
DEFAULT_PROTO_DIR = os.path.normpath(
    os.path.join(PACKAGE_DIR, os.pardir, os.pardir, "proto", "proto"))
API_DIR = os.path.join("romana", "v1")
STAMP = ".stamp"
# The generated modules import each other as ``romana.v1.X``; they live under our package.
IMPORT_RE = re.compile(r"^from romana\.v1 import ", re.MULTILINE)
IMPORT_REPLACEMENT = "from romana_neutron_ipam.gen.romana.v1 import "


def proto_dir():
    return os.environ.get("ROMANA_PROTO_DIR", DEFAULT_PROTO_DIR)


def _proto_files(root):
    api = os.path.join(root, API_DIR)
    if not os.path.isdir(api):
        raise SystemExit(
            "romana proto files not found in %s (expected %s/*.proto); set ROMANA_PROTO_DIR"
            % (root, API_DIR))
    files = sorted(f for f in os.listdir(api) if f.endswith(".proto"))
    if not files:
        raise SystemExit("no .proto files in %s" % api)
    return [os.path.join(API_DIR, f) for f in files]


def _fingerprint(root, files):
    import grpc_tools

    h = hashlib.sha256()
    h.update(getattr(grpc_tools, "__version__", "").encode())
    try:
        from importlib.metadata import version

        h.update(version("grpcio-tools").encode())
    except Exception:  # pragma: no cover - metadata missing
        pass
    for rel in files:
        h.update(rel.encode())
        with open(os.path.join(root, rel), "rb") as f:
            h.update(f.read())
    return h.hexdigest()


def generate(root=None, out_dir=OUT_DIR, force=False, quiet=False):
    """Generates the stubs into ``out_dir`` unless they are up to date. Returns out_dir."""
    try:
        from grpc_tools import protoc
    except ImportError:
        raise SystemExit("grpcio-tools is needed to generate the romana gRPC stubs "
                         "(pip install grpcio-tools)")
    import grpc_tools

    root = os.path.abspath(root or proto_dir())
    files = _proto_files(root)
    fingerprint = _fingerprint(root, files)
    stamp = os.path.join(out_dir, STAMP)
    if not force and os.path.exists(stamp):
        with open(stamp) as f:
            if f.read().strip() == fingerprint:
                return out_dir

    parent = os.path.dirname(os.path.abspath(out_dir))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".gen-", dir=parent)
    os.chmod(tmp, 0o755)
    try:
        well_known = os.path.join(os.path.dirname(grpc_tools.__file__), "_proto")
        args = ["grpc_tools.protoc", "-I", root, "-I", well_known,
                "--python_out", tmp, "--pyi_out", tmp, "--grpc_python_out", tmp] + files
        rc = protoc.main(args)
        if rc != 0:
            raise SystemExit("protoc failed (exit %d) on %s" % (rc, root))
        for dirpath, _dirs, names in os.walk(tmp):
            open(os.path.join(dirpath, "__init__.py"), "a").close()
            for name in names:
                if name.endswith((".py", ".pyi")):
                    path = os.path.join(dirpath, name)
                    with open(path) as f:
                        text = f.read()
                    with open(path, "w") as f:
                        f.write(IMPORT_RE.sub(IMPORT_REPLACEMENT, text))
        with open(os.path.join(tmp, "__init__.py"), "w") as f:
            f.write('"""Generated from proto/proto by romana_neutron_ipam.gen_stubs; '
                    'do not edit."""\n')
        with open(os.path.join(tmp, STAMP), "w") as f:
            f.write(fingerprint + "\n")
        # Replace the old tree in one rename, so a concurrent import never sees half of it.
        old = None
        if os.path.exists(out_dir):
            old = tempfile.mkdtemp(prefix=".old-", dir=parent)
            os.rename(out_dir, os.path.join(old, "gen"))
        os.rename(tmp, out_dir)
        tmp = None
        if old:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
    if not quiet:
        print("generated romana gRPC stubs from %s into %s" % (root, out_dir))
    return out_dir


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--proto-dir", default=None,
                   help="directory holding romana/v1/*.proto (default: %s, or $ROMANA_PROTO_DIR)"
                   % DEFAULT_PROTO_DIR)
    p.add_argument("--out-dir", default=OUT_DIR)
    p.add_argument("--force", action="store_true", help="regenerate even if up to date")
    a = p.parse_args(argv)
    generate(a.proto_dir, a.out_dir, force=a.force)
    return 0


if __name__ == "__main__":
    sys.exit(main())
