"""How Neutron subnets relate to Romana's address space: allocate/get/update/remove."""

import netaddr
import pytest
from neutron.ipam import exceptions as ipam_exc
from neutron.ipam import requests as ipam_req
from neutron.ipam.drivers.neutrondb_ipam import driver as neutrondb
from neutron_lib.db import api as db_api

from conftest import project
from romana_neutron_ipam.driver import RomanaSubnet


def test_subnet_covering_the_space_is_romanas(neutron):
    proj = project()
    s = neutron.create_subnet("10.0.0.0/8", project_id=proj)
    subnet = neutron.pool().get_subnet(s["id"])
    assert isinstance(subnet, RomanaSubnet)
    d = subnet.get_details()
    assert isinstance(d, ipam_req.SpecificSubnetRequest)
    assert (str(d.subnet_cidr), str(d.gateway_ip), d.project_id, d.subnet_id) == (
        "10.0.0.0/8", "10.0.0.1", proj, s["id"])


def test_details_right_after_allocate_subnet(neutron):
    pool = neutron.pool()
    s = neutron.subnet_dict("10.0.0.0/8", project(), gateway_ip="10.0.0.1")
    req = pool.get_subnet_request_factory().get_request(neutron.ctx, s, None)
    d = pool.allocate_subnet(req).get_details()
    assert str(d.subnet_cidr) == "10.0.0.0/8" and d.subnet_id == s["id"]


def test_supernet_of_the_space_is_romanas(neutron):
    s = neutron.create_subnet("10.0.0.0/7")
    assert isinstance(neutron.pool().get_subnet(s["id"]), RomanaSubnet)


@pytest.mark.parametrize("cidr", ["10.1.0.0/16", "10.0.0.0/24"])
def test_subnet_inside_the_space_is_refused(neutron, cidr):
    with pytest.raises(ipam_exc.InvalidSubnetRequest) as e:
        neutron.create_subnet(cidr)
    assert "10.0.0.0/8" in str(e.value) and "cover" in str(e.value)


def test_subnet_outside_the_space_goes_to_neutrons_builtin_ipam(neutron):
    """External/provider networks keep working: Neutron's own DB IPAM serves them."""
    s = neutron.create_subnet("192.0.2.0/24")
    pool = neutron.pool()
    subnet = pool.get_subnet(s["id"])
    assert isinstance(subnet, neutrondb.NeutronDbSubnet)
    port = neutron.port(project(), device_owner="network:router_gateway")
    with db_api.CONTEXT_WRITER.using(neutron.ctx):
        address = neutron.allocate(port, s)
    assert netaddr.IPAddress(address) in netaddr.IPNetwork("192.0.2.0/24")
    assert neutron.endpoints_of_port(port["id"]) == []  # nothing in Romana
    with db_api.CONTEXT_WRITER.using(neutron.ctx):
        pool.get_subnet(s["id"]).deallocate(address)
        upd = dict(s, allocation_pools=[netaddr.IPRange("192.0.2.10", "192.0.2.20")])
        req = pool.get_subnet_request_factory().get_request(neutron.ctx, upd, None)
        pool.update_subnet(req)
        pool.remove_subnet(s["id"])
    assert isinstance(neutron.pool().get_subnet(s["id"]), RomanaSubnet)


def test_ipv6_subnet_on_an_ipv4_cluster_is_delegated(neutron):
    s = neutron.create_subnet("fd00:99::/64")
    assert isinstance(neutron.pool().get_subnet(s["id"]), neutrondb.NeutronDbSubnet)


def test_foreign_subnet_refused_without_delegation(neutron):
    neutron.set(delegate_other_subnets=False)
    with pytest.raises(ipam_exc.InvalidSubnetRequest) as e:
        neutron.create_subnet("192.0.2.0/24")
    assert "delegate_other_subnets" in str(e.value)
    pool = neutron.pool()
    # A subnet from a subnet pool, without a CIDR: Neutron's AnySubnetRequest.
    from neutron_lib import constants

    s = neutron.subnet_dict("192.0.2.0/24", project())
    s.update(cidr=constants.ATTR_NOT_SPECIFIED, gateway_ip=constants.ATTR_NOT_SPECIFIED)
    any_req = pool.get_subnet_request_factory().get_request(
        neutron.ctx, s, {"default_prefixlen": 24, "ip_version": 4})
    assert isinstance(any_req, ipam_req.AnySubnetRequest)
    with pytest.raises(ipam_exc.InvalidSubnetRequestType):
        pool.allocate_subnet(any_req)


def test_update_subnet(neutron, space_subnet):
    pool = neutron.pool()
    upd = dict(space_subnet, allocation_pools=[netaddr.IPRange("10.0.0.2", "10.255.255.254")])
    req = pool.get_subnet_request_factory().get_request(neutron.ctx, upd, None)
    updated = pool.update_subnet(req)
    assert isinstance(updated, RomanaSubnet)
    assert str(updated.get_details().subnet_cidr) == "10.0.0.0/8"


def test_remove_subnet_releases_leftovers_of_that_subnet_only(neutron):
    proj = project()
    gone = neutron.create_subnet("10.0.0.0/8", project_id=proj)
    kept = neutron.create_subnet("10.0.0.0/8", project_id=proj)
    p1, p2 = neutron.port(proj, host="h1"), neutron.port(proj, host="h1")
    neutron.allocate(p1, gone)
    a2 = neutron.allocate(p2, kept)
    neutron.pool().remove_subnet(gone["id"])
    assert neutron.endpoints_of_port(p1["id"]) == []
    assert [e.address for e in neutron.endpoints_of_port(p2["id"])] == [a2]
