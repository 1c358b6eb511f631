"""The ``romana`` ML2 mechanism driver through the REST API: what it binds, what it
refuses (the port ends binding_failed, with the reason in neutron-server's log), and
deferred allocation with and without the segments service plugin."""

import ipaddress
import time

import pytest

import neutron_server as ns
from conftest import (SPACE, bind, create_port, make_network, make_subnet, port_body,
                      project, show_port)

# What Nova's libvirt driver gets for the tap VIF; ML2 adds which driver bound each level.
TAP_DETAILS = {"port_filter": False, "connectivity": "l3", "bound_drivers": {"0": "romana"}}


def _wait_log(server, text, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in server.log_text():
            return True
        time.sleep(0.2)
    return False


@pytest.mark.parametrize("network_type,physnet", [("flat", "bind-flat"), ("local", None)])
def test_binds_on_a_romana_host_as_tap(api, romana_view, network_type, physnet):
    net = make_network(api, name="bind-" + network_type, shared=False,
                       network_type=network_type, physical_network=physnet)
    make_subnet(api, net, SPACE)
    p = project()
    port = create_port(api, net, p, host="h3")
    assert port["binding:host_id"] == "h3"
    assert port["binding:vif_type"] == "tap"
    assert port["binding:vif_details"] == TAP_DETAILS
    assert port["binding:vnic_type"] == "normal"
    # No agent has wired it: the L2 provisioning block keeps it DOWN.
    assert port["status"] == "DOWN"
    assert ipaddress.ip_address(port["fixed_ips"][0]["ip_address"]) in \
        romana_view.expected_cidr("h3", p)
    assert _wait_log(api, "romana: bound port %s on host h3" % port["id"])
    assert show_port(api, port["id"])["binding:vif_type"] == "tap"


def test_host_unknown_to_romana_is_binding_failed(api):
    """On a subnet Neutron's own IPAM serves (so IPAM does not need the host), a host that
    topology-service does not know is not bound."""
    net = make_network(api, name="ext-bind", shared=True, network_type="flat",
                       physical_network="ext-60")
    make_subnet(api, net, "192.168.60.0/24")
    port = create_port(api, net, project(), host="ghost-7")
    assert port["binding:vif_type"] == "binding_failed"
    assert port["binding:host_id"] == "ghost-7"
    assert _wait_log(api, "romana: not binding port %s on host ghost-7: the host is not "
                          "registered" % port["id"])
    assert "romanactl host add ghost-7" in api.log_text()


def test_host_registered_later_binds_on_the_next_update(api, romana):
    net = make_network(api, name="ext-later", shared=True, network_type="flat",
                       physical_network="ext-61")
    make_subnet(api, net, "192.168.61.0/24")
    port = create_port(api, net, project(), host="late-1")
    assert port["binding:vif_type"] == "binding_failed"
    romana.add_host("late-1", "127.0.2.1")
    updated = ns.expect(api.put("/v2.0/ports/%s" % port["id"],
                                {"port": {"name": "again"}}), 200)["port"]
    assert updated["binding:vif_type"] == "tap"


def test_vlan_network_is_not_bound(api):
    net = make_network(api, name="vlan", shared=False, network_type="vlan",
                       physical_network="physnet1", segmentation_id=150)
    make_subnet(api, net, SPACE)
    port = create_port(api, net, project(), host="h1")
    assert port["binding:vif_type"] == "binding_failed"
    assert _wait_log(api, "romana: not binding port %s on host h1: network %s has no flat "
                          "or local segment" % (port["id"], net["id"]))


def test_other_vnic_types_are_not_bound(api, romana_net):
    net, _ = romana_net
    port = create_port(api, net, project(), host="h1", **{"binding:vnic_type": "direct"})
    assert port["binding:vif_type"] == "binding_failed"
    assert _wait_log(api, "vnic_type direct is not supported")


def test_segments_plugin_host_less_port_then_bound(seg_api, seg_romana_net, romana_view):
    """ML2 + service_plugins = segments: Neutron's own deferred allocation path (the
    segments plugin's extender), with the romana driver binding."""
    net, sub = seg_romana_net
    aliases = {e["alias"] for e in
               ns.expect(seg_api.get("/v2.0/extensions"), 200)["extensions"]}
    assert "ip_allocation" in aliases and "segment" in aliases
    p = project()
    created = create_port(seg_api, net, p)
    assert created["fixed_ips"] == []
    assert created["ip_allocation"] == "deferred"
    assert romana_view.endpoints_of_port(created["id"]) == []
    bound = bind(seg_api, created["id"], "h1")
    [ip] = bound["fixed_ips"]
    assert ip["subnet_id"] == sub["id"]
    assert ipaddress.ip_address(ip["ip_address"]) in romana_view.expected_cidr("h1", p)
    assert bound["binding:vif_type"] == "tap"
    assert bound["binding:vif_details"] == TAP_DETAILS
    [ep] = romana_view.endpoints_of_port(created["id"])
    assert ep.address == ip["ip_address"] and ep.host == "h1"


def test_policy_override_lets_admins_set_binding_profile(seg_api, seg_romana_net, romana,
                                                         romana_view):
    """The README's policy snippet (installed on this server) lets an admin without the
    service role set binding:profile romana_segment."""
    net, _ = seg_romana_net
    p = project()
    create_port(seg_api, net, p, host="h2")
    romana.romanactl("segment", "add", p, "db")
    r = seg_api.post("/v2.0/ports", port_body(net, p, host="h2",
                                              profile={"romana_segment": "db"}))
    port = ns.expect(r, 201)["port"]
    assert port["binding:profile"] == {"romana_segment": "db"}
    assert ipaddress.ip_address(port["fixed_ips"][0]["ip_address"]) in \
        romana_view.expected_cidr("h2", p, "db")
