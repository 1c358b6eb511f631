"""ML2 with neither the romana mechanism driver nor the segments service plugin (here:
Open vSwitch and the Romana IPAM driver): a port created without a host never gets an
address, even once bound, and the IPAM driver must say so in neutron-server's log."""

import time

import pytest

from conftest import SPACE, bind, create_port, make_network, make_subnet, project

PROBLEM = "will never get an address from Romana"


class DriverDoesNotWarn(AssertionError):
    """The IPAM driver does not (yet) call romana_neutron_ipam.deferred.warn_once()."""


@pytest.fixture(scope="module")
def bare_api(servers):
    return servers.get("bare")


@pytest.fixture(scope="module")
def bare_net(bare_api):
    net = make_network(bare_api, name="bare", shared=True, network_type="flat",
                       physical_network="bare")
    return net, make_subnet(bare_api, net, SPACE)  # the IPAM driver's first use


def test_host_less_port_never_gets_an_address(bare_api, bare_net, romana_view):
    net, _ = bare_net
    port = create_port(bare_api, net, project())
    assert port["fixed_ips"] == []
    bound = bind(bare_api, port["id"], "h1")
    # Neutron does not allocate on binding: the port dict carries no ip_allocation.
    assert bound["fixed_ips"] == []
    assert romana_view.endpoints_of_port(port["id"]) == []


def test_the_ipam_driver_logs_the_misconfiguration_once(bare_api, bare_net):
    deadline = time.monotonic() + 5
    while PROBLEM not in bare_api.log_text() and time.monotonic() < deadline:
        time.sleep(0.2)
    log = bare_api.log_text()
    if PROBLEM not in log:
        raise DriverDoesNotWarn("no %r in neutron-server's log" % PROBLEM)
    line = next(line for line in log.splitlines() if PROBLEM in line)
    assert " ERROR romana_neutron_ipam.deferred " in line
    assert "'romana' to [ml2] mechanism_drivers" in line
    assert "'segments' to [DEFAULT] service_plugins" in line
    # Once per process at most, however many requests used the driver.
    create_port(bare_api, bare_net[0], project())
    assert bare_api.log_text().count(PROBLEM) <= bare_api.processes


def test_no_such_error_where_deferred_allocation_works(api, seg_api, romana_net,
                                                      seg_romana_net):
    # Both have served ports (the fixtures created subnets through the driver).
    create_port(api, romana_net[0], project())
    create_port(seg_api, seg_romana_net[0], project())
    assert PROBLEM not in api.log_text()
    assert PROBLEM not in seg_api.log_text()
