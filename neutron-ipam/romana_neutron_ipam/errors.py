"""Romana answers -> Neutron's own exceptions.

A client sees an error's class name as the ``type`` of Neutron's error body
(``{"NeutronError": {"type": ..., "message": ...}}``) and matches on it (python-neutronclient's
``IpAddressAlreadyAllocatedClient``, openstacksdk's mapping by status and type). So every
class raised here carries the name of the Neutron exception it stands for, subclasses it
(the API layer maps it to the same HTTP status), and only adds Romana's reason to the
message:

==========================================  ==============================================
Romana / situation                          Neutron type (HTTP status)
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
service unavailable / timed out after       ``ServiceUnavailable`` (503), at once: not a
``retry_seconds``                           retriable error, so Neutron's retry decorator
                                            does not run the request 20 more times
anything else                               ``RomanaError``, not a Neutron exception, so
                                            Neutron answers its generic 500
                                            (``HTTPInternalServerError``) and logs ours
==========================================  ==============================================
"""

from neutron.ipam import exceptions as ipam_exc
from neutron_lib import exceptions as n_exc


class ServiceUnavailable(n_exc.ServiceUnavailable):
    message = "Romana %(what)s is unavailable: %(reason)s"


class RomanaError(RuntimeError):
    """An answer the driver has no Neutron meaning for: Neutron logs it and answers 500."""

    def __init__(self, reason):
        super().__init__("Romana IPAM error: %s" % reason)


class IpAddressAlreadyAllocated(ipam_exc.IpAddressAlreadyAllocated):
    message = ("IP address %(ip)s already allocated in subnet %(subnet_id)s "
               "(Romana: %(reason)s)")


class InvalidIpForSubnet(ipam_exc.InvalidIpForSubnet):
    message = ("IP address %(ip)s does not belong to subnet %(subnet_id)s "
               "(Romana: %(reason)s)")


class IpAddressGenerationFailure(ipam_exc.IpAddressGenerationFailure):
    message = ("No more IP addresses available for subnet %(subnet_id)s "
               "(Romana: %(reason)s)")


class InvalidSubnetRequest(ipam_exc.InvalidSubnetRequest):
    pass


def value_invalid(message):
    """IpamValueInvalid with a message naming Romana (409)."""
    return ipam_exc.IpamValueInvalid(message="Romana IPAM: %s" % message)


def invalid_address_type(what):
    return ipam_exc.InvalidAddressType(address_type=what)


def unavailable(what, reason):
    """The 503 for a service that stayed unavailable for the driver's whole retry budget.

    Deliberately not retriable for Neutron (no ``RetryRequest``): the driver has already
    retried for ``retry_seconds``, and Neutron's decorator would re-run the request up to
    20 times, each waiting that long again, so the user saw the 503 only after minutes.
    """
    return ServiceUnavailable(what=what, reason=reason)
