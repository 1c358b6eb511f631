"""Ports bound by the ``romana`` mechanism driver go ACTIVE once their host's agent has
wired them.

When the driver binds a port it leaves ML2's L2 provisioning block on it (as the agent
based drivers do), so the port stays DOWN. This watcher, a daemon thread in every
neutron-server process that loads the driver, looks for such ports: status DOWN,
admin state up, the active binding's ``vif_type`` tap and its binding level bound by
``romana``. For each one it asks topology-service for its host's status
(``GetHostStatus``) and completes the block (``provisioning_blocks.provisioning_complete``
with the L2 agent entity) when

- the host's agent has reported and is alive (``alive_at`` at most
  ``[romana] agent_alive_seconds`` old), and
- every address of the port inside Romana's address space is among the agent's routes,
  as ``<address>/32 dev tap<first 11 characters of the port id>`` (``/128`` for IPv6,
  as ``ip route`` prints them; trailing words such as ``scope link`` do not matter).

ML2 then sets the port ACTIVE (``Ml2Plugin._port_provisioned``) unless another block,
such as the DHCP agent's, is still there.

Bounded work: at most ``port_status_batch`` ports and one GetHostStatus per distinct host
per poll, the rest in turn on the next polls (ordered by port id). Pace: every
``port_status_interval`` seconds after a poll that set a port going; 1.5 times longer
after each poll where ports waited and none did, up to ``port_status_max_interval``,
which is also the pause while no port waits; doubling up to that maximum while Romana or
the database fail. Binding a port wakes the watcher of that process at once and resets
the pace. Completing a
block twice is harmless (Neutron expects it from HA agents), so several processes
watching the same ports only repeat work.

The watcher only ever moves ports to ACTIVE; it does not set a port DOWN when its agent
goes away.
"""

import ipaddress
import logging
import os
import threading
import time

from neutron_lib.api.definitions import portbindings
from neutron_lib.callbacks import resources
from neutron_lib import constants as n_const

from romana_neutron_ipam import client as romana_client
from romana_neutron_ipam import pb

LOG = logging.getLogger(__name__)

DRIVER_NAME = "romana"
SPACE_CACHE_SECONDS = 60.0


def tap_name(port_id):
    return ("tap" + port_id)[:14]


def routed_by_device(routes):
    """{device: {host address}} of the host routes among ``routes`` (strings as ``ip route``
    prints them): "10.1.2.3/32 dev tapabc scope link" -> {"tapabc": {10.1.2.3}}. Routes
    to wider prefixes (other hosts, via a gateway) are left out."""
    found = {}
    for route in routes:
        words = route.split()
        if len(words) < 3 or "dev" not in words[1:-1]:
            continue
        dev = words[words.index("dev", 1) + 1]
        try:
            net = ipaddress.ip_network(words[0], strict=True)
        except ValueError:
            continue
        if net.prefixlen == net.max_prefixlen:
            found.setdefault(dev, set()).add(net.network_address)
    return found


class Watcher:
    """One per process; :func:`start` makes it, and after a fork it starts anew."""

    def __init__(self, conf, client_factory):
        self.conf = conf
        self._client_factory = client_factory
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = None
        self._pid = None
        self._lock = threading.Lock()
        self._cursor = ""
        self._space = (0.0, None)
        self._host_state = {}  # host -> last logged problem, to log each change once
        self.polls = 0

    # --- thread ---------------------------------------------------------------------------

    def ensure_running(self):
        if self.conf.port_status_interval <= 0:
            return
        with self._lock:
            if self._pid == os.getpid() and self._thread and self._thread.is_alive():
                return
            self._pid = os.getpid()
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="romana-port-status",
                                            daemon=True)
            self._thread.start()
        LOG.info("romana: port status watcher running in process %d (every %.1fs while "
                 "ports wait, at most %.1fs apart)", os.getpid(),
                 self.conf.port_status_interval, self.conf.port_status_max_interval)

    def kick(self):
        """A port was just bound here: look soon."""
        self.ensure_running()
        self._wake.set()

    def stop(self):
        self._stop.set()
        self._wake.set()

    def _run(self):
        base = self.conf.port_status_interval
        longest = max(self.conf.port_status_max_interval, base)
        pause = base
        failing = base
        while not self._stop.is_set():
            try:
                waiting, completed = self.poll_once()
                failing = base
                if not waiting:
                    pause = longest
                elif completed:
                    pause = base
                else:
                    # Ports wait, none got anywhere: look less often, up to the longest.
                    pause = min(max(pause, base) * 1.5, longest)
                next_pause = pause
            except Exception as e:  # keep watching whatever went wrong
                failing = min(failing * 2, longest)
                next_pause = failing
                LOG.warning("romana: port status poll failed (%s: %s); next in %.1fs",
                            type(e).__name__, e, next_pause)
            if self._wake.wait(next_pause):
                pause = base  # a port was just bound here
            self._wake.clear()

    # --- one poll -------------------------------------------------------------------------

    def poll_once(self):
        """Looks at up to port_status_batch waiting ports; returns (how many were waiting,
        how many of them it completed)."""
        from neutron_lib import context as n_context

        self.polls += 1
        ctx = n_context.get_admin_context()
        ports = self._waiting_ports(ctx)
        if not ports:
            return 0, 0
        by_host = {}
        for port_id, host, addresses in ports:
            by_host.setdefault(host, []).append((port_id, addresses))
        space = self._address_space()
        completed = 0
        for host, host_ports in by_host.items():
            wired = self._wired_on(host)
            if wired is None:
                continue
            for port_id, addresses in host_ports:
                mine = [a for a in addresses if space is None or any(a in s for s in space)]
                routed = wired.get(tap_name(port_id), set())
                if mine and all(a in routed for a in mine):
                    self._complete(ctx, port_id, host, mine)
                    completed += 1
                else:
                    LOG.debug("romana: port %s on %s waits for its agent to route %s to "
                              "%s", port_id, host, ", ".join(map(str, mine)) or "(none)",
                              tap_name(port_id))
        return len(ports), completed

    def _waiting_ports(self, ctx):
        import sqlalchemy as sa
        from neutron.db import models_v2
        from neutron.plugins.ml2 import models as ml2_models
        from neutron_lib.db import api as db_api

        Port, Binding, Level = models_v2.Port, ml2_models.PortBinding, \
            ml2_models.PortBindingLevel
        limit = self.conf.port_status_batch
        with db_api.CONTEXT_READER.using(ctx):
            rows = (ctx.session.query(Port.id, Binding.host)
                    .join(Binding, Binding.port_id == Port.id)
                    .join(Level, sa.and_(Level.port_id == Port.id,
                                         Level.host == Binding.host))
                    .filter(Port.status == n_const.PORT_STATUS_DOWN,
                            Port.admin_state_up == sa.true(),
                            Binding.status == n_const.ACTIVE,
                            Binding.vif_type == portbindings.VIF_TYPE_TAP,
                            Binding.host != "",
                            Level.driver == DRIVER_NAME,
                            Port.id > self._cursor)
                    .order_by(Port.id).limit(limit).all())
            ids = [r[0] for r in rows]
            addresses = {}
            if ids:
                for port_id, address in (ctx.session.query(models_v2.IPAllocation.port_id,
                                                           models_v2.IPAllocation.ip_address)
                                         .filter(models_v2.IPAllocation.port_id.in_(ids))):
                    addresses.setdefault(port_id, []).append(ipaddress.ip_address(address))
        # The next poll goes on after the last one seen, or starts over.
        self._cursor = ids[-1] if len(ids) == limit else ""
        return [(port_id, host, addresses.get(port_id, [])) for port_id, host in rows]

    def _address_space(self):
        """Romana's address space(s), cached; None when root cannot say (then every
        address of the port must be routed)."""
        at, space = self._space
        if space is not None and time.monotonic() - at < SPACE_CACHE_SECONDS:
            return space
        try:
            cfg = self._client_factory().root("GetConfig", pb.root.GetConfigRequest(),
                                              retry_seconds=0)
        except (romana_client.Unavailable, romana_client.RpcFailure) as e:
            LOG.debug("romana: no address space from root (%s)", e)
            return space
        spaces = [ipaddress.ip_network(cfg.address_space)]
        self._space = (time.monotonic(), spaces)
        return spaces

    def _wired_on(self, host):
        """{tap device: {routed address}} on ``host``, or None while its agent is not
        reported or not alive (logged once per change)."""
        try:
            status = self._client_factory().call(
                "topology", "GetHostStatus", pb.topology.GetHostStatusRequest(host=host),
                retry_seconds=0)
        except romana_client.Unavailable:
            raise
        except romana_client.RpcFailure as f:
            self._note(host, "topology-service: %s" % f)
            return None
        if not status.reported:
            self._note(host, "its romana-agent has not reported yet")
            return None
        age = time.time() - status.alive_at
        if age > self.conf.agent_alive_seconds:
            self._note(host, "its romana-agent's last heartbeat is %.0fs old (more than "
                             "agent_alive_seconds = %.0f)" % (age,
                                                              self.conf.agent_alive_seconds))
            return None
        self._note(host, None)
        return routed_by_device(status.routes)

    def _note(self, host, problem):
        if self._host_state.get(host) == problem:
            return
        self._host_state[host] = problem
        if problem:
            LOG.warning("romana: ports bound on host %s stay DOWN: %s", host, problem)
        else:
            LOG.info("romana: host %s's agent is alive; its wired ports go ACTIVE", host)

    def _complete(self, ctx, port_id, host, addresses):
        from neutron.db import provisioning_blocks

        LOG.info("romana: port %s is wired on host %s (%s routed to %s); completing its "
                 "L2 provisioning block", port_id, host, ", ".join(map(str, addresses)),
                 tap_name(port_id))
        provisioning_blocks.provisioning_complete(
            ctx, port_id, resources.PORT, provisioning_blocks.L2_AGENT_ENTITY)


_WATCHER = None
_WATCHER_LOCK = threading.Lock()


def _after_fork():
    # Threads do not survive fork (uWSGI without lazy-apps, neutron's own workers): the
    # child starts its own watcher.
    w = _WATCHER
    if w is not None:
        w._thread = None
        w._pid = None
        w._lock = threading.Lock()
        w.ensure_running()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)


def start(conf):
    """The process's watcher, running (unless port_status_interval is 0)."""
    global _WATCHER
    from romana_neutron_ipam import mech_driver

    with _WATCHER_LOCK:
        if _WATCHER is None:
            _WATCHER = Watcher(conf, lambda: mech_driver.get_client(conf))
    _WATCHER.ensure_running()
    return _WATCHER


def get():
    return _WATCHER
