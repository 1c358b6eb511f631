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

from conftest import TINY_LAYOUT, Neutron, project
from cluster import free_port
from romana_neutron_ipam import pb

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


def _assert_unavailable(exc_info, what):
    """A 503 with Neutron's own type name, which Neutron's retry decorator does not rerun."""
    e = exc_info.value
    assert type(e).__name__ == "ServiceUnavailable"
    assert isinstance(e, n_exc.ServiceUnavailable)
    assert not db_api.is_retriable(e)
    assert what in str(e)


def test_ipam_down_then_up(tiny, tiny_subnet):
    c = tiny.cluster
    proj = _proj_with_tenant(tiny, tiny_subnet)
    port = tiny.port(proj, host="t2")
    c.stop_service("ipam")  # SIGTERM: drains and deregisters
    started = time.monotonic()
    with pytest.raises(n_exc.ServiceUnavailable) as e:
        tiny.allocate(port, tiny_subnet)
    _assert_unavailable(e, "ipam-service")
    assert time.monotonic() - started < 10
    c.start_service("ipam")
    c.wait_registered(["ipam"])
    address = tiny.allocate(port, tiny_subnet)
    # Nothing half-allocated by the failed attempt: one endpoint, the one Neutron has.
    assert [ep.address for ep in tiny.endpoints_of_port(port["id"])] == [address]
    # Deallocate while down is a 503 too, and works once it is back.
    c.stop_service("ipam")
    with pytest.raises(n_exc.ServiceUnavailable) as e:
        tiny.deallocate(tiny_subnet, address)
    _assert_unavailable(e, "ipam-service")
    c.start_service("ipam")
    c.wait_registered(["ipam"])
    tiny.deallocate(tiny_subnet, address)
    assert tiny.endpoints_of_port(port["id"]) == []


@pytest.mark.parametrize("how", ["stopped", "frozen"])
def test_an_outage_answers_503_once_within_the_retry_budget(tiny, tiny_subnet, how):
    """Through Neutron's own retry decorator, as a port create runs: one attempt, a 503
    after about retry_seconds (+ one call timeout when the service hangs), not minutes;
    nothing left behind."""
    c = tiny.cluster
    proj = _proj_with_tenant(tiny, tiny_subnet)
    port = tiny.port(proj, host="t1")
    tiny.set(retry_seconds=2.0, timeout=1.0)
    calls = []

    @db_api.retry_db_errors
    def create_port_ips():
        calls.append(1)
        return IpamPluggableBackend()._ipam_allocate_ips(
            tiny.ctx, tiny.pool(), port, [{"subnet_id": tiny_subnet["id"]}])

    if how == "stopped":
        c.stop_service("ipam")
    else:
        c.signal_service("ipam", signal.SIGSTOP)
    started = time.monotonic()
    try:
        with pytest.raises(n_exc.ServiceUnavailable) as e:
            create_port_ips()
        took = time.monotonic() - started
    finally:
        if how == "stopped":
            c.start_service("ipam")
        else:
            c.signal_service("ipam", signal.SIGCONT)
        c.wait_registered(["ipam"])
    _assert_unavailable(e, "ipam-service")
    assert len(calls) == 1
    assert took < 2.0 + 1.0 + 1.5, took
    assert tiny.endpoints_of_port(port["id"]) == []


def test_a_blip_shorter_than_retry_seconds_is_ridden_out(tiny, tiny_subnet):
    """The driver's own retries cover a restart: the request succeeds, once."""
    c = tiny.cluster
    proj = _proj_with_tenant(tiny, tiny_subnet)
    port = tiny.port(proj, host="t1")
    tiny.set(retry_seconds=8.0)
    c.stop_service("ipam")
    restarter = threading.Timer(1.0, lambda: c.start_service("ipam"))
    restarter.start()
    try:
        address = tiny.allocate(port, tiny_subnet)
    finally:
        restarter.join()
        c.wait_registered(["ipam"])
    assert [ep.address for ep in tiny.endpoints_of_port(port["id"])] == [address]


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


def test_root_down(tiny, tiny_subnet):
    """Known ipam-service instances keep serving while root is down; what needs root
    (discovery, the layout for a new subnet) answers 503."""
    c = tiny.cluster
    proj = _proj_with_tenant(tiny, tiny_subnet)
    tiny.allocate(tiny.port(proj, host="t1"), tiny_subnet)  # discovery cached
    c.stop_service("root")
    try:
        port = tiny.port(proj, host="t2")
        assert tiny.allocate(port, tiny_subnet)
        with pytest.raises(n_exc.ServiceUnavailable) as e:
            tiny.create_subnet(TINY_LAYOUT["address_space"])
        _assert_unavailable(e, "root")
    finally:
        c.start_service("root")
        c.wait_registered(["root", "ipam", "tenant"])
    assert tiny.create_subnet(TINY_LAYOUT["address_space"])
