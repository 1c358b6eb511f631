"""Fixtures: Neutron's configuration as neutron-server sets it up, a real Romana control
plane (etcd + services, see cluster.py), and helpers that build subnets and ports the way
Neutron does (SubnetRequestFactory, the driver's AddressRequestFactory, the subnet group
from get_allocator).
"""

import ipaddress
import os
import shutil
import signal
import tempfile
import uuid

import pytest
from oslo_config import cfg

import cluster as cluster_mod
from cluster import Cluster, bin_dir, missing_binaries

# Main layout: 10.0.0.0/8 | host 6 | tenant 6 | segment 4 | endpoint 8 (253 usable).
MAIN_LAYOUT = dict(address_space="10.0.0.0/8", host_bits=6, tenant_bits=6, segment_bits=4)
# Tiny layout for exhaustion: 16 addresses a segment, 13 usable (.0, .1, .15 reserved).
TINY_LAYOUT = dict(address_space="10.0.0.0/16", host_bits=4, tenant_bits=4, segment_bits=4)
V6_LAYOUT = dict(address_space="fd00:10::/48", host_bits=8, tenant_bits=8, segment_bits=8)

_STATE = {}


def pytest_configure(config):
    missing = missing_binaries()
    if missing:
        raise pytest.UsageError(
            "romana binaries missing in %s: %s; run cargo build --bins at the repository "
            "root first" % (bin_dir(), ", ".join(missing)))
    if not shutil.which("etcd"):
        raise pytest.UsageError("etcd not found on PATH (apt-get install etcd-server)")
    _setup_neutron()
    # Killed from outside (a CI timeout): stop the etcd and service processes we started.
    signal.signal(signal.SIGTERM, _on_sigterm)


def _on_sigterm(signum, frame):
    cluster_mod._kill_leftovers()
    os._exit(128 + signum)


def _setup_neutron():
    """What neutron-server does before the IPAM driver is first used: register Neutron's
    options, parse the (empty) configuration, connect the database. Neutron's own DB is
    only used by Neutron's built-in IPAM, which the driver delegates foreign subnets to."""
    from neutron.common import config as n_config
    from oslo_db import options as db_options

    tmp = tempfile.mkdtemp(prefix="romana-neutron-db-")
    _STATE["db_dir"] = tmp
    n_config.register_common_config_options()
    db_options.set_defaults(cfg.CONF, connection="sqlite:///%s/neutron.db" % tmp)
    cfg.CONF([], project="neutron", default_config_files=[])

    from neutron.ipam.drivers.neutrondb_ipam import db_models
    from neutron_lib.db import api as db_api
    from neutron_lib.db import model_base

    engine = db_api.CONTEXT_WRITER.get_engine()
    model_base.BASEV2.metadata.create_all(engine, tables=[
        db_models.IpamSubnet.__table__, db_models.IpamAllocationPool.__table__,
        db_models.IpamAllocation.__table__])

    # Neutron's core plugin holds the subnet records; the built-in IPAM reads a subnet's
    # CIDR from it. This stand-in serves the subnets the tests create.
    from neutron_lib.plugins import directory

    directory.add_plugin("CORE", FakeCorePlugin())

    # The operator's neutron.conf: ipam_driver = romana.
    cfg.CONF.set_override("ipam_driver", "romana")


def pytest_unconfigure(config):
    if _STATE.get("db_dir"):
        shutil.rmtree(_STATE["db_dir"], ignore_errors=True)


class _Subnet:
    def __init__(self, d):
        self.id = d["id"]
        self.cidr = d["cidr"]
        self.gateway_ip = d.get("gateway_ip")
        self.project_id = d["project_id"]
        self.allocation_pools = []


class FakeCorePlugin:
    """Neutron's subnet records for the subnets the tests create."""

    def __init__(self):
        self.subnets = {}

    def _get_subnet_object(self, context, id):
        from neutron_lib import exceptions as n_exc

        if id not in self.subnets:
            raise n_exc.SubnetNotFound(subnet_id=id)
        return _Subnet(self.subnets[id])


def core_plugin():
    from neutron_lib.plugins import directory

    return directory.get_plugin()


def _make_cluster(tmp_path_factory, name, layout, hosts):
    c = Cluster(tmp_path_factory.mktemp(name), layout)
    c.start()
    for i, h in enumerate(hosts):
        c.add_host(h, "127.0.1.%d" % (i + 1))
    return c


@pytest.fixture(scope="session")
def cluster(tmp_path_factory):
    c = _make_cluster(tmp_path_factory, "main", MAIN_LAYOUT, ["h1", "h2", "h3"])
    yield c
    c.close()


@pytest.fixture(scope="module")
def tiny_cluster(tmp_path_factory):
    c = _make_cluster(tmp_path_factory, "tiny", TINY_LAYOUT, ["t1", "t2"])
    yield c
    c.close()


@pytest.fixture(scope="module")
def v6_cluster(tmp_path_factory):
    c = _make_cluster(tmp_path_factory, "v6", V6_LAYOUT, ["v1"])
    yield c
    c.close()


@pytest.fixture(autouse=True)
def _clean_romana_conf():
    yield
    from romana_neutron_ipam import config

    config.register_opts()
    for opt in config.romana_opts:
        cfg.CONF.clear_override(opt.dest, group=config.GROUP)


def new_id():
    return str(uuid.uuid4())


def project():
    """A Neutron (Keystone) project id: 32 hex digits."""
    return uuid.uuid4().hex


class Neutron:
    """Drives the driver the way Neutron's IPAM backend does."""

    def __init__(self, cluster, **romana):
        from neutron_lib import context

        from romana_neutron_ipam import config

        self.cluster = cluster
        config.register_opts()
        self.set(**dict(dict(root=[cluster.root_url], retry_seconds=3.0, timeout=3.0),
                        **romana))
        self.ctx = context.get_admin_context()

    def set(self, **romana):
        for k, v in romana.items():
            cfg.CONF.set_override(k, v, group="romana")

    def pool(self, subnetpool=None):
        from neutron.ipam import driver

        return driver.Pool.get_instance(subnetpool, self.ctx)

    def subnet_dict(self, cidr, project_id, gateway_ip=None, network_id=None):
        from neutron_lib import constants

        net = ipaddress.ip_network(cidr)
        if gateway_ip is None:
            gateway_ip = str(net.network_address + 1)
        return {
            "id": new_id(),
            "name": "romana-subnet",
            "network_id": network_id or new_id(),
            "tenant_id": project_id,
            "project_id": project_id,
            "ip_version": net.version,
            "cidr": cidr,
            "prefixlen": constants.ATTR_NOT_SPECIFIED,
            "gateway_ip": gateway_ip,
            "allocation_pools": constants.ATTR_NOT_SPECIFIED,
            "enable_dhcp": True,
            "dns_nameservers": [],
            "host_routes": [],
            "subnetpool_id": None,
            "ipv6_ra_mode": constants.ATTR_NOT_SPECIFIED,
            "ipv6_address_mode": constants.ATTR_NOT_SPECIFIED,
        }

    def create_subnet(self, cidr, project_id=None, **kw):
        """As IpamPluggableBackend.allocate_subnet: factory request, allocate_subnet,
        get_details; then the subnet is recorded as Neutron's DB would."""
        from neutron_lib.db import api as db_api

        from neutron.ipam import utils as ipam_utils

        s = self.subnet_dict(cidr, project_id or project(), **kw)
        # IpamPluggableBackend.allocate_subnet fills the default pools before the factory.
        s["allocation_pools"] = ipam_utils.generate_pools(s["cidr"], s["gateway_ip"])
        pool = self.pool()
        request = pool.get_subnet_request_factory().get_request(self.ctx, s, None)
        with db_api.CONTEXT_WRITER.using(self.ctx):
            ipam_subnet = pool.allocate_subnet(request)
            details = ipam_subnet.get_details()
        s["cidr"] = str(details.subnet_cidr)
        core_plugin().subnets[s["id"]] = s
        return s

    def port(self, project_id, host=None, profile=None, device_owner="compute:nova",
             fixed_ips=None, network_id=None):
        """A port as ML2 hands it to IPAM on create (request body, id filled in)."""
        from neutron_lib import constants

        na = constants.ATTR_NOT_SPECIFIED
        return {
            "id": new_id(),
            "name": "",
            "network_id": network_id or new_id(),
            "tenant_id": project_id,
            "project_id": project_id,
            "admin_state_up": True,
            "mac_address": "fa:16:3e:%02x:%02x:%02x" % tuple(os.urandom(3)),
            "fixed_ips": fixed_ips if fixed_ips is not None else na,
            "device_id": new_id() if device_owner else "",
            "device_owner": device_owner,
            "binding:host_id": host if host is not None else na,
            "binding:profile": profile if profile is not None else na,
            "binding:vnic_type": "normal",
            "security_groups": na,
            "description": "",
        }

    def request(self, port, ip_dict, pool=None):
        pool = pool or self.pool()
        return pool.get_address_request_factory().get_request(self.ctx, port, ip_dict)

    def allocate(self, port, subnet, ip_address=None):
        """One address for ``port`` on ``subnet``, as _ipam_allocate_ips does: request
        from the driver's factory, subnet group from get_allocator. Returns the address."""
        pool = self.pool()
        ip = {"subnet_id": subnet["id"]}
        if ip_address:
            ip["ip_address"] = ip_address
        req = self.request(port, ip, pool)
        address, subnet_id = pool.get_allocator([subnet["id"]]).allocate(req)
        assert subnet_id == subnet["id"]
        return address

    def deallocate(self, subnet, address):
        self.pool().get_subnet(subnet["id"]).deallocate(address)

    def endpoints(self, **filters):
        return self.cluster.endpoints(**filters)

    def endpoints_of_port(self, port_id):
        return self.cluster.endpoints_of_port(port_id)

    def expected_cidr(self, host, tenant, segment="default"):
        return self.cluster.expected_cidr(host, tenant, segment)


@pytest.fixture
def neutron(cluster):
    return Neutron(cluster)


@pytest.fixture
def space_subnet(neutron):
    """A Neutron subnet served by Romana: the whole address space, shared by projects."""
    return neutron.create_subnet(MAIN_LAYOUT["address_space"])
