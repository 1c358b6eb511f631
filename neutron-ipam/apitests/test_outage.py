"""ipam-service stops while ports are being created, then comes back: Neutron answers 503
within 20 s while it is gone, works again once it is back, and neither side keeps an
address the other does not know."""

import time
from concurrent.futures import ThreadPoolExecutor

import requests

import neutron_server as ns
from conftest import create_port, port_body, project

ANSWER_WITHIN = 20.0  # seconds: the target for a port create while ipam-service is down
GIVE_UP = ANSWER_WITHIN + 15  # the client stops waiting (and the test fails) after this
IN_FLIGHT = 4  # fewer than the server's request slots (processes x threads), so none queue


def _timed(api, body):
    """(response or None when it did not answer within GIVE_UP, seconds taken)."""
    started = time.monotonic()
    try:
        r = api.post("/v2.0/ports", body, timeout=GIVE_UP)
    except requests.Timeout:
        r = None
    return r, time.monotonic() - started


def _check_answer(r, took, allowed, what):
    assert r is not None, "%s: no answer within %.0fs (target %.0fs)" % (what, GIVE_UP,
                                                                         ANSWER_WITHIN)
    assert r.status_code in allowed, "%s: %d %s" % (what, r.status_code, r.text[:500])
    assert took < ANSWER_WITHIN, "%s: %d after %.1fs (target: %.0fs)" % (
        what, r.status_code, took, ANSWER_WITHIN)


def _neutron_addresses(api, project_id):
    ports = ns.expect(api.get("/v2.0/ports?project_id=%s" % project_id), 200)["ports"]
    return {ip["ip_address"]: port["id"] for port in ports for ip in port["fixed_ips"]}


def test_ipam_service_stopped_mid_way_then_restarted(api, romana, romana_net, romana_view):
    net, _ = romana_net
    p = project()
    create_port(api, net, p, host="h1")  # the tenant exists before the outage
    stopped = False
    try:
        # A burst in flight when ipam-service goes away.
        with ThreadPoolExecutor(IN_FLIGHT) as pool:
            futures = [pool.submit(_timed, api, port_body(net, p, host=("h1", "h2")[i % 2]))
                       for i in range(IN_FLIGHT)]
            time.sleep(0.2)
            romana.stop_service("ipam")
            stopped = True
            burst = [f.result() for f in futures]
        for i, (r, took) in enumerate(burst):
            _check_answer(r, took, (201, 503), "create %d in flight at the stop" % i)

        # While it is gone: 503, soon.
        r, took = _timed(api, port_body(net, p, host="h1"))
        _check_answer(r, took, (503,), "create while ipam-service is stopped")
    finally:
        if stopped:
            romana.start_service("ipam")
            romana.wait_registered(["ipam"])

    # Back: creates work again.
    port = create_port(api, net, p, host="h2")
    assert port["fixed_ips"]

    # Nothing leaked: Romana holds exactly the project's Neutron addresses.
    in_neutron = _neutron_addresses(api, p)
    in_romana = {e.address: e.labels["neutron.openstack.org/port-id"]
                 for e in romana_view.endpoints(tenant=p)}
    assert in_romana == in_neutron
