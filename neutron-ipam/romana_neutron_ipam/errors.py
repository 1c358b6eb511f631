"""Romana answers -> Neutron's IPAM exceptions.

Every exception raised to Neutron is (a subclass of) the one Neutron's own code and API
layer know, so the user sees Neutron's usual error (400, 409, ...), with Romana's reason
appended to the message:

==========================================  ==============================================
Romana / situation                          Neutron exception (HTTP status)
==========================================  ==============================================
specific address taken (ALREADY_EXISTS)     ``IpAddressAlreadyAllocated`` (409)
specific address outside the port's          ``InvalidIpForSubnet`` (400)
host/tenant/segment CIDR, or reserved
(INVALID_ARGUMENT), or of another tenant
segment full (RESOURCE_EXHAUSTED)           ``IpAddressGenerationFailure`` (409); the
                                            subnet group turns it into
                                            ``IpAddressGenerationFailureAllSubnets``
unknown host, unknown segment, unknown      ``IpamValueInvalid`` (409)
tenant with create_tenants = false, no
free tenant number, router port, port id
holding another address, bad request
port without binding:host_id                ``DeferIpam`` (Neutron creates the port and
                                            allocates when it is bound to a host)
IPv6 EUI-64 (AutomaticAddressRequest)       ``InvalidAddressType``
service unavailable / timed out             ``oslo_db.exception.RetryRequest`` wrapping
                                            ``RomanaUnavailable`` (503): Neutron's retry
                                            decorators run the API request again; when
                                            they give up the user gets the 503
anything else                               ``RomanaError`` (500)
==========================================  ==============================================
"""

from neutron.ipam import exceptions as ipam_exc
from neutron_lib import exceptions as n_exc
from oslo_db import exception as db_exc


class RomanaUnavailable(n_exc.ServiceUnavailable):
    message = "Romana %(what)s is unavailable: %(reason)s"


class RomanaError(n_exc.NeutronException):
    message = "Romana IPAM error: %(reason)s"


class AddressAlreadyAllocated(ipam_exc.IpAddressAlreadyAllocated):
    message = ("IP address %(ip)s already allocated in subnet %(subnet_id)s "
               "(Romana: %(reason)s)")


class InvalidIpForSubnet(ipam_exc.InvalidIpForSubnet):
    message = ("IP address %(ip)s does not belong to subnet %(subnet_id)s "
               "(Romana: %(reason)s)")


class AddressGenerationFailure(ipam_exc.IpAddressGenerationFailure):
    message = ("No more IP addresses available for subnet %(subnet_id)s "
               "(Romana: %(reason)s)")


class InvalidSubnetRequest(ipam_exc.InvalidSubnetRequest):
    pass


def value_invalid(message):
    """IpamValueInvalid with a message naming Romana (409)."""
    return ipam_exc.IpamValueInvalid(message="Romana IPAM: %s" % message)


def invalid_address_type(what):
    return ipam_exc.InvalidAddressType(address_type=what)


def retriable(what, reason):
    """A retriable error for Neutron: RetryRequest around a 503."""
    return db_exc.RetryRequest(RomanaUnavailable(what=what, reason=reason))


def unavailable_reason(exc):
    """The RomanaUnavailable inside a retriable error, for tests and logs."""
    inner = getattr(exc, "inner_exc", None)
    return inner if isinstance(inner, RomanaUnavailable) else None
