"""Address requests against real services: any, fixed IPs, DHCP ports, deallocate and reuse,
Neutron's rollback, unknown hosts, deferred allocation, router ports, tenants, segments."""

import ipaddress

import pytest
from neutron.db.ipam_pluggable_backend import IpamPluggableBackend
from neutron.ipam import exceptions as ipam_exc
from neutron.ipam import requests as ipam_req
from neutron_lib import constants
from neutron_lib import exceptions as n_exc

from conftest import Neutron, project
from romana_neutron_ipam import pb
from romana_neutron_ipam.driver import LABEL_OWNER, LABEL_PROJECT, LABEL_SUBNET, label_value


def _ip(a):
    return ipaddress.ip_address(a)


def test_any_address_lands_in_the_host_tenant_segment_cidr(neutron, space_subnet):
    proj = project()
    port = neutron.port(proj, host="h1")
    address = neutron.allocate(port, space_subnet)
    assert isinstance(address, str)
    cidr = neutron.expected_cidr("h1", proj)
    assert _ip(address) in cidr
    # Endpoint numbers 0 and 1 are reserved: the first port gets .2 of its segment.
    assert _ip(address) == cidr.network_address + 2
    [ep] = neutron.endpoints_of_port(port["id"])
    assert (ep.address, ep.host, ep.tenant, ep.segment) == (address, "h1", proj, "default")
    assert ep.labels[LABEL_SUBNET] == space_subnet["id"]
    assert ep.labels[LABEL_PROJECT] == proj
    # Neutron's "compute:nova", as a Kubernetes label value.
    assert ep.labels[LABEL_OWNER] == "compute_nova"


def test_the_endpoint_names_novas_tap_for_the_agent(neutron, space_subnet):
    """The host's agent wires the device Nova creates for the port, tap + 11 characters of
    the port id, so the endpoint record carries that name."""
    port = neutron.port(project(), host="h1")
    neutron.allocate(port, space_subnet)
    [ep] = neutron.endpoints_of_port(port["id"])
    assert ep.interface == "tap" + port["id"][:11]
    assert len(ep.interface) == 14


def test_same_port_same_request_is_idempotent(neutron, space_subnet):
    port = neutron.port(project(), host="h1")
    first = neutron.allocate(port, space_subnet)
    assert neutron.allocate(port, space_subnet) == first
    assert len(neutron.endpoints_of_port(port["id"])) == 1


def test_tenant_is_created_on_first_use_with_its_default_segment(neutron, space_subnet):
    proj = project()
    neutron.allocate(neutron.port(proj, host="h2"), space_subnet)
    t = neutron.cluster.tenants().GetTenant(pb.tenant.GetTenantRequest(name=proj), timeout=5)
    assert t.name == proj
    assert t.labels[LABEL_PROJECT] == proj


def test_unknown_project_refused_when_tenant_creation_is_off(neutron, space_subnet):
    neutron.set(create_tenants=False)
    proj = project()
    with pytest.raises(ipam_exc.IpamValueInvalid) as e:
        neutron.allocate(neutron.port(proj, host="h1"), space_subnet)
    assert "romanactl tenant add %s" % proj in str(e.value)
    assert neutron.endpoints(tenant=proj) == []


def test_segment_comes_from_binding_profile(neutron, space_subnet):
    proj = project()
    neutron.allocate(neutron.port(proj, host="h1"), space_subnet)  # creates the tenant
    neutron.cluster.tenants().AddSegment(pb.tenant.AddSegmentRequest(tenant=proj, name="web"),
                                         timeout=5)
    port = neutron.port(proj, host="h1", profile={"romana_segment": "web"})
    address = neutron.allocate(port, space_subnet)
    assert _ip(address) in neutron.expected_cidr("h1", proj, "web")
    [ep] = neutron.endpoints_of_port(port["id"])
    assert ep.segment == "web"


def test_unknown_segment_refused_or_created(neutron, space_subnet):
    proj = project()
    port = neutron.port(proj, host="h1", profile={"romana_segment": "nope"})
    with pytest.raises(ipam_exc.IpamValueInvalid) as e:
        neutron.allocate(port, space_subnet)
    assert "segment nope" in str(e.value) and "romanactl segment add" in str(e.value)
    neutron.set(create_segments=True)
    address = neutron.allocate(port, space_subnet)
    assert _ip(address) in neutron.expected_cidr("h1", proj, "nope")


def test_dhcp_port_gets_prefer_next_on_its_agent_host(neutron, space_subnet):
    proj = project()
    dhcp = neutron.port(proj, host="h2", device_owner=constants.DEVICE_OWNER_DHCP)
    req = neutron.request(dhcp, {"subnet_id": space_subnet["id"]})
    assert type(req) is ipam_req.PreferNextAddressRequest
    address = neutron.allocate(dhcp, space_subnet)
    cidr = neutron.expected_cidr("h2", proj)
    assert _ip(address) == cidr.network_address + 2
    [ep] = neutron.endpoints_of_port(dhcp["id"])
    assert ep.labels[LABEL_OWNER] == label_value(constants.DEVICE_OWNER_DHCP) == "network_dhcp"


def test_specific_address_inside_the_segment(neutron, space_subnet):
    proj = project()
    neutron.allocate(neutron.port(proj, host="h1"), space_subnet)
    cidr = neutron.expected_cidr("h1", proj)
    wanted = str(cidr.network_address + 77)
    port = neutron.port(proj, host="h1",
                        fixed_ips=[{"subnet_id": space_subnet["id"], "ip_address": wanted}])
    req = neutron.request(port, {"subnet_id": space_subnet["id"], "ip_address": wanted})
    assert type(req) is ipam_req.SpecificAddressRequest
    assert neutron.allocate(port, space_subnet, wanted) == wanted
    # Repeated (a retry, a rollback re-allocation): same answer, no error.
    assert neutron.allocate(port, space_subnet, wanted) == wanted
    [ep] = neutron.endpoints_of_port(port["id"])
    assert ep.address == wanted and ep.host == "h1"


def test_specific_address_outside_the_segment(neutron, space_subnet):
    proj = project()
    neutron.allocate(neutron.port(proj, host="h1"), space_subnet)
    other_host = neutron.expected_cidr("h2", proj)
    wrong = str(other_host.network_address + 9)
    port = neutron.port(proj, host="h1")
    with pytest.raises(ipam_exc.InvalidIpForSubnet) as e:
        neutron.allocate(port, space_subnet, wrong)
    assert wrong in str(e.value) and "outside" in str(e.value)
    # Reserved addresses: network (.0) and gateway (.1) of the segment, IPv4 broadcast.
    cidr = neutron.expected_cidr("h1", proj)
    for reserved in (cidr.network_address, cidr.network_address + 1, cidr.broadcast_address):
        with pytest.raises(ipam_exc.InvalidIpForSubnet):
            neutron.allocate(port, space_subnet, str(reserved))
    assert neutron.endpoints_of_port(port["id"]) == []


def test_specific_address_taken(neutron, space_subnet):
    proj = project()
    a = neutron.allocate(neutron.port(proj, host="h1"), space_subnet)
    other = neutron.port(proj, host="h1")
    with pytest.raises(ipam_exc.IpAddressAlreadyAllocated) as e:
        neutron.allocate(other, space_subnet, a)
    assert a in str(e.value)
    assert neutron.endpoints_of_port(other["id"]) == []


def test_specific_address_of_an_unbound_port_must_be_its_own_tenant(neutron, space_subnet):
    """A fixed IP on a port without binding:host_id is placed by the address alone, and
    must belong to the port's own tenant and segment."""
    mine, theirs = project(), project()
    neutron.allocate(neutron.port(mine, host="h1"), space_subnet)
    neutron.allocate(neutron.port(theirs, host="h1"), space_subnet)
    own = str(neutron.expected_cidr("h3", mine).network_address + 5)
    port = neutron.port(mine)  # not bound yet
    assert neutron.allocate(port, space_subnet, own) == own
    [ep] = neutron.endpoints_of_port(port["id"])
    assert ep.host == "h3" and ep.tenant == mine
    foreign = str(neutron.expected_cidr("h3", theirs).network_address + 5)
    port2 = neutron.port(mine)
    with pytest.raises(ipam_exc.InvalidIpForSubnet) as e:
        neutron.allocate(port2, space_subnet, foreign)
    assert "tenant %s" % theirs in str(e.value)
    assert neutron.endpoints_of_port(port2["id"]) == []
    assert neutron.endpoints(tenant=theirs, host="h3") == []


def test_deallocate_then_reuse(neutron, space_subnet):
    proj = project()
    p1 = neutron.port(proj, host="h2")
    a = neutron.allocate(p1, space_subnet)
    neutron.deallocate(space_subnet, a)
    assert neutron.endpoints_of_port(p1["id"]) == []
    listed = [e["address"] for e in neutron.cluster.endpoints_json()]
    assert a not in listed
    # The lowest free address again, for another port.
    p2 = neutron.port(proj, host="h2")
    assert neutron.allocate(p2, space_subnet) == a
    # Deallocating something that is not allocated is harmless.
    neutron.deallocate(space_subnet, str(_ip(a) + 100))


def test_deallocate_never_frees_someone_elses_address(neutron, space_subnet):
    """Neutron's view may be stale; an address now held by a non-Neutron endpoint (a
    Kubernetes pod, say) stays with its holder."""
    proj = project()
    neutron.allocate(neutron.port(proj, host="h1"), space_subnet)
    pod = neutron.cluster.ipam().Allocate(pb.ipam.AllocateRequest(
        endpoint="pod-abc-eth0", host="h1", tenant=proj, labels={"app": "web"}), timeout=5)
    neutron.deallocate(space_subnet, pod.address)
    ep = neutron.cluster.ipam().GetEndpoint(pb.ipam.GetEndpointRequest(
        endpoint="pod-abc-eth0"), timeout=5)
    assert ep.address == pod.address and ep.labels["app"] == "web"


def test_deallocate_never_frees_another_subnets_port(neutron, space_subnet):
    """The address went to a port of another Neutron subnet over the same space (Neutron's
    view of the first subnet is stale): the release is refused inside Romana's own
    transaction, so that port keeps it; nothing is released and re-allocated."""
    proj = project()
    other_subnet = neutron.create_subnet(str(ipaddress.ip_network(space_subnet["cidr"])),
                                         proj)
    port = neutron.port(proj, host="h2")
    taken = neutron.allocate(port, other_subnet)
    [before] = neutron.endpoints_of_port(port["id"])
    created = neutron.cluster.etcd_create_revision("endpoints/" + before.id)
    neutron.deallocate(space_subnet, taken)
    [after] = neutron.endpoints_of_port(port["id"])
    assert after.id == before.id and after.address == taken
    assert after.labels[LABEL_SUBNET] == other_subnet["id"]
    # The very same record: never released and put back.
    assert neutron.cluster.etcd_create_revision("endpoints/" + after.id) == created
    # Its own subnet releases it.
    neutron.deallocate(other_subnet, taken)
    assert neutron.endpoints_of_port(port["id"]) == []


def test_rollback_after_a_failed_allocate(neutron, space_subnet):
    """Neutron's own _ipam_allocate_ips: the second IP of a port fails (taken), so Neutron
    rolls back the first through deallocate; nothing stays allocated."""
    proj = project()
    taken = neutron.allocate(neutron.port(proj, host="h1"), space_subnet)
    port = neutron.port(proj, host="h1")
    ips = [{"subnet_id": space_subnet["id"]},
           {"subnet_id": space_subnet["id"], "ip_address": taken}]
    backend = IpamPluggableBackend()
    with pytest.raises(ipam_exc.IpAddressAlreadyAllocated):
        backend._ipam_allocate_ips(neutron.ctx, neutron.pool(), port, ips)
    assert neutron.endpoints_of_port(port["id"]) == []
    # The same port allocates cleanly afterwards.
    good = backend._ipam_allocate_ips(neutron.ctx, neutron.pool(), port,
                                      [{"subnet_id": space_subnet["id"]}])
    assert len(good) == 1
    assert [e.address for e in neutron.endpoints_of_port(port["id"])] == \
        [good[0]["ip_address"]]
    # And Neutron's delete_port path releases it.
    backend._ipam_deallocate_ips(neutron.ctx, neutron.pool(), port, good)
    assert neutron.endpoints_of_port(port["id"]) == []


def test_port_update_adds_a_second_automatic_address(neutron, space_subnet):
    """Port update hands the factory the port with its current fixed IPs; another
    automatic address on the same subnet is a new one, not the one the port has."""
    proj = project()
    port = neutron.port(proj, host="h1")
    first = neutron.allocate(port, space_subnet)
    port["fixed_ips"] = [{"subnet_id": space_subnet["id"], "ip_address": first}]
    second = neutron.allocate(port, space_subnet)
    assert second != first
    assert sorted(e.address for e in neutron.endpoints_of_port(port["id"])) == \
        sorted([first, second], key=_ip)


def test_unknown_host(neutron, space_subnet):
    proj = project()
    port = neutron.port(proj, host="no-such-host")
    with pytest.raises(ipam_exc.IpamValueInvalid) as e:
        neutron.allocate(port, space_subnet)
    assert "no-such-host" in str(e.value) and "romanactl host add" in str(e.value)
    assert neutron.endpoints_of_port(port["id"]) == []


def test_unbound_port_defers_allocation(neutron, space_subnet):
    """No binding:host_id yet: Neutron creates the port with ip_allocation=deferred and
    allocates when Nova binds it to a host."""
    port = neutron.port(project())
    with pytest.raises(ipam_exc.DeferIpam):
        neutron.allocate(port, space_subnet)
    with pytest.raises(ipam_exc.DeferIpam):
        IpamPluggableBackend()._ipam_allocate_ips(neutron.ctx, neutron.pool(), port,
                                                  [{"subnet_id": space_subnet["id"]}])
    port["binding:host_id"] = "h2"
    assert neutron.allocate(port, space_subnet)


@pytest.mark.parametrize("owner", [constants.DEVICE_OWNER_ROUTER_INTF,
                                   constants.DEVICE_OWNER_DVR_INTERFACE,
                                   constants.DEVICE_OWNER_ROUTER_GW])
def test_router_ports_are_refused(neutron, space_subnet, owner):
    port = neutron.port(project(), host="h1", device_owner=owner)
    with pytest.raises(ipam_exc.IpamValueInvalid) as e:
        neutron.allocate(port, space_subnet, space_subnet["gateway_ip"])
    assert "router" in str(e.value)
    assert neutron.endpoints_of_port(port["id"]) == []


def test_request_without_port_facts_is_refused_clearly(neutron, space_subnet):
    req = ipam_req.AnyAddressRequest()
    with pytest.raises(ipam_exc.IpamValueInvalid) as e:
        neutron.pool().get_subnet(space_subnet["id"]).allocate(req)
    assert "get_address_request_factory" in str(e.value)


def test_subnet_group_tries_the_next_subnet(neutron, space_subnet):
    """get_allocator with two subnets: an unknown (deleted) subnet id first is skipped only
    for exhaustion; here the first one serves."""
    other = neutron.create_subnet("10.0.0.0/8")
    port = neutron.port(project(), host="h3")
    pool = neutron.pool()
    req = neutron.request(port, {"subnet_id": space_subnet["id"]}, pool)
    address, subnet_id = pool.get_allocator([space_subnet["id"], other["id"]]).allocate(req)
    assert subnet_id == space_subnet["id"]
    assert neutron.endpoints_of_port(port["id"])[0].address == address


def test_port_without_project_falls_back_to_the_subnet_project(neutron):
    owner = project()
    subnet = neutron.create_subnet("10.0.0.0/8", project_id=owner)
    port = neutron.port("", host="h1", device_owner=constants.DEVICE_OWNER_DHCP)
    address = neutron.allocate(port, subnet)
    [ep] = neutron.endpoints_of_port(port["id"])
    assert ep.tenant == owner and ep.address == address


def _api_error(exc):
    """What Neutron's API layer answers for an exception: (status, body type)."""
    import json

    from neutron.api import api_common
    from neutron_lib.api import faults

    http = api_common.convert_exception_to_http_exc(exc, faults.FAULT_MAP, None)
    return http.code, json.loads(http.body)["NeutronError"]["type"]


def _neutron_names():
    from neutron.ipam import exceptions as ipam_exceptions
    from webob import exc as webob_exc

    return {n for mod in (n_exc, ipam_exceptions, webob_exc) for n in dir(mod)}


def test_errors_are_neutron_api_errors(neutron, space_subnet):
    """Every error a client sees carries Neutron's own type name (clients match on it:
    python-neutronclient's IpAddressAlreadyAllocatedClient) and Neutron's status."""
    from romana_neutron_ipam import errors

    proj = project()
    a = neutron.allocate(neutron.port(proj, host="h1"), space_subnet)
    seen = []
    with pytest.raises(n_exc.Conflict) as e:
        neutron.allocate(neutron.port(proj, host="h1"), space_subnet, a)
    seen.append((e.value, 409, "IpAddressAlreadyAllocated"))
    with pytest.raises(n_exc.BadRequest) as e:
        neutron.allocate(neutron.port(proj, host="h1"), space_subnet,
                         str(neutron.expected_cidr("h2", proj).network_address + 3))
    seen.append((e.value, 400, "InvalidIpForSubnet"))
    with pytest.raises(n_exc.Conflict) as e:
        neutron.allocate(neutron.port(proj, host="nosuchhost"), space_subnet)
    seen.append((e.value, 409, "IpamValueInvalid"))
    # The ones that need a full segment or an outage to happen, built as the driver does.
    seen.append((errors.IpAddressGenerationFailure(subnet_id="s", reason="full"), 409,
                 "IpAddressGenerationFailure"))
    seen.append((errors.unavailable("ipam-service", "down"), 503, "ServiceUnavailable"))
    seen.append((errors.InvalidSubnetRequest(reason="x"), 400, "InvalidSubnetRequest"))
    seen.append((errors.invalid_address_type("eui-64"), 500, "InvalidAddressType"))
    # Anything else: Neutron's generic 500, with Romana's answer only in the log.
    seen.append((errors.RomanaError(reason="odd"), 500, "HTTPInternalServerError"))
    names = _neutron_names()
    for exc, status, name in seen:
        assert _api_error(exc) == (status, name), exc
        assert name in names
    # No class the driver can raise has a name of its own.
    for cls in vars(errors).values():
        if isinstance(cls, type) and issubclass(cls, n_exc.NeutronException):
            assert cls.__name__ in names, cls


def test_two_neutron_views(cluster, space_subnet):
    """Two pools (two neutron-server workers) see the same subnet and allocations."""
    a, b = Neutron(cluster), Neutron(cluster)
    port = a.port(project(), host="h1")
    x = a.allocate(port, space_subnet)
    assert b.allocate(port, space_subnet) == x
