"""An IPv6 address space: automatic addresses work, EUI-64 (SLAAC) is refused clearly."""

import ipaddress

import pytest
from neutron.ipam import exceptions as ipam_exc
from neutron.ipam import requests as ipam_req

from conftest import V6_LAYOUT, Neutron, project


@pytest.fixture
def v6(v6_cluster):
    return Neutron(v6_cluster)


def test_ipv6_any_and_specific(v6):
    subnet = v6.create_subnet(V6_LAYOUT["address_space"])
    proj = project()
    port = v6.port(proj, host="v1")
    address = v6.allocate(port, subnet)
    cidr = v6.expected_cidr("v1", proj)
    assert ipaddress.ip_address(address) == cidr.network_address + 2
    wanted = str(cidr.network_address + 0x1234)
    assert v6.allocate(v6.port(proj, host="v1"), subnet, wanted) == wanted


def test_eui64_is_refused(v6):
    subnet = v6.create_subnet(V6_LAYOUT["address_space"])
    port = v6.port(project(), host="v1")
    pool = v6.pool()
    req = v6.request(port, {"subnet_id": subnet["id"], "eui64_address": True,
                            "subnet_cidr": subnet["cidr"], "mac": port["mac_address"]}, pool)
    assert isinstance(req, ipam_req.AutomaticAddressRequest)
    with pytest.raises(ipam_exc.InvalidAddressType) as e:
        pool.get_allocator([subnet["id"]]).allocate(req)
    assert "dhcpv6-stateful" in str(e.value)
    assert v6.endpoints_of_port(port["id"]) == []
