"""A bound port goes ACTIVE once a real romana-agent has routed it to its tap device.

The agent runs as a process of its own that talks to the test cluster's etcd on
127.0.0.1 and programs the kernel of a network namespace of its own (``--netns``), which
stands for the compute host. The test plays Nova's libvirt driver: it creates the tap
device ``tap<first 11 characters of the port id>`` in that namespace, as Nova does when
it plugs a ``vif_type = tap`` VIF. Nothing is faked in etcd: the port can only go ACTIVE
when the agent itself reports the route in its host status.
"""

import ipaddress
import time

import pytest

from compute import ip
from conftest import create_port, project, show_port

ACTIVE_WITHIN = 30.0


class AgentDoesNotRouteTaps(AssertionError):
    """The agent routes the port's address, but not to the tap device Nova creates."""


@pytest.fixture(scope="module")
def agent_host(compute):
    host = compute.names[0]
    return host, compute.netns[host], compute.agents[host]


def _mentions(routes, address):
    return [r for r in routes if r.split() and r.split()[0].split("/")[0] == address]


def test_port_goes_active_once_the_agent_routes_its_tap(api, romana_net, agent_host,
                                                        romana_view):
    host, netns, agent = agent_host
    net, _ = romana_net
    p = project()
    port = create_port(api, net, p, host=host)
    assert port["binding:vif_type"] == "tap"
    assert port["status"] == "DOWN"
    address = port["fixed_ips"][0]["ip_address"]
    assert ipaddress.ip_address(address) in romana_view.expected_cidr(host, p)
    tap = ("tap" + port["id"])[:14]

    # No tap device yet (Nova has not plugged the VIF): nothing can be routed to it, the
    # port stays DOWN through a few polls of the watcher (every 2 s).
    time.sleep(5)
    assert show_port(api, port["id"])["status"] == "DOWN"

    # Nova's libvirt driver plugs the VIF: the tap device appears on the host.
    ip("tuntap", "add", "dev", tap, "mode", "tap", netns=netns)
    ip("link", "set", tap, "up", netns=netns)

    deadline = time.monotonic() + ACTIVE_WITHIN
    status = None
    while time.monotonic() < deadline:
        status = show_port(api, port["id"])["status"]
        if status == "ACTIVE":
            break
        time.sleep(0.5)
    st = romana_view.host_status(host)
    if status != "ACTIVE":
        seen = _mentions(list(st.routes) + list(st.blocked), address)
        wrong = [r for r in seen if (" dev %s" % tap) not in r]
        if wrong:
            raise AgentDoesNotRouteTaps(
                "the agent routes %s as %r, not to %s; the port stays %s"
                % (address, wrong, tap, status))
        pytest.fail("port %s still %s after %.0fs; agent status: reported=%s alive_at=%s "
                    "routes=%s blocked=%s problems=%s\n%s"
                    % (port["id"], status, ACTIVE_WITHIN, st.reported, st.alive_at,
                       list(st.routes), list(st.blocked), list(st.problems), agent.tail()))
    assert "%s/32 dev %s" % (address, tap) in " | ".join(st.routes) or any(
        r.split()[0] in (address, address + "/32") and " dev %s" % tap in r
        for r in st.routes)
    assert "romana: port %s is wired on host %s" % (port["id"], host) in api.log_text()
