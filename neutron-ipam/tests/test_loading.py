"""The driver is found and built the way Neutron does it."""

from importlib.metadata import entry_points

from neutron.ipam import driver as ipam_driver
from neutron.ipam import requests as ipam_req
from neutron_lib import constants
from oslo_config import cfg

from romana_neutron_ipam import config
from romana_neutron_ipam.driver import RomanaAddressRequestFactory, RomanaPool, PORT_ATTR
from romana_neutron_ipam.ports import PortInfo


def test_entry_point_is_registered():
    eps = {e.name: e.value for e in entry_points(group="neutron.ipam_drivers")}
    assert eps["romana"] == "romana_neutron_ipam.driver:RomanaPool"


def test_neutron_loader_finds_the_driver(neutron):
    assert cfg.CONF.ipam_driver == "romana"
    pool = ipam_driver.Pool.get_instance(None, neutron.ctx)
    assert isinstance(pool, RomanaPool)
    assert pool.needs_rollback() is True
    assert issubclass(pool.get_address_request_factory(), ipam_req.AddressRequestFactory)
    assert pool.get_subnet_request_factory() is ipam_req.SubnetRequestFactory


def test_options_live_in_the_romana_group(neutron):
    neutron.set(root=["http://127.0.0.1:1", "http://127.0.0.1:2"], create_tenants=False)
    opts = config.options()
    assert opts.root == ["http://127.0.0.1:1", "http://127.0.0.1:2"]
    assert opts.create_tenants is False
    names = {o.dest for _, group in config.list_opts() for o in group}
    assert {"root", "ca_file", "cert_file", "key_file", "timeout", "retry_seconds",
            "create_tenants", "create_segments", "delegate_other_subnets"} <= names


def test_factory_returns_neutron_request_types_with_the_port(neutron):
    port = neutron.port("p1", host="h1", profile={"romana_segment": "web"})
    f = RomanaAddressRequestFactory
    any_req = f.get_request(neutron.ctx, port, {"subnet_id": "s"})
    assert type(any_req) is ipam_req.AnyAddressRequest
    info = getattr(any_req, PORT_ATTR)
    assert (info.port_id, info.project_id, info.host, info.segment) == (
        port["id"], "p1", "h1", "web")
    fixed = f.get_request(neutron.ctx, port, {"subnet_id": "s", "ip_address": "10.0.0.5"})
    assert type(fixed) is ipam_req.SpecificAddressRequest
    dhcp = neutron.port("p1", host="h1", device_owner=constants.DEVICE_OWNER_DHCP)
    assert type(f.get_request(neutron.ctx, dhcp, {"subnet_id": "s"})) is \
        ipam_req.PreferNextAddressRequest
    eui = f.get_request(neutron.ctx, port, {"subnet_id": "s", "eui64_address": True,
                                            "subnet_cidr": "fd00::/64",
                                            "mac": "fa:16:3e:00:00:01"})
    assert isinstance(eui, ipam_req.AutomaticAddressRequest)


class _Binding:
    def __init__(self, host, profile, status):
        self.host, self.profile, self.status = host, profile, status


class _Alloc:
    def __init__(self, subnet_id, ip_address):
        self.subnet_id, self.ip_address = subnet_id, ip_address


class _PortModel:
    """The shape of Neutron's Port DB model handed to the factory on port update."""

    def __init__(self):
        self.id = "port-1"
        self.project_id = "proj"
        self.device_owner = "compute:nova"
        self.network_id = "net"
        self.fixed_ips = [_Alloc("s1", "10.0.0.7")]
        self.port_bindings = [_Binding("old", "{}", "INACTIVE"),
                              _Binding("h2", '{"romana_segment": "db"}', "ACTIVE")]

    def __getitem__(self, key):
        return getattr(self, key)


def test_port_facts_from_a_db_model_or_object():
    info = PortInfo.from_port(_PortModel())
    assert (info.port_id, info.project_id, info.host, info.segment) == (
        "port-1", "proj", "h2", "db")
    assert info.addresses_in("s1") == {"10.0.0.7"}


def test_port_facts_defaults():
    info = PortInfo.from_port({"id": "x", "tenant_id": "t",
                               "binding:host_id": constants.ATTR_NOT_SPECIFIED,
                               "binding:profile": constants.ATTR_NOT_SPECIFIED,
                               "device_owner": "network:router_interface"})
    assert info.host == "" and info.segment == "default" and info.project_id == "t"
    assert info.is_router
