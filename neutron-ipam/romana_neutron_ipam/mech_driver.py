"""The ``romana`` ML2 mechanism driver: ``[ml2] mechanism_drivers = romana``.

It binds a port to a host registered with Romana's topology-service and tells Nova to plug
a plain tap device (``vif_type = tap``), which the host's romana-agent routes (a /32 or
/128 to ``tap<first 11 characters of the port id>``, Nova's device name). There is no
bridge, no VLAN and no tunnel, so only network types without segmentation are bound:
``flat`` (an admin's provider network, usually the one shared Romana network) and
``local`` (project networks, ``project_network_types = local``). VLAN, VXLAN, GRE and
Geneve segments are not bound: they promise an L2 segment that Romana does not build.

A port on an unknown host, on an unsupported network type or with a vnic_type other than
``normal`` is not bound; the reason is logged, and when no other driver binds it the port
ends with ``binding:vif_type = binding_failed``.

A bound port stays DOWN behind ML2's L2 provisioning block until the host's agent has
wired it; :mod:`romana_neutron_ipam.port_status` watches for that and completes the block,
and ML2 then sets the port ACTIVE. The driver also registers the port extender that lets
ports created without a host get their address when they are bound
(:mod:`romana_neutron_ipam.deferred`).

Security groups are not implemented: Romana's own isolation and policies apply
(``port_filter`` is false in the VIF details).
"""

import logging
import time

import grpc
from neutron_lib.api.definitions import portbindings
from neutron_lib.callbacks import resources
from neutron_lib import constants as n_const
from neutron_lib.plugins.ml2 import api
from oslo_config import cfg

from romana_neutron_ipam import client as romana_client
from romana_neutron_ipam import config
from romana_neutron_ipam import deferred
from romana_neutron_ipam import pb

LOG = logging.getLogger(__name__)

NAME = "romana"
SUPPORTED_NETWORK_TYPES = (n_const.TYPE_FLAT, n_const.TYPE_LOCAL)
SUPPORTED_VNIC_TYPES = (portbindings.VNIC_NORMAL,)

# What Nova's libvirt driver reads for a tap VIF: it creates (or lets libvirt create) the
# device "tap" + port id[:11] and attaches the guest to it; nothing else is plugged.
# port_filter: Neutron security groups are not enforced on this port (Romana's policy is).
# connectivity: l3, Romana routes; ML2 then refuses to bind a port without an address.
VIF_TYPE = portbindings.VIF_TYPE_TAP
VIF_DETAILS = {
    portbindings.CAP_PORT_FILTER: False,
    portbindings.VIF_DETAILS_CONNECTIVITY: portbindings.CONNECTIVITY_L3,
}

# Device owners that never get an L2 provisioning block (ML2's own list: DHCP, routers,
# owner-less ports); the same as the agent-based drivers use.
try:
    from neutron.plugins.ml2.common.constants import NO_PBLOCKS_TYPES
except ImportError:  # pragma: no cover - older Neutron
    NO_PBLOCKS_TYPES = ("", n_const.DEVICE_OWNER_DHCP)

# How long a host found registered is trusted without asking topology-service again.
HOST_CACHE_SECONDS = 10.0

ml2_opts = [
    cfg.FloatOpt(
        "port_status_interval",
        default=2.0, min=0.0,
        help="Seconds between two looks (by the romana ML2 mechanism driver, in every "
             "neutron-server process that loads it) for bound ports that are still DOWN, "
             "to set them ACTIVE once their host's romana-agent has routed them. 0 turns "
             "the watcher off (ports then stay DOWN). It backs off up to "
             "port_status_max_interval while nothing is pending or Romana is "
             "unreachable."),
    cfg.FloatOpt(
        "port_status_max_interval",
        default=30.0, min=0.1,
        help="Longest pause of the port status watcher (idle or backing off)."),
    cfg.IntOpt(
        "port_status_batch",
        default=100, min=1,
        help="Most DOWN ports the watcher looks at in one poll; more are taken in turn "
             "over the following polls."),
    cfg.FloatOpt(
        "agent_alive_seconds",
        default=40.0, min=1.0,
        help="A host's romana-agent counts as alive when its last heartbeat (alive_at, "
             "written every 10 s) is at most this old. Ports on a host whose agent is not "
             "alive stay DOWN."),
    cfg.FloatOpt(
        "bind_retry_seconds",
        default=5.0, min=0.0,
        help="For how long binding retries an unavailable topology-service before it "
             "gives up (the port is then binding_failed; a later update binds again)."),
]


def register_opts(conf=cfg.CONF):
    config.register_opts(conf)
    conf.register_opts(ml2_opts, group=config.GROUP)


def list_opts():
    """For oslo-config-generator (entry point oslo.config.opts: romana_neutron_ipam.ml2)."""
    return [(config.GROUP, ml2_opts)]


def options(conf=cfg.CONF):
    register_opts(conf)
    return conf[config.GROUP]


def get_client(conf=None):
    c = conf or options()
    return romana_client.get_client(
        list(c.root), c.timeout, c.retry_seconds,
        romana_client.Tls(c.ca_file, c.cert_file, c.key_file))


def tap_name(port_id):
    """The device Nova creates for a tap VIF (nova.network.model NIC_NAME_LEN = 14)."""
    return ("tap" + port_id)[:14]


class RomanaMechanismDriver(api.MechanismDriver):
    """Binds ports on Romana hosts as tap VIFs; see the module doc."""

    def __init__(self):
        super().__init__()
        self._hosts = {}  # host -> time it was last found registered

    def initialize(self):
        self.conf = options()
        deferred.register_port_extender()
        from romana_neutron_ipam import port_status

        self.watcher = port_status.start(self.conf)
        LOG.info("romana mechanism driver: binds %s ports of vnic_type %s on hosts "
                 "registered with Romana (root %s) as vif_type %s",
                 "/".join(SUPPORTED_NETWORK_TYPES), "/".join(SUPPORTED_VNIC_TYPES),
                 ",".join(self.conf.root), VIF_TYPE)

    @property
    def connectivity(self):
        return portbindings.CONNECTIVITY_L3

    # --- binding --------------------------------------------------------------------------

    def bind_port(self, context):
        port = context.current
        host = context.host
        vnic_type = port.get(portbindings.VNIC_TYPE, portbindings.VNIC_NORMAL)
        if vnic_type not in SUPPORTED_VNIC_TYPES:
            LOG.warning("romana: not binding port %s on host %s: vnic_type %s is not "
                        "supported (only %s)", port["id"], host, vnic_type,
                        ", ".join(SUPPORTED_VNIC_TYPES))
            return
        segment = next((s for s in context.segments_to_bind
                        if s.get(api.NETWORK_TYPE) in SUPPORTED_NETWORK_TYPES), None)
        if segment is None:
            LOG.warning("romana: not binding port %s on host %s: network %s has no %s "
                        "segment (segments: %s); Romana routes every endpoint and builds "
                        "no VLAN or tunnel", port["id"], host, port.get("network_id"),
                        " or ".join(SUPPORTED_NETWORK_TYPES),
                        ", ".join(str(s.get(api.NETWORK_TYPE))
                                  for s in context.segments_to_bind) or "none")
            return
        reason = self._host_problem(host)
        if reason:
            LOG.warning("romana: not binding port %s on host %s: %s", port["id"], host,
                        reason)
            return
        context.set_binding(segment[api.ID], VIF_TYPE, dict(VIF_DETAILS))
        LOG.info("romana: bound port %s on host %s (network %s, %s segment %s) as %s "
                 "device %s", port["id"], host, port.get("network_id"),
                 segment.get(api.NETWORK_TYPE), segment[api.ID], VIF_TYPE,
                 tap_name(port["id"]))

    def _host_problem(self, host):
        """None when ``host`` is registered with topology-service, else why not."""
        if not host:
            return "the port has no binding:host_id"
        seen = self._hosts.get(host)
        if seen is not None and time.monotonic() - seen < HOST_CACHE_SECONDS:
            return None
        try:
            get_client(self.conf).call(
                "topology", "GetHost", pb.topology.GetHostRequest(name=host),
                retry_seconds=self.conf.bind_retry_seconds)
        except romana_client.RpcFailure as f:
            self._hosts.pop(host, None)
            if f.code == grpc.StatusCode.NOT_FOUND:
                return ("the host is not registered with Romana's topology-service; "
                        "register it under the name Nova and the agents use: "
                        "'romanactl host add %s --ip <its address>'" % host)
            return "topology-service refused GetHost(%s): %s" % (host, f)
        except romana_client.Unavailable as e:
            return ("cannot tell whether it is a Romana host, topology-service is "
                    "unavailable (%s); the next update of the port binds it again"
                    % e.reason)
        self._hosts[host] = time.monotonic()
        return None

    # --- the L2 provisioning block (cleared by port_status when the agent has wired) ----

    def create_port_precommit(self, context):
        self._insert_provisioning_block(context)

    def create_port_postcommit(self, context):
        self._kick(context)

    def update_port_postcommit(self, context):
        self._kick(context)

    def _kick(self, context):
        """A port this driver bound is DOWN: have this process's watcher look now rather
        than at its next idle poll."""
        if (context.vif_type == VIF_TYPE and context.host
                and context.current.get("status") == n_const.PORT_STATUS_DOWN
                and getattr(self, "watcher", None) is not None):
            self.watcher.kick()

    def update_port_precommit(self, context):
        if context.host == context.original_host:
            return
        self._insert_provisioning_block(context)

    def _insert_provisioning_block(self, context):
        port = context.current
        if not context.host or port["status"] == n_const.PORT_STATUS_ACTIVE:
            return
        if port.get("device_owner") in NO_PBLOCKS_TYPES:
            return
        if port.get(portbindings.VNIC_TYPE, portbindings.VNIC_NORMAL) \
                not in SUPPORTED_VNIC_TYPES:
            return
        if not any(s.get(api.NETWORK_TYPE) in SUPPORTED_NETWORK_TYPES
                   for s in context.network.network_segments):
            return
        from neutron.db import provisioning_blocks

        provisioning_blocks.add_provisioning_component(
            context.plugin_context, port["id"], resources.PORT,
            provisioning_blocks.L2_AGENT_ENTITY)
