"""Networks and subnets through the REST API of a real neutron-server."""

import ipaddress

import neutron_server as ns
from conftest import SPACE, create_port, make_network, make_subnet, project


def test_networks_answer(api):
    body = ns.expect(api.get("/v2.0/networks"), 200)
    assert "networks" in body


def test_extensions_include_binding_and_exclude_ip_allocation_without_segments(api):
    aliases = {e["alias"] for e in ns.expect(api.get("/v2.0/extensions"), 200)["extensions"]}
    assert "binding" in aliases
    # The romana mechanism driver's deferred-allocation extender is internal: it does not
    # announce the segments plugin's ip_allocation extension.
    assert "ip_allocation" not in aliases
    assert "segment" not in aliases


def test_subnet_covering_the_space_is_served_by_romana(api, romana_view):
    net = make_network(api, name="own", shared=False, network_type="local",
                       physical_network=None)
    sub = make_subnet(api, net, SPACE)
    assert sub["cidr"] == SPACE
    p = project()
    port = create_port(api, net, p, host="h2")
    [ip] = port["fixed_ips"]
    assert ip["subnet_id"] == sub["id"]
    assert ipaddress.ip_address(ip["ip_address"]) in romana_view.expected_cidr("h2", p)
    [ep] = romana_view.endpoints_of_port(port["id"])
    assert ep.address == ip["ip_address"] and ep.host == "h2" and ep.tenant == p


def test_subnet_partly_overlapping_the_space_is_refused(api):
    net = make_network(api, name="partial", shared=False, network_type="local",
                       physical_network=None)
    r = make_subnet(api, net, "10.3.0.0/16", expect_status=None)
    assert r.status_code == 400, r.text
    assert ns.error_type(r) == "InvalidSubnetRequest", r.text
    assert "10.0.0.0/8" in r.json()["NeutronError"]["message"]


def test_foreign_subnet_is_delegated_to_neutrons_ipam(api, romana_view):
    net = make_network(api, name="external", shared=True, network_type="flat",
                       physical_network="ext-50")
    sub = make_subnet(api, net, "192.168.50.0/24")
    p = project()
    port = create_port(api, net, p, host="h1")
    [ip] = port["fixed_ips"]
    assert ip["subnet_id"] == sub["id"]
    assert ipaddress.ip_address(ip["ip_address"]) in ipaddress.ip_network("192.168.50.0/24")
    assert romana_view.endpoints_of_port(port["id"]) == []
    # A second port gets another address from Neutron's own allocator.
    other = create_port(api, net, p, host="h1")
    assert other["fixed_ips"][0]["ip_address"] != ip["ip_address"]
