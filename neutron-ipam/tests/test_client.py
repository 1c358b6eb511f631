"""The gRPC client on its own: URLs, the retry budget, per-process clients."""

import os
import time

import pytest

from cluster import free_port
from romana_neutron_ipam import client as rc
from romana_neutron_ipam import pb


def test_urls():
    assert rc._target("http://127.0.0.1:9600") == ("127.0.0.1:9600", False)
    assert rc._target("https://root.example:9600/") == ("root.example:9600", True)
    assert rc._target("127.0.0.1:9600") == ("127.0.0.1:9600", False)


def test_nothing_listening_is_unavailable_within_the_budget():
    c = rc.Client(["http://127.0.0.1:%d" % free_port()], timeout=1.0, retry_seconds=0.5)
    started = time.monotonic()
    with pytest.raises(rc.Unavailable) as e:
        c.ipam("ListEndpoints", pb.ipam.ListEndpointsRequest())
    assert time.monotonic() - started < 5
    assert "root" in str(e.value)
    c.close()


def test_no_instance_registered(cluster):
    c = rc.Client([cluster.root_url], timeout=2.0, retry_seconds=0.3)
    with pytest.raises(rc.Unavailable) as e:
        c.call("policy", "ListPolicies", None)
    assert "no policy-service is registered" in str(e.value)


def test_discovery_and_a_call(cluster):
    c = rc.Client([cluster.root_url], timeout=2.0, retry_seconds=1.0)
    cfg = c.root("GetConfig", pb.root.GetConfigRequest())
    assert cfg.address_space == "10.0.0.0/8"
    with pytest.raises(rc.RpcFailure) as e:
        c.ipam("GetEndpoint", pb.ipam.GetEndpointRequest(endpoint="nope"))
    assert e.value.code.name == "NOT_FOUND"


def test_one_client_per_configuration_and_process():
    a = rc.get_client(["http://127.0.0.1:1"], 1.0, 1.0)
    assert rc.get_client(["http://127.0.0.1:1"], 1.0, 1.0) is a
    assert rc.get_client(["http://127.0.0.1:2"], 1.0, 1.0) is not a
    assert all(k[0] == os.getpid() for k in rc._CLIENTS)


def test_https_urls_get_a_secure_channel():
    # A secure channel is created lazily; no server is contacted here.
    c = rc.Client(["https://127.0.0.1:1"], tls=rc.Tls())
    ch = c._channel("https://127.0.0.1:1")
    assert ch is c._channel("https://127.0.0.1:1")
    c.close()
