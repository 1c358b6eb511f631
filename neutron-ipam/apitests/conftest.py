"""Fixtures of the API tests: a real Romana control plane (tests/cluster.py, imported, not
copied), a throw-away MariaDB, and real neutron-servers (uWSGI + Neutron's WSGI app, see
neutron_server.py) that the tests talk to only through the REST API.

Servers (each its own database, started on first use, stopped at the end of the session):

- ``ml2``: ML2 with ``mechanism_drivers = romana``, no service plugins. Most tests.
- ``segments``: the same plus ``service_plugins = segments`` and the README's policy
  override that lets admins set ``binding:profile``.
- ``bare``: ML2 with neither the romana mechanism driver nor the segments plugin, the
  configuration in which host-less ports never get an address.
"""

import os
import shutil
import signal
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
sys.path.insert(0, str(HERE))

import cluster as cluster_mod  # noqa: E402  (tests/cluster.py)
from cluster import Cluster, bin_dir, missing_binaries  # noqa: E402

import neutron_server as ns  # noqa: E402
from romana_view import RomanaView  # noqa: E402

# 10.0.0.0/8 | host 6 | tenant 6 | segment 4 | endpoint 8 (253 usable per segment).
LAYOUT = dict(address_space="10.0.0.0/8", host_bits=6, tenant_bits=6, segment_bits=4)
SPACE = LAYOUT["address_space"]
HOSTS = {"h1": "127.0.1.1", "h2": "127.0.1.2", "h3": "127.0.1.3"}
# Hosts with a kernel of their own (a namespace) and a real agent, for traffic tests.
COMPUTE_HOSTS = ("a1", "a2")

SERVER_CONFIGS = {
    "ml2": dict(mechanism_drivers="romana", service_plugins=""),
    "segments": dict(mechanism_drivers="romana", service_plugins="segments",
                     policy=ns.POLICY_BINDING_PROFILE_FOR_ADMINS),
    # An operator's ML2 with Open vSwitch and the Romana IPAM only: no OVS agent runs
    # here, so nothing binds, and nothing knows about deferred allocation.
    "bare": dict(mechanism_drivers="openvswitch", service_plugins=""),
}

TIMINGS = []  # (what, seconds), printed at the end


def pytest_configure(config):
    missing = missing_binaries()
    if missing:
        raise pytest.UsageError(
            "romana binaries missing in %s: %s; run cargo build --bins at the repository "
            "root first" % (bin_dir(), ", ".join(missing)))
    if not shutil.which("etcd"):
        raise pytest.UsageError("etcd not found on PATH (apt-get install etcd-server)")
    signal.signal(signal.SIGTERM, _on_sigterm)


# What a SIGTERM (a CI timeout) must undo, newest last: each fixture registers the same
# function its own teardown runs (they are idempotent).
CLEANUPS = []


def _on_sigterm(signum, frame):
    # Kill every process we started at once (a CI timeout does not wait long), then let
    # each fixture's undo remove what is left: directories, the network namespace.
    for s in list(_SERVERS):
        s.closing = True
    cluster_mod._kill_leftovers()
    for undo in reversed(list(CLEANUPS)):
        try:
            undo()
        except Exception:
            pass
    os._exit(128 + signum)


def guarded(undo):
    """Registers ``undo`` for SIGTERM; use as ``with guarded(undo): yield ...``: on the
    way out it is unregistered and run."""
    import contextlib

    @contextlib.contextmanager
    def scope():
        CLEANUPS.append(undo)
        try:
            yield
        finally:
            if undo in CLEANUPS:
                CLEANUPS.remove(undo)
            undo()

    return scope()


def pytest_terminal_summary(terminalreporter):
    if TIMINGS:
        terminalreporter.section("neutron-server timings")
        for what, secs in TIMINGS:
            terminalreporter.write_line("%-40s %6.1fs" % (what, secs))


_SERVERS = []


# Which server each fixture stands for, to start the ones the selected tests need.
SERVER_FIXTURES = {"api": "ml2", "seg_api": "segments", "bare_api": "bare"}
NEEDED = set()


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(session, config, items):
    """The outage test goes last: if ipam-service's outage is answered slowly, Neutron
    may still be retrying those requests when the test is over. And note which servers
    the selected tests use, so that they start together (their migrations overlap); last,
    so that ``-k`` has already deselected what will not run."""
    items.sort(key=lambda item: item.module.__name__ == "test_outage")
    for item in items:
        NEEDED.update(SERVER_FIXTURES[f] for f in getattr(item, "fixturenames", ())
                      if f in SERVER_FIXTURES)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """On a failure, the end of each running server's log goes into the report (the logs
    themselves are removed with their temporary directories)."""
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        for s in _SERVERS:
            if s.proc is not None:
                tail = "\n".join(s.log_text().splitlines()[-80:])
                report.sections.append(("neutron-server %s log (tail)" % s.name, tail))


@pytest.fixture(scope="session")
def romana():
    """The Romana control plane: etcd + root, topology, tenant, ipam; hosts h1..h3."""
    workdir = tempfile.mkdtemp(prefix="romana-apitests-cluster-")
    c = Cluster(workdir, LAYOUT)

    def undo():
        c.close()
        shutil.rmtree(workdir, ignore_errors=True)

    with guarded(undo):
        c.start()
        for name, ip in HOSTS.items():
            c.add_host(name, ip)
        yield c


@pytest.fixture(scope="session")
def romana_view(romana):
    return RomanaView(romana)


@pytest.fixture(scope="session")
def compute(romana, romana_view):
    """Compute hosts a1 and a2 on one rack's network, each a namespace with its own
    romana-agent (apitests/compute.py)."""
    from compute import Compute

    workdir = tempfile.mkdtemp(prefix="romana-apitests-compute-")
    c = Compute(romana, romana_view, workdir, COMPUTE_HOSTS)

    def undo():
        c.close()
        shutil.rmtree(workdir, ignore_errors=True)

    with guarded(undo):
        c.start()
        yield c


@pytest.fixture(scope="session")
def mariadb():
    ns.require(ns.mariadbd_path(), "mariadbd not found (apt-get install mariadb-server)")
    ns.require(ns.uwsgi_path(), "uwsgi not found in the virtualenv (pip install uWSGI)")
    workdir = tempfile.mkdtemp(prefix="romana-apitests-mariadb-")
    db = ns.MariaDB(workdir)

    def undo():
        db.close()
        shutil.rmtree(workdir, ignore_errors=True)

    with guarded(undo):
        started = time.monotonic()
        db.start()
        TIMINGS.append(("MariaDB start", time.monotonic() - started))
        yield db


class Servers:
    """Starts each configuration's server on first use; closes them all at the end."""

    def __init__(self, romana, mariadb):
        self.romana = romana
        self.mariadb = mariadb
        self.running = {}
        self.lock = threading.Lock()

    def get(self, name):
        with self.lock:
            if name in self.running:
                return self.running[name]
        return self._start(name)

    def start_together(self, names):
        """Starts several servers at once, in threads; the first failure is raised."""
        from concurrent.futures import ThreadPoolExecutor

        names = [n for n in names if n not in self.running]
        if not names:
            return
        with ThreadPoolExecutor(len(names)) as pool:
            futures = [pool.submit(self._start, n) for n in names]
        for f in futures:
            f.result()

    def _start(self, name):
        s = ns.NeutronServer(name, self.mariadb, self.romana.root_url,
                             **SERVER_CONFIGS[name])
        with self.lock:
            _SERVERS.append(s)
        s.start()
        with self.lock:
            TIMINGS.append(("%s: neutron-db-manage upgrade heads" % name,
                            s.timings["migrate"]))
            TIMINGS.append(("%s: uWSGI start to GET /v2.0/networks" % name,
                            s.timings["start"]))
            self.running[name] = s
        return s

    def close(self):
        for s in self.running.values():
            s.close()
        self.running = {}


@pytest.fixture(scope="session")
def servers(romana, mariadb):
    s = Servers(romana, mariadb)

    def undo():
        s.close()
        for server in list(_SERVERS):  # also those that failed while starting
            server.close()

    with guarded(undo):
        started = time.monotonic()
        s.start_together(sorted(NEEDED))
        if NEEDED:
            TIMINGS.append(("%s started together" % "+".join(sorted(NEEDED)),
                            time.monotonic() - started))
        yield s


@pytest.fixture(scope="session")
def api(servers):
    """The main server: ML2 + the romana mechanism driver."""
    return servers.get("ml2")


@pytest.fixture(scope="session")
def seg_api(servers):
    """ML2 + romana mechanism driver + the segments service plugin (+ policy override)."""
    return servers.get("segments")


# --- helpers ---------------------------------------------------------------------------------

def project():
    """A Keystone-style project id (32 hex digits), a valid Romana tenant name."""
    return uuid.uuid4().hex


def make_network(api, name="romana", shared=True, network_type="flat",
                 physical_network="romana", segmentation_id=None, project_id=None):
    body = {"name": name, "shared": shared}
    if network_type:
        body["provider:network_type"] = network_type
    if physical_network:
        body["provider:physical_network"] = physical_network
    if segmentation_id is not None:
        body["provider:segmentation_id"] = segmentation_id
    if project_id:
        body["project_id"] = project_id
    return ns.expect(api.post("/v2.0/networks", {"network": body}), 201)["network"]


def make_subnet(api, network, cidr=SPACE, expect_status=201, **extra):
    body = dict(network_id=network["id"], cidr=cidr, ip_version=4, name="sub-" + cidr)
    body.update(extra)
    r = api.post("/v2.0/subnets", {"subnet": body})
    if expect_status is None:
        return r
    return ns.expect(r, expect_status)["subnet"]


def port_body(network, project_id, host=None, fixed_ips=None, profile=None,
              device_owner="compute:nova", **extra):
    body = {"network_id": network["id"], "project_id": project_id,
            "device_owner": device_owner, "device_id": str(uuid.uuid4())}
    if host is not None:
        body["binding:host_id"] = host
    if fixed_ips is not None:
        body["fixed_ips"] = fixed_ips
    if profile is not None:
        body["binding:profile"] = profile
    body.update(extra)
    return {"port": body}


def create_port(api, network, project_id, status=201, **kw):
    r = api.post("/v2.0/ports", port_body(network, project_id, **kw))
    if status is None:
        return r
    return ns.expect(r, status)["port"]


def show_port(api, port_id):
    return ns.expect(api.get("/v2.0/ports/%s" % port_id), 200)["port"]


def bind(api, port_id, host, status=200):
    r = api.put("/v2.0/ports/%s" % port_id, {"port": {"binding:host_id": host}})
    if status is None:
        return r
    return ns.expect(r, status)["port"]


def delete_port(api, port_id):
    ns.expect(api.delete("/v2.0/ports/%s" % port_id), 204)


@pytest.fixture(scope="session")
def romana_net(api):
    """The shared flat network 'romana' with the 10.0.0.0/8 subnet, on the main server."""
    net = make_network(api)
    subnet = make_subnet(api, net)
    return net, subnet


@pytest.fixture(scope="session")
def seg_romana_net(seg_api):
    net = make_network(seg_api)
    subnet = make_subnet(seg_api, net)
    return net, subnet
