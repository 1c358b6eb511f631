"""The whole Nova-shaped life of a VM port, through Neutron's REST API only, with traffic.

Nova creates the port without a host, binds it to the compute host it schedules the VM on,
plugs the tap (libvirt), waits for ``network-vif-plugged`` (the port going ACTIVE), and at
the end deletes the port. In between the VM talks to a pod of its own project on another
host, made by the real romana-cni, through both hosts' real agents and no overlay; a pod
of another project is unreachable both ways. Deleting the port releases the address in
Romana and the agent unwires the tap, so the VM is cut off.
"""

import ipaddress
import time

from conftest import bind, create_port, delete_port, project, show_port

ACTIVE_WITHIN = 30.0
UNWIRED_WITHIN = 15.0


def _wait(what, within, check):
    deadline = time.monotonic() + within
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, "timed out after %.0fs waiting for %s" % (
            within, what)
        time.sleep(0.25)


def _routes_to(status, address):
    return [r for r in status.routes if r.split()[0] in (address, address + "/32")]


def test_a_vm_port_from_create_to_delete_with_traffic_under_isolation(
        api, romana_net, romana, romana_view, compute):
    vm_host, pod_host = compute.names
    net, _ = romana_net
    mine, other = project(), project()

    # 1. Nova creates the port before scheduling: no host, so no address yet.
    port = create_port(api, net, mine)
    assert port["fixed_ips"] == [], port
    assert romana_view.endpoints_of_port(port["id"]) == []

    # 2. Scheduled on vm_host: binding allocates in (vm_host, project, default).
    port = bind(api, port["id"], vm_host)
    assert port["binding:vif_type"] == "tap", port
    assert port["status"] == "DOWN"
    [fixed] = port["fixed_ips"]
    address = fixed["ip_address"]
    assert ipaddress.ip_address(address) in romana_view.expected_cidr(vm_host, mine)
    [endpoint] = romana_view.endpoints_of_port(port["id"])
    tap = ("tap" + port["id"])[:14]
    assert endpoint.address == address and endpoint.interface == tap, endpoint

    # Pods on the other host: one of the VM's project, one of another project.
    romana.romanactl("tenant", "add", other)
    same_ns, same_ip = compute.add_pod("pod-mine", pod_host, mine)
    other_ns, other_ip = compute.add_pod("pod-other", pod_host, other)
    assert ipaddress.ip_address(same_ip) in romana_view.expected_cidr(pod_host, mine)

    # 3. libvirt plugs the VIF; the agent alone wires the tap; the port goes ACTIVE.
    vm = compute.start_vm("vm", vm_host, tap, address, endpoint.gateway)
    _wait("port %s to go ACTIVE" % port["id"], ACTIVE_WITHIN,
          lambda: show_port(api, port["id"])["status"] == "ACTIVE")
    st = romana_view.host_status(vm_host)
    assert any(" dev %s" % tap in r for r in _routes_to(st, address)), list(st.routes)

    # 4. Traffic: same project across hosts both ways; the other project neither way.
    assert compute.pings(vm, same_ip), "VM %s cannot reach its project's pod %s" % (
        address, same_ip)
    assert compute.pings(same_ns, address), "pod %s cannot reach VM %s" % (same_ip, address)
    assert not compute.pings(vm, other_ip), "VM reached another project's pod %s" % other_ip
    assert not compute.pings(other_ns, address), "another project's pod reached the VM"

    # 5. Nova deletes the port: released in Romana, unwired by the agent, VM cut off.
    delete_port(api, port["id"])
    assert romana_view.endpoints_of_port(port["id"]) == []
    assert address not in {e.address for e in romana_view.endpoints()}
    _wait("the agent to unroute %s" % address, UNWIRED_WITHIN,
          lambda: not _routes_to(romana_view.host_status(vm_host), address))
    assert not compute.pings(same_ns, address, tries=2), "the deleted port still answers"
