"""Deferred allocation on plain ML2: what makes a port created without a host get its
Romana address when it is bound later, and the check that says when nothing does.

Nova creates a port without ``binding:host_id`` and binds it to the compute host later.
The driver cannot choose an address before it knows the host (the host is encoded in the
address), so it raises ``DeferIpam``. Neutron then records ``ip_allocation = deferred`` in
the port's DB row (``db_base_plugin_v2.create_port_db``, also in ML2's bulk create), but
it only allocates on the later binding when the *port dict* it builds for the update
carries that value (``ipam_backend_mixin.IpamBackendMixin.update_port``: ``old_port.get(
'ip_allocation') == 'deferred'``). The only code in Neutron that copies the DB column into
the port dict is the ``segments`` service plugin (``_extend_port_dict_binding``), and it
does nothing unless that plugin is loaded.

So with ML2 and without ``service_plugins = segments``, a host-less port would never get
an address. The ``romana`` ML2 mechanism driver fixes that: its ``initialize()`` calls
:func:`register_port_extender`, a port resource extender that copies the column when the
segments plugin is absent. Neutron's API layer only shows attributes of loaded extensions,
so the attribute stays internal (``GET /v2.0/ports`` does not grow an ``ip_allocation``
key that the ``ip_allocation`` extension did not announce).

:func:`problem` tells whether one of the two is in place; :func:`warn_once` logs the
misconfiguration once per process. The IPAM driver calls it when it is first used.
"""

import logging
import threading

from neutron_lib.api.definitions import ip_allocation as ipalloc_apidef
from neutron_lib.api.definitions import port as port_def
from neutron_lib.db import resource_extend
from neutron_lib.plugins import directory

LOG = logging.getLogger(__name__)

SEGMENTS_PLUGIN = "segments"
MECH_DRIVER_NAME = "romana"

_LOCK = threading.Lock()
_REGISTERED = False
_WARNED = False

HOW_TO_FIX = (
    "add 'romana' to [ml2] mechanism_drivers (it also binds the ports on Romana hosts), "
    "or add 'segments' to [DEFAULT] service_plugins")


def _extend_port_ip_allocation(port_res, port_db):
    """Port resource extender: ``port_res['ip_allocation']`` from the DB column, as the
    segments plugin does when it is loaded (then this one leaves the key to it)."""
    if directory.get_plugin(SEGMENTS_PLUGIN):
        return
    value = None
    try:
        value = port_db.get(ipalloc_apidef.IP_ALLOCATION)
    except AttributeError:
        value = getattr(port_db, ipalloc_apidef.IP_ALLOCATION, None)
    port_res[ipalloc_apidef.IP_ALLOCATION] = value or ipalloc_apidef.IP_ALLOCATION_IMMEDIATE


def register_port_extender():
    """Registers the extender (idempotent; once per process is enough)."""
    global _REGISTERED
    with _LOCK:
        if _REGISTERED:
            return
        resource_extend.register_funcs(port_def.COLLECTION_NAME,
                                       [_extend_port_ip_allocation])
        _REGISTERED = True
        LOG.info("romana: port dicts carry ip_allocation from the DB (no segments service "
                 "plugin needed), so ports created without binding:host_id get their "
                 "Romana address when they are bound")


def extender_registered():
    return _REGISTERED


def problem():
    """None when a host-less port will get its address on binding (the segments plugin or
    the romana mechanism driver is loaded in this process), else what is wrong and how to
    fix it. Also None while no core plugin is loaded yet (nothing to judge)."""
    core = directory.get_plugin()
    if core is None:
        return None
    if directory.get_plugin(SEGMENTS_PLUGIN) or _REGISTERED:
        return None
    return (
        "romana: ports created without binding:host_id (Nova creates every instance port "
        "that way) will never get an address from Romana: the driver defers their "
        "allocation until the port is bound, and Neutron only allocates on binding when "
        "the port carries ip_allocation=deferred, which needs the 'segments' service "
        "plugin or the 'romana' ML2 mechanism driver, and neither is loaded. To fix it, "
        + HOW_TO_FIX)


def warn_once():
    """Logs :func:`problem` as an error, at most once per process; returns it."""
    global _WARNED
    if _WARNED:
        return None
    text = problem()
    if directory.get_plugin() is None:
        return None  # too early to tell; ask again next time
    with _LOCK:
        if _WARNED:
            return None
        _WARNED = True
    if text:
        LOG.error(text)
    return text
