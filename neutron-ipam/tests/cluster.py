"""A real Romana control plane for the tests: etcd plus romana-root, -topology, -tenant and
-ipam, each a process on free loopback ports, with a temporary etcd data dir. Every
process is stopped by its PID when the cluster closes (also when a test fails), and an
atexit hook catches anything left if pytest itself dies.
"""

import atexit
import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import ipaddress

import grpc

from romana_neutron_ipam import pb

REPO = Path(__file__).resolve().parents[2]
SERVICES = ("root", "topology", "tenant", "ipam")
BINARIES = ["romana-%s" % s for s in SERVICES] + ["romanactl"]


def bin_dir():
    if os.environ.get("ROMANA_BIN_DIR"):
        return Path(os.environ["ROMANA_BIN_DIR"])
    target = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
    if not target.is_absolute():
        target = REPO / target
    return target / "debug"


def missing_binaries():
    d = bin_dir()
    return [b for b in BINARIES if not os.access(d / b, os.X_OK)]


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


_LIVE = {}  # pid -> Popen, for the atexit safety net


@atexit.register
def _kill_leftovers():
    for proc in list(_LIVE.values()):
        if proc.poll() is None:
            proc.kill()
            proc.wait()


class Proc:
    def __init__(self, name, argv, log_dir, env=None):
        self.name = name
        self.argv = argv
        self.log = Path(log_dir) / ("%s.log" % name)
        with open(self.log, "ab") as out:
            self.popen = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT,
                                          stdin=subprocess.DEVNULL, env=env)
        self.pid = self.popen.pid
        _LIVE[self.pid] = self.popen

    def alive(self):
        return self.popen.poll() is None

    def stop(self, sig=signal.SIGTERM, timeout=10):
        if self.alive():
            os.kill(self.pid, sig)
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.kill(self.pid, signal.SIGKILL)
                self.popen.wait()
        _LIVE.pop(self.pid, None)

    def tail(self, n=30):
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""


def _service_env():
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROMANA_")}
    env.setdefault("RUST_LOG", "info")
    return env


class Cluster:
    """One etcd and one instance of each service. ``layout`` is a ClusterConfig dict."""

    def __init__(self, workdir, layout):
        self.dir = Path(workdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.layout = layout
        self.procs = {}
        self.ports = {}
        self.etcd_url = None
        self._channels = []

    # --- lifecycle ------------------------------------------------------------------------

    def start(self):
        try:
            self._start_etcd()
            for kind in SERVICES:
                self.start_service(kind)
            self.wait_registered(SERVICES)
            self.root_stub().InitConfig(
                pb.root.InitConfigRequest(config=pb.common.ClusterConfig(**self.layout)),
                timeout=10)
        except Exception as e:
            logs = "\n".join("--- %s ---\n%s" % (n, p.tail()) for n, p in self.procs.items())
            self.close()
            raise RuntimeError("starting the romana test cluster failed: %s\n%s" % (e, logs))
        return self

    def close(self):
        for ch in self._channels:
            ch.close()
        self._channels = []
        for name in [n for n in self.procs if n != "etcd"] + ["etcd"]:
            proc = self.procs.get(name)
            if proc:
                proc.stop()

    def _start_etcd(self):
        client, peer = free_port(), free_port()
        self.etcd_url = "http://127.0.0.1:%d" % client
        peer_url = "http://127.0.0.1:%d" % peer
        argv = ["etcd", "--name", "test", "--data-dir", str(self.dir / "etcd"),
                "--listen-client-urls", self.etcd_url,
                "--advertise-client-urls", self.etcd_url,
                "--listen-peer-urls", peer_url,
                "--initial-advertise-peer-urls", peer_url,
                "--initial-cluster", "test=" + peer_url,
                "--initial-cluster-state", "new",
                "--log-level", "warn"]
        self.procs["etcd"] = Proc("etcd", argv, self.dir)
        deadline = time.monotonic() + 20
        while True:
            try:
                with urllib.request.urlopen(self.etcd_url + "/health", timeout=1) as r:
                    if json.loads(r.read()).get("health") == "true":
                        return
            except Exception:
                pass
            if not self.procs["etcd"].alive() or time.monotonic() > deadline:
                raise RuntimeError("etcd did not become healthy")
            time.sleep(0.1)

    def start_service(self, kind, port=None):
        """Starts (or restarts) one service, on its previous port unless told otherwise."""
        port = port or self.ports.get(kind) or free_port()
        self.ports[kind] = port
        argv = [str(bin_dir() / ("romana-%s" % kind)),
                "--etcd-endpoints", self.etcd_url,
                "--listen", "127.0.0.1:%d" % port,
                # Plaintext gRPC and etcd on loopback: the services refuse both unless asked.
                "--insecure"]
        self.procs[kind] = Proc(kind, argv, self.dir, env=_service_env())
        return port

    def stop_service(self, kind, sig=signal.SIGTERM):
        self.procs[kind].stop(sig)

    def etcd_create_revision(self, key_suffix):
        """The etcd create revision of the one key ending in key_suffix (e.g.
        "endpoints/<id>"), read with etcdctl: a release followed by a re-allocation of the
        same id shows as a new one."""
        env = dict(os.environ, ETCDCTL_API="3")
        keys = subprocess.run(
            ["etcdctl", "--endpoints", self.etcd_url, "get", "--prefix", "", "--keys-only"],
            check=True, capture_output=True, text=True, env=env).stdout.split()
        [key] = [k for k in keys if k.endswith("/" + key_suffix)]
        out = subprocess.run(["etcdctl", "--endpoints", self.etcd_url, "get", key,
                              "-w", "json"], check=True, capture_output=True, text=True,
                             env=env).stdout
        return json.loads(out)["kvs"][0]["create_revision"]

    def signal_service(self, kind, sig):
        """Sends a signal that does not end the process (SIGSTOP freezes it, SIGCONT
        thaws it)."""
        os.kill(self.procs[kind].pid, sig)

    def wait_registered(self, kinds, timeout=30):
        """Until root lists an answering instance of every kind."""
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            for name, proc in self.procs.items():
                if not proc.alive():
                    raise RuntimeError("%s exited early" % name)
            try:
                resp = self.root_stub().ListServices(pb.root.ListServicesRequest(),
                                                     timeout=2)
                urls = {s.kind: s.url for s in resp.services}
                if all(k in urls for k in kinds) and all(
                        "127.0.0.1:%d" % self.ports[k] in
                        [s.url.split("//")[-1] for s in resp.services if s.kind == k]
                        for k in kinds):
                    return
                last = "registered: %s" % sorted(urls)
            except grpc.RpcError as e:
                last = e.details()
            time.sleep(0.1)
        raise RuntimeError("services did not register in time (%s)" % last)

    # --- access ---------------------------------------------------------------------------

    @property
    def root_url(self):
        return "http://127.0.0.1:%d" % self.ports["root"]

    def _stub(self, kind, factory):
        ch = grpc.insecure_channel("127.0.0.1:%d" % self.ports[kind])
        self._channels.append(ch)
        return factory(ch)

    def root_stub(self):
        return self._stub("root", pb.root_grpc.RootStub)

    def tenants(self):
        return self._stub("tenant", pb.tenant_grpc.TenantsStub)

    def topology(self):
        return self._stub("topology", pb.topology_grpc.TopologyStub)

    def ipam(self):
        return self._stub("ipam", pb.ipam_grpc.IpamStub)

    def add_host(self, name, ip):
        return self.topology().AddHost(pb.topology.AddHostRequest(name=name, ip=ip),
                                       timeout=10)

    def romanactl(self, *args):
        argv = [str(bin_dir() / "romanactl"), "--root", self.root_url] + list(args)
        out = subprocess.run(argv, capture_output=True, text=True, timeout=60)
        if out.returncode != 0:
            raise RuntimeError("romanactl %s failed: %s" % (" ".join(args), out.stderr))
        return out.stdout

    def endpoints_json(self):
        """``romanactl ipam list -o json``, parsed."""
        return json.loads(self.romanactl("ipam", "list", "-o", "json"))

    # --- what Romana holds, read straight from the services (never through Neutron) -----

    def endpoints(self, **filters):
        """Every endpoint matching ListEndpoints' filters, page by page."""
        found, token = [], ""
        while True:
            page = self.ipam().ListEndpoints(
                pb.ipam.ListEndpointsRequest(page_token=token, **filters), timeout=10)
            found.extend(page.endpoints)
            if not page.next_page_token:
                return found
            token = page.next_page_token

    def endpoints_of_port(self, port_id):
        from romana_neutron_ipam.driver import LABEL_PORT

        return [e for e in self.endpoints() if e.labels.get(LABEL_PORT) == port_id]

    def expected_cidr(self, host, tenant, segment="default"):
        """The (host, tenant, segment) CIDR computed here from the layout bits, the host's
        prefix and the tenant and segment numbers, independently of ipam-service."""
        layout = self.root_stub().GetConfig(pb.root.GetConfigRequest(), timeout=5)
        h = self.topology().GetHost(pb.topology.GetHostRequest(name=host), timeout=5)
        t = self.tenants().GetTenant(pb.tenant.GetTenantRequest(name=tenant), timeout=5)
        segs = self.tenants().ListSegments(pb.tenant.ListSegmentsRequest(tenant=tenant),
                                           timeout=5).segments
        seg_id = [s.id for s in segs if s.name == segment][0]
        host_net = ipaddress.ip_network(h.prefix)
        space = ipaddress.ip_network(layout.address_space)
        endpoint_bits = (space.max_prefixlen - space.prefixlen - layout.host_bits
                         - layout.tenant_bits - layout.segment_bits)
        offset = ((t.id << layout.segment_bits) | seg_id) << endpoint_bits
        plen = space.max_prefixlen - endpoint_bits
        return ipaddress.ip_network((int(host_net.network_address) + offset, plen))
