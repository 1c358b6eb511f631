"""How the port status watcher reads an agent's routes (HostStatus.routes, as ``ip route``
prints them). No server needed."""

import ipaddress

from romana_neutron_ipam.port_status import routed_by_device, tap_name


def test_tap_name_is_novas():
    assert tap_name("a1879135-f0c2-4d1e-9a7b-3c5d6e7f8a9b") == "tapa1879135-f0"


def test_host_routes_by_device():
    routes = [
        "10.12.0.2/32 dev tapa1879135-f0 scope link",  # what the agent reports
        "10.12.0.3 dev tapb0000000-00",  # as ip route prints a /32
        "fd00:10::5/128 dev tapa1879135-f0 metric 1024 pref medium",
        "10.12.0.4/32 dev rmn1dd86186183e scope link",
        "10.13.0.0/16 via 192.0.2.12 dev fabric0",  # another host's prefix
        "10.14.0.0/16 via 192.0.2.13",
        "blackhole 10.12.0.0/16",
        "",
    ]
    got = routed_by_device(routes)
    assert got == {
        "tapa1879135-f0": {ipaddress.ip_address("10.12.0.2"),
                           ipaddress.ip_address("fd00:10::5")},
        "tapb0000000-00": {ipaddress.ip_address("10.12.0.3")},
        "rmn1dd86186183e": {ipaddress.ip_address("10.12.0.4")},
    }
