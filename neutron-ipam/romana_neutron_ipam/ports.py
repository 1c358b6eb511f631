"""What the driver needs to know about a Neutron port, whatever shape Neutron hands it in.

Neutron passes the port to the address request factory as a dict (port create, deferred
allocation on binding), as a DB model (port update: adding a fixed IP) or as a Port
versioned object (IPv6 auto-addresses on a new subnet). This module reads all three.
Nothing here reads any database: a DB model or object is only looked at in memory, as
Neutron handed it.
"""

import json

from neutron_lib import constants

HOST_ID = "binding:host_id"
PROFILE = "binding:profile"
# CONVENTIONS.md: the segment comes from this key of the port's binding:profile.
SEGMENT_KEY = "romana_segment"
DEFAULT_SEGMENT = "default"

# Ports of Neutron routers. Romana routes every endpoint at its own host (the gateway of
# a segment is its endpoint number 1, answered by the host), so a Neutron router has no
# place on a Romana subnet; these are refused with a clear error (see README).
ROUTER_OWNERS = frozenset(
    set(constants.ROUTER_INTERFACE_OWNERS_SNAT)
    | set(constants.ROUTER_PORT_OWNERS)
    | {constants.DEVICE_OWNER_ROUTER_GW, constants.DEVICE_OWNER_FLOATINGIP,
       constants.DEVICE_OWNER_ROUTER_HA_INTF}
)


def _is_set(value):
    return value is not None and value is not constants.ATTR_NOT_SPECIFIED and value != ""


def _get(obj, key, default=None):
    if isinstance(obj, dict):
        return obj.get(key, default)
    try:
        return getattr(obj, key)
    except AttributeError:
        pass
    try:
        return obj[key]
    except (KeyError, TypeError, AttributeError):
        return default


def _profile_dict(profile):
    if isinstance(profile, dict):
        return profile
    if isinstance(profile, str) and profile:
        try:
            value = json.loads(profile)
        except ValueError:
            return {}
        return value if isinstance(value, dict) else {}
    return {}


def _active_binding(port):
    """The ACTIVE binding of a DB model (port_bindings) or object (bindings)."""
    for attr in ("bindings", "port_bindings"):
        bindings = _get(port, attr)
        if not bindings or isinstance(bindings, (str, bytes)):
            continue
        try:
            bindings = list(bindings)
        except TypeError:
            continue
        active = [b for b in bindings if _get(b, "status") == constants.ACTIVE]
        chosen = active or bindings
        if chosen:
            return chosen[0]
    return None


class PortInfo:
    """The port facts the driver maps to Romana: who (tenant), where (host, segment)."""

    def __init__(self, port_id, project_id, host, profile, device_owner, network_id,
                 fixed_ips=()):
        self.port_id = port_id or ""
        # (subnet_id, address) pairs the port lists (held, or asked for on create).
        self.fixed_ips = frozenset(fixed_ips)
        self.project_id = project_id or ""
        self.host = host or ""
        self.profile = profile or {}
        self.device_owner = device_owner or ""
        self.network_id = network_id or ""

    @property
    def segment(self):
        seg = self.profile.get(SEGMENT_KEY)
        return seg if isinstance(seg, str) and seg else DEFAULT_SEGMENT

    @property
    def is_router(self):
        return self.device_owner in ROUTER_OWNERS

    @property
    def is_dhcp(self):
        return self.device_owner == constants.DEVICE_OWNER_DHCP

    def addresses_in(self, subnet_id):
        return {a for s, a in self.fixed_ips if s == subnet_id}

    def __repr__(self):
        return ("PortInfo(port=%s project=%s host=%s segment=%s owner=%s)"
                % (self.port_id, self.project_id, self.host, self.segment,
                   self.device_owner))

    @classmethod
    def from_port(cls, port):
        if isinstance(port, dict) and "port" in port and isinstance(port["port"], dict):
            port = port["port"]
        port_id = _get(port, "id")
        project = _get(port, "project_id")
        if not _is_set(project):
            project = _get(port, "tenant_id")
        host = _get(port, HOST_ID) if isinstance(port, dict) else None
        profile = _get(port, PROFILE) if isinstance(port, dict) else None
        if not _is_set(host) or not _is_set(profile):
            binding = _active_binding(port)
            if binding is not None:
                if not _is_set(host):
                    host = _get(binding, "host")
                if not _is_set(profile):
                    profile = _get(binding, "profile")
        return cls(
            port_id=port_id if _is_set(port_id) else "",
            project_id=project if _is_set(project) else "",
            host=host if _is_set(host) else "",
            profile=_profile_dict(profile if _is_set(profile) else None),
            device_owner=_get(port, "device_owner") or "",
            network_id=_get(port, "network_id") or "",
            fixed_ips=_fixed_ips(_get(port, "fixed_ips")),
        )


def _fixed_ips(value):
    """(subnet_id, address) of the fixed IPs a dict, model or object lists."""
    if not _is_set(value) or isinstance(value, (str, bytes, dict)):
        return ()
    pairs = []
    try:
        items = list(value)
    except TypeError:
        return ()
    for item in items:
        subnet = _get(item, "subnet_id")
        address = _get(item, "ip_address")
        if _is_set(subnet) and _is_set(address):
            pairs.append((str(subnet), str(address)))
    return pairs
