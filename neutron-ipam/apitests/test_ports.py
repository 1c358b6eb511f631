"""Ports through the REST API of a real neutron-server: with and without a host, bound
later, fixed IPs, delete, and many at once. Romana's view is read from the services."""

import ipaddress
import json
from concurrent.futures import ThreadPoolExecutor

import neutron_server as ns
from conftest import bind, create_port, delete_port, port_body, project, show_port


def _address(port):
    [ip] = port["fixed_ips"]
    return ip["ip_address"]


def test_port_with_host_gets_an_address_in_its_host_tenant_segment_cidr(
        api, romana_net, romana_view):
    net, sub = romana_net
    p = project()
    port = create_port(api, net, p, host="h1")
    addr = ipaddress.ip_address(_address(port))
    assert addr in romana_view.expected_cidr("h1", p, "default")
    [ep] = romana_view.endpoints_of_port(port["id"])
    assert (ep.address, ep.host, ep.tenant, ep.segment) == (str(addr), "h1", p, "default")
    assert ep.labels["neutron.openstack.org/subnet-id"] == sub["id"]
    assert ep.labels["neutron.openstack.org/network-id"] == net["id"]
    assert ep.labels["neutron.openstack.org/device-owner"] == "compute_nova"


def test_port_without_host_gets_its_address_when_bound(api, romana_net, romana_view):
    """As Nova does it: the port is created without a host and bound to the compute host
    later. Plain ML2 (no segments plugin): the romana mechanism driver's extender makes
    Neutron allocate on the binding."""
    net, sub = romana_net
    p = project()
    created = create_port(api, net, p)
    assert created["fixed_ips"] == []
    assert created["binding:vif_type"] == "unbound"
    assert romana_view.endpoints_of_port(created["id"]) == []
    assert show_port(api, created["id"])["fixed_ips"] == []
    # Not exposed: the ip_allocation extension is not loaded.
    assert "ip_allocation" not in created

    bound = bind(api, created["id"], "h2")
    addr = ipaddress.ip_address(_address(bound))
    assert bound["fixed_ips"][0]["subnet_id"] == sub["id"]
    assert addr in romana_view.expected_cidr("h2", p)
    assert bound["binding:host_id"] == "h2"
    assert bound["binding:vif_type"] == "tap"
    [ep] = romana_view.endpoints_of_port(created["id"])
    assert (ep.address, ep.host, ep.tenant) == (str(addr), "h2", p)
    assert show_port(api, created["id"])["fixed_ips"] == bound["fixed_ips"]


def test_binding_profile_segment(api, romana, romana_net, romana_view):
    """binding:profile romana_segment needs the service role under Neutron 29's policy."""
    net, _ = romana_net
    p = project()
    create_port(api, net, p, host="h1")  # creates the tenant
    romana.romanactl("segment", "add", p, "web")
    # An admin alone may not set binding:profile (policy: rule:service_api).
    r = api.post("/v2.0/ports", port_body(net, p, host="h1",
                                          profile={"romana_segment": "web"}))
    assert r.status_code == 403, r.text
    r = api.post("/v2.0/ports", port_body(net, p, host="h1",
                                          profile={"romana_segment": "web"}),
                 roles=["service"])
    port = ns.expect(r, 201)["port"]
    assert ipaddress.ip_address(_address(port)) in romana_view.expected_cidr("h1", p, "web")
    [ep] = romana_view.endpoints_of_port(port["id"])
    assert ep.segment == "web"


def test_free_fixed_ip_in_the_ports_cidr(api, romana_net, romana_view):
    net, sub = romana_net
    p = project()
    first = create_port(api, net, p, host="h3")  # creates the tenant, so its CIDR exists
    cidr = romana_view.expected_cidr("h3", p)
    wanted = str(cidr.network_address + 77)
    port = create_port(api, net, p, host="h3",
                       fixed_ips=[{"subnet_id": sub["id"], "ip_address": wanted}])
    assert _address(port) == wanted
    [ep] = romana_view.endpoints_of_port(port["id"])
    assert ep.address == wanted
    assert _address(first) != wanted


def test_taken_fixed_ip_is_409_ip_address_already_allocated(api, romana_net):
    net, sub = romana_net
    p = project()
    first = create_port(api, net, p, host="h1")
    r = create_port(api, net, p, status=None, host="h1",
                    fixed_ips=[{"subnet_id": sub["id"], "ip_address": _address(first)}])
    assert r.status_code == 409, r.text
    assert ns.error_type(r) == "IpAddressAlreadyAllocated", r.text


def test_fixed_ip_of_another_host_is_400(api, romana_net, romana_view):
    net, sub = romana_net
    p = project()
    create_port(api, net, p, host="h1")
    elsewhere = romana_view.expected_cidr("h2", p)
    r = create_port(api, net, p, status=None, host="h1",
                    fixed_ips=[{"subnet_id": sub["id"],
                                "ip_address": str(elsewhere.network_address + 20)}])
    assert r.status_code == 400, r.text
    assert ns.error_type(r) == "InvalidIpForSubnet", r.text
    addrs = {e.address for e in romana_view.endpoints(tenant=p)}
    assert str(elsewhere.network_address + 20) not in addrs


def test_unknown_host_is_refused_and_nothing_is_kept(api, romana_net, romana_view):
    net, _ = romana_net
    p = project()
    r = create_port(api, net, p, status=None, host="ghost")
    assert r.status_code == 409, r.text
    assert ns.error_type(r) == "IpamValueInvalid", r.text
    assert "romanactl host add ghost" in r.json()["NeutronError"]["message"]
    ports = ns.expect(api.get("/v2.0/ports?project_id=%s" % p), 200)["ports"]
    assert ports == []


def test_delete_releases_the_address_in_romana(api, romana, romana_net, romana_view):
    net, _ = romana_net
    p = project()
    port = create_port(api, net, p, host="h2")
    addr = _address(port)
    listed = json.loads(romana.romanactl("ipam", "list", "-o", "json"))
    assert addr in json.dumps(listed)
    delete_port(api, port["id"])
    assert romana_view.endpoints_of_port(port["id"]) == []
    listed = json.loads(romana.romanactl("ipam", "list", "-o", "json"))
    assert addr not in json.dumps(listed)
    # The address is free again: a fixed IP may take it.
    again = create_port(api, net, p, host="h2",
                        fixed_ips=[{"subnet_id": romana_net[1]["id"], "ip_address": addr}])
    assert _address(again) == addr


def test_twenty_parallel_creates(api, romana_net, romana_view):
    net, _ = romana_net
    p = project()
    create_port(api, net, p, host="h1")  # the tenant exists before the burst
    hosts = ["h1", "h2"] * 10

    def one(host):
        return api.post("/v2.0/ports", port_body(net, p, host=host), timeout=120)

    with ThreadPoolExecutor(20) as pool:
        results = list(pool.map(one, hosts))
    ports = [ns.expect(r, 201)["port"] for r in results]
    addrs = [_address(port) for port in ports]
    assert len(set(addrs)) == 20
    cidrs = {h: romana_view.expected_cidr(h, p) for h in ("h1", "h2")}
    for host, port in zip(hosts, ports):
        assert ipaddress.ip_address(_address(port)) in cidrs[host]
    held = romana_view.neutron_endpoints()
    for port in ports:
        ep = held[_address(port)]
        assert ep.labels["neutron.openstack.org/port-id"] == port["id"]


def test_network_delete_with_ports_gone_leaves_nothing_in_romana(api, romana_view):
    from conftest import SPACE, make_network, make_subnet

    net = make_network(api, name="short-lived", shared=False, network_type="local",
                       physical_network=None)
    sub = make_subnet(api, net, SPACE)
    p = project()
    ports = [create_port(api, net, p, host="h1") for _ in range(3)]
    for port in ports:
        delete_port(api, port["id"])
    ns.expect(api.delete("/v2.0/networks/%s" % net["id"]), 204)
    left = [e for e in romana_view.endpoints()
            if e.labels.get("neutron.openstack.org/subnet-id") == sub["id"]]
    assert left == []
