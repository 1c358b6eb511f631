"""Compute hosts for the API tests: each a network namespace whose kernel a real
romana-agent programs, linked to the others as hosts on one rack's network, with what
Nova's libvirt driver and a Kubernetes runtime would put on them (a VM on a tap device, a
pod through the real romana-cni plugin).

The Romana control plane and Neutron run on 127.0.0.1 of the test machine, which stands
for the management network. The agents run there too and program their host's namespace
(``--netns``). romana-cni runs inside its host's namespace, as a runtime runs it; a relay
(one thread per connection, in this process) answers its calls to root and ipam-service
on that namespace's own 127.0.0.1, so no link ever touches the machine's own network.
"""

import ctypes
import json
import os
import shutil
import socket
import subprocess
import threading
import time

import neutron_server as ns
from cluster import Proc, _service_env, bin_dir

CLONE_NEWNET = 0x40000000
# The hosts' own network (one rack, one L2): host i is 192.0.2.(10+i)/24.
HOST_NET = "192.0.2.%d"
REPORT_WITHIN = 30.0


def ip(*args, netns=None):
    argv = ["ip"] + (["-n", netns] if netns else []) + list(args)
    out = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    if out.returncode != 0:
        raise RuntimeError("%s: %s" % (" ".join(argv), out.stderr.strip()))
    return out.stdout


def _listen_in(netns, port):
    """A socket listening on 127.0.0.1:port inside ``netns``, made by a thread that enters
    the namespace and leaves it again (setns only moves the calling thread; the socket
    stays in the namespace it was made in)."""
    libc = ctypes.CDLL(None, use_errno=True)
    result = {}

    def make():
        own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        target = os.open("/var/run/netns/%s" % netns, os.O_RDONLY)
        try:
            if libc.setns(target, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns into %s" % netns)
            try:
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                s.bind(("127.0.0.1", port))
                s.listen(64)
                result["socket"] = s
            finally:
                if libc.setns(own, CLONE_NEWNET) != 0:
                    result["fatal"] = OSError(ctypes.get_errno(), "setns back")
        except Exception as e:  # noqa: BLE001  (raised in the caller's thread)
            result.setdefault("error", e)
        finally:
            os.close(own)
            os.close(target)

    t = threading.Thread(target=make)
    t.start()
    t.join()
    if "fatal" in result:  # the thread is gone; nothing else ran in that namespace
        raise result["fatal"]
    if "error" in result:
        raise result["error"]
    return result["socket"]


class Relay:
    """127.0.0.1:port inside a host's namespace -> 127.0.0.1:port of the test machine."""

    def __init__(self, netns, ports):
        self.netns = netns
        self.closing = False
        self.listeners = [_listen_in(netns, p) for p in ports]
        for s in self.listeners:
            threading.Thread(target=self._accept, args=(s,), daemon=True).start()

    def _accept(self, listener):
        port = listener.getsockname()[1]
        while not self.closing:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", port), timeout=5)
            except OSError:
                conn.close()
                continue
            upstream.settimeout(None)
            for a, b in ((conn, upstream), (upstream, conn)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src, dst):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self):
        self.closing = True
        for s in self.listeners:
            try:
                s.shutdown(socket.SHUT_RDWR)  # wakes the thread blocked in accept()
            except OSError:
                pass
            s.close()


class Compute:
    """Hosts ``names`` (registered with topology) on one link, each with its agent."""

    def __init__(self, romana, romana_view, workdir, names):
        self.romana = romana
        self.view = romana_view
        self.workdir = workdir
        self.prefix = "rn%d" % os.getpid()
        self.names = list(names)
        self.netns = {}       # host -> namespace
        self.agents = {}      # host -> Proc
        self.relays = []
        self.extra_ns = []    # VMs' and pods' namespaces
        self.address = {h: HOST_NET % (11 + i) for i, h in enumerate(self.names)}

    def start(self):
        ns.require(os.geteuid() == 0, "needs root (network namespaces for the hosts)")
        ns.require(shutil.which("ip"), "needs iproute2 ('ip')")
        ns.require(shutil.which("ping"), "needs ping (apt-get install iputils-ping)")
        agent_bin = bin_dir() / "romana-agent"
        ns.require(os.access(agent_bin, os.X_OK), "%s missing (cargo build --bins)" % agent_bin)
        # The rack's network: a bridge in a namespace of its own, one veth per host.
        rack = self._netns("rack")
        ip("link", "add", "br0", "type", "bridge", netns=rack)
        ip("link", "set", "br0", "up", netns=rack)
        for i, host in enumerate(self.names):
            h = self.netns[host] = self._netns(host)
            ip("link", "add", "eth0", "netns", h, "type", "veth", "peer", "name", "p%d" % i,
               netns=rack)
            ip("link", "set", "p%d" % i, "master", "br0", "up", netns=rack)
            ip("addr", "add", self.address[host] + "/24", "dev", "eth0", netns=h)
            ip("link", "set", "eth0", "up", netns=h)
            self.romana.add_host(host, self.address[host])
        for host in self.names:
            self.agents[host] = Proc(
                "agent-%s" % host,
                [str(agent_bin), "--host", host, "--etcd-endpoints", self.romana.etcd_url,
                 "--insecure", "--netns", self.netns[host]],
                self.workdir, env=_service_env())
        deadline = time.monotonic() + REPORT_WITHIN
        for host, agent in self.agents.items():
            while True:
                st = self.view.host_status(host)
                if st.reported and time.time() - st.alive_at < 30:
                    break
                if not agent.alive() or time.monotonic() > deadline:
                    raise RuntimeError("romana-agent for %s did not report:\n%s"
                                       % (host, agent.tail()))
                time.sleep(0.2)
        return self

    def _netns(self, name):
        full = "%s-%s" % (self.prefix, name)
        ip("netns", "add", full)
        self.extra_ns.append(full)
        ip("link", "set", "lo", "up", netns=full)
        return full

    def close(self):
        for r in self.relays:
            r.close()
        self.relays = []
        for agent in self.agents.values():
            agent.stop()
        self.agents = {}
        for full in reversed(self.extra_ns):
            subprocess.run(["ip", "netns", "del", full], capture_output=True, timeout=30)
        self.extra_ns = []

    # --- what Nova's libvirt driver does -------------------------------------------------------

    def start_vm(self, name, host, tap, address, gateway):
        """A VM on ``host``: its NIC eth0 in a namespace of its own, the host side the tap
        device Nova names (a veth stands for the tap, as the agent only needs the link),
        configured as cloud-init does from the config drive (static, no DHCP)."""
        vm = self._netns(name)
        ip("link", "add", tap, "type", "veth", "peer", "name", "eth0", "netns", vm,
           netns=self.netns[host])
        ip("addr", "add", address + "/32", "dev", "eth0", netns=vm)
        ip("link", "set", "eth0", "up", netns=vm)
        ip("route", "add", gateway, "dev", "eth0", "scope", "link", netns=vm)
        ip("route", "add", "default", "via", gateway, "dev", "eth0", netns=vm)
        return vm

    # --- what a Kubernetes runtime does ------------------------------------------------------

    def add_pod(self, name, host, tenant, segment="default"):
        """A pod on ``host`` through the real romana-cni (ADD), run in the host's namespace;
        returns (its namespace, its address)."""
        if not any(r.netns == self.netns[host] for r in self.relays):
            self.relays.append(Relay(self.netns[host], [self.romana.ports["root"],
                                                        self.romana.ports["ipam"]]))
        pod = self._netns(name)
        conf = {"cniVersion": "1.0.0", "name": "romana", "type": "romana-cni",
                "root": self.romana.root_url, "host": host, "tenant": tenant,
                "segment": segment}
        env = dict(os.environ, CNI_COMMAND="ADD", CNI_CONTAINERID=pod,
                   CNI_NETNS="/var/run/netns/%s" % pod, CNI_IFNAME="eth0",
                   CNI_PATH=str(bin_dir()),
                   CNI_ARGS="K8S_POD_NAMESPACE=%s;K8S_POD_NAME=%s" % (tenant, name))
        out = subprocess.run(["ip", "netns", "exec", self.netns[host],
                              str(bin_dir() / "romana-cni")],
                             input=json.dumps(conf), capture_output=True, text=True,
                             env=env, timeout=60)
        if out.returncode != 0:
            raise RuntimeError("romana-cni ADD of pod %s on %s failed: %s %s"
                               % (name, host, out.stdout, out.stderr))
        result = json.loads(out.stdout)
        return pod, result["ips"][0]["address"].split("/")[0]

    def pings(self, netns, address, tries=3):
        """Whether ``address`` answers an ICMP echo from ``netns`` (a few tries, 1 s each)."""
        for _ in range(tries):
            out = subprocess.run(["ip", "netns", "exec", netns, "ping", "-c", "1", "-W", "1",
                                  address], capture_output=True, timeout=10)
            if out.returncode == 0:
                return True
        return False
