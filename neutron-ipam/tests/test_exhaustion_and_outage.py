"""A tiny layout (13 usable addresses a segment, 16 tenants) for exhaustion, and service
outages: ipam-service stopped, killed, moved; root stopped."""

import signal
import threading
import time

import pytest
from neutron.db.ipam_pluggable_backend import IpamPluggableBackend
from neutron.ipam import exceptions as ipam_exc
from neutron_lib import exceptions as n_exc
from neutron_lib.db import api as db_api
from oslo_db import exception as db_exc

from conftest import TINY_LAYOUT, Neutron, project
from cluster import free_port
from romana_neutron_ipam import errors, pb

USABLE = 13


@pytest.fixture
def tiny(tiny_cluster):
    return Neutron(tiny_cluster, retry_seconds=1.5, timeout=2.0)


@pytest.fixture
def tiny_subnet(tiny):
    return tiny.create_subnet(TINY_LAYOUT["address_space"])


def test_exhaustion(tiny, tiny_subnet):
    proj = project()
    got = [tiny.allocate(tiny.port(proj, host="t1"), tiny_subnet) for _ in range(USABLE)]
    assert len(set(got)) == USABLE
    cidr = tiny.expected_cidr("t1", proj)
    assert all(__import__("ipaddress").ip_address(a) in cidr for a in got)
    full = tiny.port(proj, host="t1")
    pool = tiny.pool()
    req = tiny.request(full, {"subnet_id": tiny_subnet["id"]}, pool)
    with pytest.raises(ipam_exc.IpAddressGenerationFailure) as e:
        pool.get_subnet(tiny_subnet["id"]).allocate(req)
    assert "full" in str(e.value)
    with pytest.raises(ipam_exc.IpAddressGenerationFailureAllSubnets):
        pool.get_allocator([tiny_subnet["id"]]).allocate(req)
    # Through Neutron's backend: its usual "No more IP addresses available on network".
    with pytest.raises(n_exc.IpAddressGenerationFailure):
        IpamPluggableBackend()._ipam_allocate_ips(tiny.ctx, pool, full,
                                                  [{"subnet_id": tiny_subnet["id"]}])
    assert tiny.endpoints_of_port(full["id"]) == []
    # Another host has its own CIDR for the same tenant and segment.
    assert tiny.allocate(tiny.port(proj, host="t2"), tiny_subnet)
    # Freeing one makes room again.
    tiny.deallocate(tiny_subnet, got[5])
    assert tiny.allocate(full, tiny_subnet) == got[5]


def test_no_free_tenant_number(tiny, tiny_subnet):
    existing = len(tiny.cluster.tenants().ListTenants(pb.tenant.ListTenantsRequest(),
                                                      timeout=5).tenants)
    for _ in range(16 - existing):
        tiny.allocate(tiny.port(project(), host="t1"), tiny_subnet)
    with pytest.raises(ipam_exc.IpamValueInvalid) as e:
        tiny.allocate(tiny.port(project(), host="t1"), tiny_subnet)
    assert "no free tenant number" in str(e.value)


def _proj_with_tenant(tiny, tiny_subnet):
    """A project whose tenant exists (the tenant numbers may all be used by now)."""
    tenants = tiny.cluster.tenants().ListTenants(pb.tenant.ListTenantsRequest(),
                                                 timeout=5).tenants
    return tenants[-1].name


def _assert_retriable(exc_info):
    assert db_api.is_retriable(exc_info.value)
    inner = errors.unavailable_reason(exc_info.value)
    assert isinstance(inner, n_exc.ServiceUnavailable)
    return inner


def test_ipam_down_then_up(tiny, tiny_subnet):
    c = tiny.cluster
    proj = _proj_with_tenant(tiny, tiny_subnet)
    port = tiny.port(proj, host="t2")
    c.stop_service("ipam")  # SIGTERM: drains and deregisters
    started = time.monotonic()
    with pytest.raises(db_exc.RetryRequest) as e:
        tiny.allocate(port, tiny_subnet)
    inner = _assert_retriable(e)
    assert "ipam-service" in str(inner)
    assert time.monotonic() - started < 10
    c.start_service("ipam")
    c.wait_registered(["ipam"])
    address = tiny.allocate(port, tiny_subnet)
    # Nothing half-allocated by the failed attempt: one endpoint, the one Neutron has.
    assert [ep.address for ep in tiny.endpoints_of_port(port["id"])] == [address]
    # Deallocate while down is retriable too, and works once it is back.
    c.stop_service("ipam")
    with pytest.raises(db_exc.RetryRequest) as e:
        tiny.deallocate(tiny_subnet, address)
    _assert_retriable(e)
    c.start_service("ipam")
    c.wait_registered(["ipam"])
    tiny.deallocate(tiny_subnet, address)
    assert tiny.endpoints_of_port(port["id"]) == []


def test_ipam_killed_and_moved_to_another_port(tiny, tiny_subnet):
    """SIGKILL leaves a stale registration until its lease expires; the replacement runs
    on a new port. The driver skips the dead URL and finds the new one through root."""
    c = tiny.cluster
    proj = _proj_with_tenant(tiny, tiny_subnet)
    before = tiny.allocate(tiny.port(proj, host="t2"), tiny_subnet)  # warm the cache
    c.stop_service("ipam", signal.SIGKILL)
    c.start_service("ipam", port=free_port())
    c.wait_registered(["ipam"])
    tiny.set(retry_seconds=5.0)
    port = tiny.port(proj, host="t2")
    address = tiny.allocate(port, tiny_subnet)
    assert address != before
    assert [ep.address for ep in tiny.endpoints_of_port(port["id"])] == [address]


def test_neutron_retries_until_ipam_is_back(tiny, tiny_subnet):
    """The retriable error makes Neutron's own retry decorator run the request again."""
    c = tiny.cluster
    proj = _proj_with_tenant(tiny, tiny_subnet)
    port = tiny.port(proj, host="t1")
    tiny.set(retry_seconds=0.3)
    calls = []

    @db_api.retry_db_errors
    def create_port_ips():
        calls.append(1)
        return IpamPluggableBackend()._ipam_allocate_ips(
            tiny.ctx, tiny.pool(), port, [{"subnet_id": tiny_subnet["id"]}])

    c.stop_service("ipam")
    restarter = threading.Timer(1.5, lambda: c.start_service("ipam"))
    restarter.start()
    try:
        [got] = create_port_ips()
    finally:
        restarter.join()
        c.wait_registered(["ipam"])
    assert len(calls) > 1
    assert [ep.address for ep in tiny.endpoints_of_port(port["id"])] == [got["ip_address"]]


def test_root_down(tiny, tiny_subnet):
    """Known ipam-service instances keep serving while root is down; what needs root
    (discovery, the layout for a new subnet) is retriable."""
    c = tiny.cluster
    proj = _proj_with_tenant(tiny, tiny_subnet)
    tiny.allocate(tiny.port(proj, host="t1"), tiny_subnet)  # discovery cached
    c.stop_service("root")
    try:
        port = tiny.port(proj, host="t2")
        assert tiny.allocate(port, tiny_subnet)
        with pytest.raises(db_exc.RetryRequest) as e:
            tiny.create_subnet(TINY_LAYOUT["address_space"])
        assert "root" in str(_assert_retriable(e))
    finally:
        c.start_service("root")
        c.wait_registered(["root", "ipam", "tenant"])
    assert tiny.create_subnet(TINY_LAYOUT["address_space"])
