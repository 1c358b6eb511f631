"""What Romana holds, read straight from the services of the test cluster (never through
Neutron): endpoints, host status, and the CIDR an address must lie in (tests/cluster.py's
reads, which the in-process tests use too)."""

from romana_neutron_ipam import pb
from romana_neutron_ipam.driver import LABEL_PORT


class RomanaView:
    def __init__(self, cluster):
        self.cluster = cluster

    def endpoints(self, **filters):
        return self.cluster.endpoints(**filters)

    def neutron_endpoints(self):
        """Every endpoint the Neutron driver made, by address."""
        return {e.address: e for e in self.endpoints() if LABEL_PORT in e.labels}

    def endpoints_of_port(self, port_id):
        return self.cluster.endpoints_of_port(port_id)

    def expected_cidr(self, host, tenant, segment="default"):
        return self.cluster.expected_cidr(host, tenant, segment)

    def host_status(self, host):
        return self.cluster.topology().GetHostStatus(
            pb.topology.GetHostStatusRequest(host=host), timeout=5)
