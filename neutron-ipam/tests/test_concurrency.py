"""50 threads, 50 ports, two hosts, at once: as many neutron-server API workers would."""

import ipaddress
import threading

from conftest import Neutron, project

THREADS = 50


def test_fifty_threads_fifty_ports_two_hosts(cluster):
    neutron = Neutron(cluster, create_segments=True, retry_seconds=10.0, timeout=10.0)
    subnet = neutron.create_subnet("10.0.0.0/8")
    proj = project()  # its tenant and the "web" segment are created by the racing threads
    ports = []
    for i in range(THREADS):
        host = "h1" if i % 2 == 0 else "h2"
        profile = {"romana_segment": "web"} if i % 4 >= 2 else None
        ports.append(neutron.port(proj, host=host, profile=profile))
    results, failures = {}, []
    barrier = threading.Barrier(THREADS)

    def work(port):
        try:
            barrier.wait(timeout=30)
            # Each thread is its own API request: its own Pool.get_instance.
            results[port["id"]] = neutron.allocate(port, subnet)
        except Exception as e:  # collected and reported below
            failures.append((port["id"], repr(e)))

    threads = [threading.Thread(target=work, args=(p,)) for p in ports]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not failures, failures
    assert len(results) == THREADS

    addresses = list(results.values())
    assert len(set(addresses)) == THREADS, "duplicate addresses handed out"

    listed = {e["endpoint"]: e for e in cluster.endpoints_json()}  # romanactl ipam list
    by_address = {e["address"]: e for e in listed.values()}
    cidrs = {(h, s): neutron.expected_cidr(h, proj, s)
             for h in ("h1", "h2") for s in ("default", "web")}
    for port in ports:
        address = results[port["id"]]
        segment = (port["binding:profile"] or {}).get("romana_segment", "default") \
            if isinstance(port["binding:profile"], dict) else "default"
        host = port["binding:host_id"]
        cidr = cidrs[(host, segment)]
        assert ipaddress.ip_address(address) in cidr, (address, host, segment, cidr)
        e = by_address[address]
        assert (e["host"], e["tenant"], e["segment"]) == (host, proj, segment)
        assert e["segment_cidr"] == str(cidr)
        assert e["labels"]["neutron.openstack.org/port-id"] == port["id"]
