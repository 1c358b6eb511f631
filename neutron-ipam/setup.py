"""Builds the package, generating the romana gRPC stubs from ../proto/proto first.

Everything else is in pyproject.toml. The stubs land in romana_neutron_ipam/gen/
(git-ignored); the generated package directories are added to the build here because they
do not exist when setuptools reads pyproject.toml.
"""

import importlib.util
import os

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = os.path.dirname(os.path.abspath(__file__))
GEN_PACKAGES = ["romana_neutron_ipam.gen", "romana_neutron_ipam.gen.romana",
                "romana_neutron_ipam.gen.romana.v1"]


def _generate():
    path = os.path.join(HERE, "romana_neutron_ipam", "gen_stubs.py")
    spec = importlib.util.spec_from_file_location("_romana_gen_stubs", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    if os.path.isdir(os.path.join(mod.proto_dir(), "romana", "v1")):
        mod.generate()
    elif not os.path.isdir(mod.OUT_DIR):
        raise SystemExit("cannot build romana-neutron-ipam: no proto files at %s and no "
                         "generated stubs; build from the romana-rs repository or set "
                         "ROMANA_PROTO_DIR" % mod.proto_dir())


class BuildWithStubs(build_py):
    def run(self):
        _generate()
        super().run()


_generate()
setup(
    packages=["romana_neutron_ipam"] + GEN_PACKAGES,
    package_data={"romana_neutron_ipam.gen.romana.v1": ["*.pyi"]},
    cmdclass={"build_py": BuildWithStubs},
)
