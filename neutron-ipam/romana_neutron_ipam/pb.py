"""The generated romana.v1 messages and stubs, under short names.

The stubs are generated from the repository's proto/proto (never copied by hand); see
``gen_stubs.py``.
"""

try:
    from romana_neutron_ipam.gen.romana.v1 import common_pb2 as common
    from romana_neutron_ipam.gen.romana.v1 import ipam_pb2 as ipam
    from romana_neutron_ipam.gen.romana.v1 import ipam_pb2_grpc as ipam_grpc
    from romana_neutron_ipam.gen.romana.v1 import root_pb2 as root
    from romana_neutron_ipam.gen.romana.v1 import root_pb2_grpc as root_grpc
    from romana_neutron_ipam.gen.romana.v1 import tenant_pb2 as tenant
    from romana_neutron_ipam.gen.romana.v1 import tenant_pb2_grpc as tenant_grpc
    from romana_neutron_ipam.gen.romana.v1 import topology_pb2 as topology
    from romana_neutron_ipam.gen.romana.v1 import topology_pb2_grpc as topology_grpc
except ImportError as e:  # pragma: no cover - depends on the build
    raise ImportError(
        "the romana gRPC stubs are missing (%s): generate them with "
        "'python -m romana_neutron_ipam.gen_stubs' (needs grpcio-tools and the "
        "repository's proto/proto), or install the package from a build that ran it" % e
    ) from e

__all__ = ["common", "ipam", "ipam_grpc", "root", "root_grpc", "tenant", "tenant_grpc",
           "topology", "topology_grpc"]
