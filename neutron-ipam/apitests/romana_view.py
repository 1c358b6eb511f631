"""What Romana holds, read straight from the services of the test cluster (never through
Neutron): endpoints, and the CIDR an address must lie in, computed here from the layout
bits and the host, tenant and segment numbers."""

import ipaddress

from romana_neutron_ipam import pb

LABEL_PORT = "neutron.openstack.org/port-id"
LABEL_SUBNET = "neutron.openstack.org/subnet-id"


class RomanaView:
    def __init__(self, cluster):
        self.cluster = cluster

    def endpoints(self, **filters):
        found, token = [], ""
        while True:
            page = self.cluster.ipam().ListEndpoints(
                pb.ipam.ListEndpointsRequest(page_token=token, **filters), timeout=10)
            found.extend(page.endpoints)
            if not page.next_page_token:
                return found
            token = page.next_page_token

    def neutron_endpoints(self):
        """Every endpoint the Neutron driver made, by address."""
        return {e.address: e for e in self.endpoints() if LABEL_PORT in e.labels}

    def endpoints_of_port(self, port_id):
        return [e for e in self.endpoints(labels={LABEL_PORT: port_id})]

    def expected_cidr(self, host, tenant, segment="default"):
        c = self.cluster
        layout = c.root_stub().GetConfig(pb.root.GetConfigRequest(), timeout=5)
        h = c.topology().GetHost(pb.topology.GetHostRequest(name=host), timeout=5)
        t = c.tenants().GetTenant(pb.tenant.GetTenantRequest(name=tenant), timeout=5)
        segs = c.tenants().ListSegments(pb.tenant.ListSegmentsRequest(tenant=tenant),
                                        timeout=5).segments
        seg_id = [s.id for s in segs if s.name == segment][0]
        host_net = ipaddress.ip_network(h.prefix)
        space = ipaddress.ip_network(layout.address_space)
        endpoint_bits = (space.max_prefixlen - space.prefixlen - layout.host_bits
                         - layout.tenant_bits - layout.segment_bits)
        offset = ((t.id << layout.segment_bits) | seg_id) << endpoint_bits
        plen = space.max_prefixlen - endpoint_bits
        return ipaddress.ip_network((int(host_net.network_address) + offset, plen))

    def host_status(self, host):
        return self.cluster.topology().GetHostStatus(
            pb.topology.GetHostStatusRequest(host=host), timeout=5)
