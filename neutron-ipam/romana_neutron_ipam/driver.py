"""The Romana IPAM driver for Neutron: ``ipam_driver = romana``.

Neutron loads it with ``neutron.ipam.driver.Pool.get_instance(subnetpool, context)``, which
looks ``romana`` up in the ``neutron.ipam_drivers`` entry point group and instantiates
:class:`RomanaPool`. See README.md for the mapping and the operator's view.

Mapping, in short (CONVENTIONS.md, "Neutron IPAM driver"):

- A Neutron subnet is served by Romana when its CIDR covers Romana's whole address space
  (e.g. ``10.0.0.0/8``): every address Romana hands out, on any host, for any tenant and
  segment, then lies in the subnet. Subnets disjoint from the space (external networks,
  provider networks, the other IP family) go to Neutron's built-in IPAM
  (``delegate_other_subnets``); a subnet that only partly covers the space is refused.
- Port -> endpoint: tenant = the port's project id (created on first use unless
  ``create_tenants = false``), segment = ``binding:profile['romana_segment']`` or
  ``default``, host = ``binding:host_id``.
- The endpoint id is ``neutron:<port id>:<subnet id>`` for an automatic address and
  ``neutron:<port id>:<address>`` for a fixed IP, so a repeated request (a retry, a
  rollback re-allocation) gets the address it already got instead of a second one.
"""

import logging
import re

import netaddr
from neutron.ipam import driver as ipam_base
from neutron.ipam import exceptions as ipam_exc
from neutron.ipam import requests as ipam_req
from neutron_lib import exceptions as n_exc

import grpc

from romana_neutron_ipam import client as romana_client
from romana_neutron_ipam import config
from romana_neutron_ipam import deferred
from romana_neutron_ipam import errors
from romana_neutron_ipam import pb
from romana_neutron_ipam.ports import PortInfo

LOG = logging.getLogger(__name__)

# The attribute our address request factory puts the port facts under.
PORT_ATTR = "romana_port"

LABEL_PREFIX = "neutron.openstack.org/"
LABEL_PORT = LABEL_PREFIX + "port-id"
LABEL_SUBNET = LABEL_PREFIX + "subnet-id"
LABEL_NETWORK = LABEL_PREFIX + "network-id"
LABEL_PROJECT = LABEL_PREFIX + "project-id"
LABEL_OWNER = LABEL_PREFIX + "device-owner"

# Romana's rule for tenant and segment names: a lowercase DNS label, as a Kubernetes
# namespace (Keystone project ids, 32 lowercase hex digits, are such labels).
NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")

# What a Kubernetes label value may hold, as Romana checks labels.
_LABEL_BAD = re.compile(r"[^A-Za-z0-9_.-]")


def label_value(text):
    """``text`` as a Kubernetes label value: characters outside ``[A-Za-z0-9_.-]`` become
    ``_`` (``compute:nova`` -> ``compute_nova``), at most 63, alphanumeric at both ends."""
    value = _LABEL_BAD.sub("_", text)[:63]
    return re.sub(r"^[^A-Za-z0-9]+|[^A-Za-z0-9]+$", "", value)


def endpoint_id(port_id, subnet_id=None, address=None, extra=0):
    if address is not None:
        return "neutron:%s:%s" % (port_id, address)
    if extra:
        return "neutron:%s:%s:%d" % (port_id, subnet_id, extra)
    return "neutron:%s:%s" % (port_id, subnet_id)


def tap_name(port_id):
    """Nova's name for a port's tap device: ``tap`` + the first 11 characters of its id."""
    return ("tap" + port_id)[:14]


def _norm(address):
    try:
        return str(netaddr.IPAddress(address))
    except (netaddr.AddrFormatError, ValueError, TypeError):
        return str(address)


class RomanaAddressRequestFactory(ipam_req.AddressRequestFactory):
    """Neutron's own factory, plus the port facts Romana needs (host, project, segment).

    The request types are Neutron's (SpecificAddressRequest, AnyAddressRequest,
    PreferNextAddressRequest for DHCP ports, AutomaticAddressRequest for EUI-64); the
    port facts ride along as an attribute.
    """

    @classmethod
    def get_request(cls, context, port, ip_dict):
        request = super().get_request(context, port, ip_dict)
        try:
            info = PortInfo.from_port(port)
        except Exception:  # never break Neutron's request building
            LOG.exception("romana: cannot read port %r", port)
            info = None
        setattr(request, PORT_ATTR, info)
        return request


class RomanaPool(ipam_base.Pool):
    """Neutron's IPAM Pool backed by Romana's ipam-service."""

    def __init__(self, subnetpool, context):
        super().__init__(subnetpool, context)
        self.conf = config.options()
        deferred.warn_once()

    # --- plumbing -------------------------------------------------------------------------

    @property
    def client(self):
        c = self.conf
        return romana_client.get_client(
            list(c.root), c.timeout, c.retry_seconds,
            romana_client.Tls(c.ca_file, c.cert_file, c.key_file))

    def get_address_request_factory(self):
        return RomanaAddressRequestFactory

    def needs_rollback(self):
        # Romana is a truly external system: Neutron's DB rollback does not undo anything
        # there, so Neutron must call deallocate/remove_subnet when it rolls back.
        return True

    def _delegate(self):
        from neutron.ipam.drivers.neutrondb_ipam import driver as neutrondb

        return neutrondb.NeutronDbPool(self._subnetpool, self._context)

    def _is_delegated(self, subnet_id):
        """Whether Neutron's built-in IPAM holds this subnet (in Neutron's own DB)."""
        if not self.conf.delegate_other_subnets or self._context is None:
            return False
        from neutron.ipam.drivers.neutrondb_ipam import db_api as neutrondb_api

        return neutrondb_api.IpamSubnetManager.load_by_neutron_subnet_id(
            self._context, subnet_id) is not None

    def address_space(self):
        try:
            cfg = self.client.root("GetConfig", pb.root.GetConfigRequest())
        except romana_client.Unavailable as e:
            raise errors.unavailable("root-service", e.reason)
        except romana_client.RpcFailure as f:
            if f.code == grpc.StatusCode.FAILED_PRECONDITION:
                raise errors.value_invalid(
                    "Romana's cluster layout is not set yet (romanactl config init): %s"
                    % f.details)
            raise errors.RomanaError(reason=str(f))
        return netaddr.IPNetwork(cfg.address_space)

    # --- Pool interface -------------------------------------------------------------------

    def allocate_subnet(self, subnet_request):
        if not isinstance(subnet_request, ipam_req.SpecificSubnetRequest):
            if self.conf.delegate_other_subnets:
                return self._delegate().allocate_subnet(subnet_request)
            raise ipam_exc.InvalidSubnetRequestType(subnet_type=type(subnet_request))
        cidr = netaddr.IPNetwork(subnet_request.subnet_cidr)
        space = self.address_space()
        relation = _relation(cidr, space)
        if relation == "covers":
            LOG.info("romana: subnet %s (%s) is served by Romana (address space %s)",
                     subnet_request.subnet_id, cidr, space)
            return RomanaSubnet.from_request(self, subnet_request)
        if relation == "disjoint":
            if self.conf.delegate_other_subnets:
                LOG.info("romana: subnet %s (%s) is outside Romana's address space %s; "
                         "Neutron's built-in IPAM serves it", subnet_request.subnet_id,
                         cidr, space)
                return self._delegate().allocate_subnet(subnet_request)
            raise errors.InvalidSubnetRequest(reason=(
                "%s is outside Romana's address space %s and [romana] "
                "delegate_other_subnets is false" % (cidr, space)))
        raise errors.InvalidSubnetRequest(reason=(
            "%s overlaps Romana's address space %s without covering it. A Romana subnet "
            "must cover the whole space (use %s): each address is chosen by the port's "
            "host, tenant and segment, anywhere in the space" % (cidr, space, space)))

    def get_subnet(self, subnet_id):
        if self._is_delegated(subnet_id):
            return self._delegate().get_subnet(subnet_id)
        return RomanaSubnet(self, subnet_id)

    def update_subnet(self, subnet_request):
        if not subnet_request.subnet_id:
            raise ipam_exc.InvalidSubnetRequest(
                reason="an identifier must be specified when updating a subnet")
        if self._is_delegated(subnet_request.subnet_id):
            return self._delegate().update_subnet(subnet_request)
        # Romana keeps nothing per subnet: allocation pools and gateway changes only
        # change what Neutron shows (see README: Romana ignores allocation pools).
        if isinstance(subnet_request, ipam_req.SpecificSubnetRequest):
            return RomanaSubnet.from_request(self, subnet_request)
        return RomanaSubnet(self, subnet_request.subnet_id)

    def remove_subnet(self, subnet_id):
        if self._is_delegated(subnet_id):
            return self._delegate().remove_subnet(subnet_id)
        # Neutron deallocates every port's address before deleting a subnet; release
        # whatever is still labelled with the subnet (a leak after a crash) anyway.
        try:
            leftovers = self.client.list_endpoints(labels={LABEL_SUBNET: subnet_id})
            for e in leftovers:
                LOG.warning("romana: subnet %s removed; releasing leftover endpoint %s (%s)",
                            subnet_id, e.id, e.address)
                self.client.ipam("Release", pb.ipam.ReleaseRequest(endpoint=e.id))
        except (romana_client.Unavailable, romana_client.RpcFailure) as e:
            LOG.warning("romana: could not look for leftover endpoints of removed subnet "
                        "%s: %s", subnet_id, e)

    def get_allocator(self, subnet_ids):
        return RomanaSubnetGroup(self, subnet_ids)


class RomanaSubnetGroup(ipam_base.SubnetGroup):
    """Tries the subnets in order; a full one passes the request to the next."""

    def __init__(self, pool, subnet_ids):
        self._pool = pool
        self._subnet_ids = list(subnet_ids)

    def allocate(self, address_request):
        for subnet_id in self._subnet_ids:
            try:
                subnet = self._pool.get_subnet(subnet_id)
                return subnet.allocate(address_request), subnet_id
            except ipam_exc.IpAddressGenerationFailure:
                continue
        raise ipam_exc.IpAddressGenerationFailureAllSubnets()


class RomanaSubnet(ipam_base.Subnet):
    """One Neutron subnet whose addresses Romana allocates.

    Romana keeps no per-subnet state: the endpoint labels name the subnet, and the
    subnet's CIDR, gateway and pools live in Neutron's own subnet record.
    """

    def __init__(self, pool, subnet_id, cidr=None, gateway_ip=None, allocation_pools=None,
                 project_id=None):
        self._pool = pool
        self._subnet_id = subnet_id
        self._cidr = cidr
        self._gateway_ip = gateway_ip
        self._allocation_pools = allocation_pools
        self._project_id = project_id
        self._loaded = cidr is not None

    @classmethod
    def from_request(cls, pool, req):
        return cls(pool, req.subnet_id, cidr=req.subnet_cidr, gateway_ip=req.gateway_ip,
                   allocation_pools=req.allocation_pools, project_id=req.project_id)

    @property
    def subnet_id(self):
        return self._subnet_id

    @property
    def client(self):
        return self._pool.client

    def _load(self):
        """The subnet's details from Neutron's own subnet record (as Neutron's built-in
        driver does), for get_details and the project fallback."""
        if self._loaded:
            return True
        from neutron_lib.plugins import directory

        plugin = directory.get_plugin()
        if plugin is None or self._pool._context is None:
            return False
        subnet = plugin._get_subnet_object(self._pool._context, self._subnet_id)
        self._cidr = netaddr.IPNetwork(str(subnet.cidr))
        self._gateway_ip = subnet.gateway_ip
        self._project_id = subnet.project_id
        pools = [netaddr.IPRange(str(p.start), str(p.end))
                 for p in (subnet.allocation_pools or [])]
        self._allocation_pools = pools or None
        self._loaded = True
        return True

    def get_details(self):
        if not self._load():
            raise n_exc.SubnetNotFound(subnet_id=self._subnet_id)
        return ipam_req.SpecificSubnetRequest(
            self._project_id, self._subnet_id, self._cidr, self._gateway_ip,
            self._allocation_pools)

    # --- allocate -------------------------------------------------------------------------

    def allocate(self, address_request):
        if isinstance(address_request, ipam_req.AutomaticAddressRequest):
            raise errors.invalid_address_type(
                "eui-64 (SLAAC/DHCPv6-stateless) on Romana subnet %s: Romana chooses every "
                "address by host, tenant and segment; create the IPv6 subnet with "
                "ipv6_address_mode=dhcpv6-stateful" % self._subnet_id)
        if not isinstance(address_request, (ipam_req.SpecificAddressRequest,
                                            ipam_req.AnyAddressRequest)):
            raise errors.invalid_address_type(type(address_request).__name__)
        info = getattr(address_request, PORT_ATTR, None)
        if info is None:
            raise errors.value_invalid(
                "the address request carries no port; build it with the driver's "
                "get_address_request_factory() (Neutron does), which adds the port's "
                "host, project and segment")
        if info.is_router:
            raise errors.value_invalid(
                "%s port %s: Romana subnets have no Neutron routers; every host is the "
                "gateway of its own endpoints (see the driver's README)"
                % (info.device_owner, info.port_id))
        if not info.port_id:
            raise errors.value_invalid("the port has no id")
        tenant = info.project_id or self._fallback_project()
        if not tenant:
            raise errors.value_invalid(
                "port %s has no project, so it has no Romana tenant" % info.port_id)
        if not NAME_RE.match(tenant):
            raise errors.value_invalid(
                "project id %r is not a valid Romana tenant name (a lowercase DNS label: "
                "[a-z0-9-], at most 63, alphanumeric at both ends)" % tenant[:64])
        segment = info.segment
        if not NAME_RE.match(segment):
            raise errors.value_invalid(
                "binding:profile romana_segment %r is not a valid Romana segment name (a "
                "lowercase DNS label: [a-z0-9-], at most 63, alphanumeric at both ends)"
                % segment[:64])

        specific = None
        if isinstance(address_request, ipam_req.SpecificAddressRequest):
            specific = _norm(address_request.address)
        elif not info.host:
            # Romana's address encodes the host: wait until Neutron binds the port. Neutron
            # creates the port without an address (ip_allocation=deferred) and allocates
            # when binding:host_id is set, as for routed provider networks.
            raise ipam_exc.DeferIpam()
        return self._allocate(info, tenant, segment, specific)

    def _fallback_project(self):
        try:
            self._load()
        except Exception:  # no plugin, subnet gone: nothing to fall back on
            return ""
        return self._project_id or ""

    def _request(self, info, tenant, segment, specific, extra=0):
        labels = {
            LABEL_PORT: info.port_id,
            LABEL_SUBNET: self._subnet_id,
            LABEL_PROJECT: info.project_id or tenant,
        }
        if info.network_id:
            labels[LABEL_NETWORK] = info.network_id
        if info.device_owner:
            labels[LABEL_OWNER] = label_value(info.device_owner)
        req = pb.ipam.AllocateRequest(
            endpoint=endpoint_id(info.port_id, self._subnet_id, specific, extra),
            labels=labels)
        if specific:
            req.address = specific
        # The host-side device Nova's libvirt driver creates for the port: the host's agent
        # wires it (gateway, route, isolation) once it appears.
        req.interface = tap_name(info.port_id)
        if info.host:
            req.host = info.host
            req.tenant = tenant
            req.segment = segment
        return req

    def _allocate(self, info, tenant, segment, specific):
        held = {_norm(a) for a in info.addresses_in(self._subnet_id)}
        extra = 0
        while True:
            req = self._request(info, tenant, segment, specific, extra)
            ep = self._call_allocate(req, info, tenant, segment, specific)
            if specific or _norm(ep.address) not in held or extra >= 16:
                break
            # The port already has this address on this subnet under this id: Neutron
            # wants one more automatic address for the same port and subnet.
            extra += 1
        if specific and not info.host:
            # Placed by the address alone: it must be the port's own tenant and segment.
            if ep.tenant != tenant or ep.segment != segment:
                self._forget(req.endpoint)
                raise errors.InvalidIpForSubnet(
                    ip=specific, subnet_id=self._subnet_id,
                    reason="%s is tenant %s segment %s on host %s; port %s is tenant %s "
                           "segment %s" % (specific, ep.tenant, ep.segment, ep.host,
                                            info.port_id, tenant, segment))
        LOG.debug("romana: port %s got %s (host %s tenant %s segment %s, endpoint %s)",
                  info.port_id, ep.address, ep.host, ep.tenant, ep.segment, ep.id)
        return _norm(ep.address)

    def _call_allocate(self, req, info, tenant, segment, specific):
        fixed = set()
        while True:
            try:
                return self.client.ipam("Allocate", req)
            except romana_client.Unavailable as e:
                if e.ambiguous:
                    # It may have been allocated after all; Neutron will not record it.
                    self._forget(req.endpoint)
                raise errors.unavailable("ipam-service", e.reason)
            except romana_client.RpcFailure as f:
                if f.code == grpc.StatusCode.NOT_FOUND:
                    what = self._fix_missing(f, info, tenant, segment, specific, fixed)
                    if what:
                        fixed.add(what)
                        continue
                raise self._error(f, specific)

    def _fix_missing(self, failure, info, tenant, segment, specific, fixed):
        """After NOT_FOUND: make sure the tenant (and, if allowed, the segment) exists and
        return what to retry once for; or raise the error that names what is missing.

        A concurrent request may have created the tenant or segment between our Allocate
        and our look, so each is retried once even when it is found existing.
        """
        if "tenant" not in fixed:
            self._ensure_tenant(tenant, info)
            return "tenant"
        if not info.host:
            raise errors.InvalidIpForSubnet(ip=specific, subnet_id=self._subnet_id,
                                            reason=failure.details)
        if "segment" not in fixed:
            if segment not in self._segments(tenant):
                if not self._pool.conf.create_segments:
                    raise errors.value_invalid(
                        "segment %s (binding:profile romana_segment of port %s) does not "
                        "exist in tenant %s; create it with 'romanactl segment add %s %s'"
                        % (segment, info.port_id, tenant, tenant, segment))
                self._add_segment(tenant, segment)
            return "segment"
        raise errors.value_invalid(
            "host %s (binding:host_id of port %s) is not registered with Romana "
            "('romanactl host add %s --ip ...'): %s"
            % (info.host, info.port_id, info.host, failure.details))

    def _tenants(self, method, request):
        try:
            return self.client.tenants(method, request)
        except romana_client.Unavailable as e:
            raise errors.unavailable("tenant-service", e.reason)

    def _ensure_tenant(self, tenant, info):
        """Creates the tenant if it is missing and that is allowed; raises otherwise."""
        try:
            self._tenants("GetTenant", pb.tenant.GetTenantRequest(name=tenant))
            return
        except romana_client.RpcFailure as f:
            if f.code != grpc.StatusCode.NOT_FOUND:
                raise errors.RomanaError(reason=str(f))
        if not self._pool.conf.create_tenants:
            raise errors.value_invalid(
                "project %s has no Romana tenant and [romana] create_tenants is false; "
                "create it with 'romanactl tenant add %s'" % (tenant, tenant))
        try:
            self._tenants("AddTenant", pb.tenant.AddTenantRequest(
                name=tenant, labels={LABEL_PROJECT: info.project_id or tenant}))
            LOG.info("romana: created tenant %s for Neutron project %s", tenant,
                     info.project_id or tenant)
        except romana_client.RpcFailure as f:
            if f.code == grpc.StatusCode.ALREADY_EXISTS:
                return  # created concurrently
            if f.code == grpc.StatusCode.RESOURCE_EXHAUSTED:
                raise errors.value_invalid(
                    "no free tenant number for project %s: %s" % (tenant, f.details))
            raise errors.value_invalid("creating tenant %s: %s" % (tenant, f.details))

    def _segments(self, tenant):
        try:
            resp = self._tenants("ListSegments", pb.tenant.ListSegmentsRequest(tenant=tenant))
        except romana_client.RpcFailure as f:
            raise errors.RomanaError(reason=str(f))
        return {s.name for s in resp.segments if s.tenant == tenant}

    def _add_segment(self, tenant, segment):
        try:
            self._tenants("AddSegment", pb.tenant.AddSegmentRequest(tenant=tenant,
                                                                    name=segment))
            LOG.info("romana: created segment %s of tenant %s", segment, tenant)
        except romana_client.RpcFailure as f:
            if f.code != grpc.StatusCode.ALREADY_EXISTS:
                raise errors.value_invalid(
                    "creating segment %s of tenant %s: %s" % (segment, tenant, f.details))

    def _error(self, f, specific):
        code = f.code
        if code == grpc.StatusCode.INVALID_ARGUMENT:
            if specific:
                return errors.InvalidIpForSubnet(ip=specific, subnet_id=self._subnet_id,
                                                 reason=f.details)
            return errors.value_invalid(f.details)
        if code == grpc.StatusCode.ALREADY_EXISTS:
            if specific:
                return errors.IpAddressAlreadyAllocated(ip=specific, subnet_id=self._subnet_id,
                                                      reason=f.details)
            return errors.value_invalid(f.details)
        if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
            return errors.IpAddressGenerationFailure(subnet_id=self._subnet_id,
                                                   reason=f.details)
        if code in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.FAILED_PRECONDITION):
            return errors.value_invalid(f.details)
        return errors.RomanaError(reason=str(f))

    def _forget(self, endpoint):
        """Best effort: make sure Romana does not keep an allocation Neutron will not
        record."""
        try:
            self.client.ipam("Release", pb.ipam.ReleaseRequest(endpoint=endpoint),
                             retry_seconds=min(2.0, self._pool.conf.retry_seconds))
        except Exception as e:
            LOG.error("romana: endpoint %s may still hold an address Neutron did not "
                      "record; release it with 'romanactl ipam release' (%s)", endpoint, e)

    # --- deallocate -----------------------------------------------------------------------

    def deallocate(self, address):
        address = _norm(address)
        # Only if this subnet's endpoint still holds it, checked in the same etcd
        # transaction as the delete: Neutron's view may be stale (the address released and
        # handed to a pod or another subnet's port meanwhile), and that holder must keep it.
        req = pb.ipam.ReleaseRequest(address=address, if_labels={LABEL_SUBNET: self._subnet_id})
        try:
            resp = self.client.ipam("Release", req)
        except romana_client.Unavailable as e:
            raise errors.unavailable("ipam-service", e.reason)
        except romana_client.RpcFailure as f:
            if f.code == grpc.StatusCode.FAILED_PRECONDITION:
                LOG.warning("romana: deallocate(%s) on subnet %s left the address to its "
                            "holder, which is not this subnet's: %s", address,
                            self._subnet_id, f.details)
                return
            if f.code == grpc.StatusCode.INVALID_ARGUMENT:
                raise errors.InvalidIpForSubnet(ip=address, subnet_id=self._subnet_id,
                                                reason=f.details)
            raise errors.RomanaError(reason=str(f))
        if not resp.HasField("endpoint"):
            LOG.debug("romana: %s was not allocated (subnet %s); nothing to release",
                      address, self._subnet_id)
            return
        LOG.debug("romana: released %s (endpoint %s)", address, resp.endpoint.id)


def _relation(cidr, space):
    """'covers' when cidr contains the whole space, 'disjoint', or 'partial'."""
    if cidr.version != space.version:
        return "disjoint"
    if cidr.first <= space.first and cidr.last >= space.last:
        return "covers"
    if cidr.last < space.first or cidr.first > space.last:
        return "disjoint"
    return "partial"
