"""A real neutron-server for the API tests: MariaDB on a private unix socket, Neutron's own
migrations, and Neutron's WSGI application (``neutron.wsgi.api:application``) under uWSGI
on a free 127.0.0.1 port, configured with ``core_plugin = ml2``, ``ipam_driver = romana``
and ``[ml2] mechanism_drivers = romana`` against the Romana control plane of
``tests/cluster.py``.

Nothing listens anywhere but on 127.0.0.1 and unix sockets: MariaDB runs with
``--skip-networking``. Every process is started through ``cluster.Proc`` (stopped by PID,
and by the atexit net if pytest dies); uWSGI's workers are stopped by their PIDs too.
The temporary directories are removed by :meth:`close`.

Neutron 29 has no ``neutron-server`` script any more: the API is the WSGI app, and the
RPC server and periodic workers are separate programs that these tests do not need (no
agents, ``transport_url = fake:/``). ``auth_strategy = noauth``, and what that means (read in neutron/auth.py and
neutron/pecan_wsgi/hooks/context.py): a request without ``X-Project-Id`` gets an elevated
(admin) context of project ``fake_project_id`` with the roles of ``X-Roles`` plus admin; a
request *with* ``X-Project-Id`` gets no context from the middleware at all, and Neutron's
context hook then falls back to an admin context without a project. Either way the caller
is an admin, so every body names its ``project_id`` ("Running without keystone AuthN
requires that project_id is specified"), and a plain project member cannot be played.
``X-Roles: service`` adds the service role (what ``binding:profile`` needs).
"""

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import requests

import cluster as cluster_mod
from cluster import Proc, free_port

HERE = Path(__file__).resolve().parent
VENV_BIN = Path(sys.executable).parent


def ci():
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require(condition, why):
    """Skip when ``condition`` is false, but fail under CI=true: there a test that cannot
    run is a failure."""
    import pytest

    if condition:
        return
    if ci():
        pytest.fail("cannot run under CI=true: %s" % why, pytrace=False)
    pytest.skip(why)


def _find(name, *dirs):
    for d in dirs:
        p = Path(d) / name
        if os.access(p, os.X_OK):
            return str(p)
    return shutil.which(name)


def mariadbd_path():
    return _find("mariadbd", "/usr/sbin", "/usr/libexec")


def uwsgi_path():
    return _find("uwsgi", VENV_BIN)


# --- MariaDB ---------------------------------------------------------------------------------

class MariaDB:
    """A throw-away MariaDB: temporary datadir, unix socket only."""

    def __init__(self, workdir):
        self.dir = Path(workdir)
        self.datadir = self.dir / "data"
        self.socket = str(self.dir / "mysqld.sock")
        self.proc = None

    def start(self, timeout=60):
        install = _find("mariadb-install-db", "/usr/bin") or "mariadb-install-db"
        self.dir.mkdir(parents=True, exist_ok=True)
        out = self.dir / "install.log"
        with open(out, "wb") as f:
            rc = subprocess.call(
                [install, "--no-defaults", "--datadir=%s" % self.datadir, "--user=root",
                 "--auth-root-authentication-method=normal", "--skip-test-db",
                 "--skip-name-resolve"],
                stdout=f, stderr=f, stdin=subprocess.DEVNULL, timeout=120)
        if rc != 0:
            raise RuntimeError("mariadb-install-db failed:\n%s" % out.read_text()[-2000:])
        argv = [mariadbd_path(), "--no-defaults",
                "--datadir=%s" % self.datadir, "--socket=%s" % self.socket,
                "--skip-networking", "--user=root",
                "--pid-file=%s" % (self.dir / "mysqld.pid"),
                "--log-error=%s" % (self.dir / "error.log"),
                "--skip-log-bin", "--skip-name-resolve",
                "--innodb-buffer-pool-size=128M", "--innodb-log-file-size=16M",
                # A test database: durability is not the point, speed is.
                "--innodb-flush-log-at-trx-commit=0", "--sync-binlog=0",
                "--character-set-server=utf8mb4", "--collation-server=utf8mb4_general_ci",
                "--max-connections=500",
                # Neutron's default, as on a production server.
                "--transaction-isolation=READ-COMMITTED"]
        self.proc = Proc("mariadb", argv, self.dir)
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.execute("SELECT 1")
                return self
            except Exception as e:
                last = e
            if not self.proc.alive() or time.monotonic() > deadline:
                log = (self.dir / "error.log")
                raise RuntimeError("MariaDB did not start (%s):\n%s" % (
                    last, log.read_text()[-3000:] if log.exists() else ""))
            time.sleep(0.1)

    def connect(self, database=None):
        import pymysql

        return pymysql.connect(unix_socket=self.socket, user="root", database=database,
                               autocommit=True, connect_timeout=5)

    def execute(self, sql, database=None):
        conn = self.connect(database)
        try:
            with conn.cursor() as cur:
                cur.execute(sql)
                return cur.fetchall()
        finally:
            conn.close()

    def create_database(self, name):
        self.execute("CREATE DATABASE `%s` CHARACTER SET utf8mb4" % name)
        return self.url(name)

    def url(self, name):
        return ("mysql+pymysql://root@localhost/%s?unix_socket=%s&charset=utf8mb4"
                % (name, self.socket))

    def close(self):
        if self.proc:
            self.proc.stop(timeout=30)
            self.proc = None


# --- neutron-server --------------------------------------------------------------------------

POLICY_BINDING_PROFILE_FOR_ADMINS = textwrap.dedent("""\
    # Neutron 29's default lets only the service role set binding:profile. This lets
    # admins set it too (for romana_segment), as the README shows.
    "create_port:binding:profile": "rule:service_api or rule:admin_only"
    "update_port:binding:profile": "rule:service_api or rule:admin_only"
    """)


class NeutronServer:
    """One neutron-server: its database, configuration and uWSGI process."""

    def __init__(self, name, mariadb, romana_root, mechanism_drivers="romana",
                 service_plugins="", type_drivers="flat,local,vlan", policy=None,
                 romana=None, processes=2, threads=4):
        self.name = name
        self.mariadb = mariadb
        self.romana_root = romana_root
        self.mechanism_drivers = mechanism_drivers
        self.service_plugins = service_plugins
        self.type_drivers = type_drivers
        self.policy = policy
        self.romana = dict(romana or {})
        self.processes = processes
        self.threads = threads
        self.dir = Path(tempfile.mkdtemp(prefix="romana-neutron-%s-" % name))
        self.port = None
        self.proc = None
        self.timings = {}
        self._workers = set()
        self._migrating = None  # the neutron-db-manage Popen while it runs
        self.closing = False  # set by close(): a start in another thread gives up

    # --- set-up ---------------------------------------------------------------------------

    def _check_closing(self):
        if self.closing:
            raise RuntimeError("neutron-server %s closed while starting" % self.name)

    def start(self):
        try:
            db = "neutron_%s" % self.name
            self.db_url = self.mariadb.create_database(db)
            self._write_config()
            self.migrate()
            self._start_uwsgi()
        except Exception:
            self.close()
            raise
        return self

    def _write_config(self):
        paste = Path(sys.prefix) / "etc" / "neutron" / "api-paste.ini"
        if not paste.exists():
            import neutron

            paste = Path(neutron.__file__).parent / "tests" / "etc" / "api-paste.ini"
        shutil.copy(paste, self.dir / "api-paste.ini")
        romana = dict(root=self.romana_root)
        romana.update(self.romana)
        policy = ""
        if self.policy is not None:
            (self.dir / "policy.yaml").write_text(self.policy)
            policy = "policy_file = %s\n" % (self.dir / "policy.yaml")
        (self.dir / "lock").mkdir(exist_ok=True)
        conf = textwrap.dedent("""\
            [DEFAULT]
            core_plugin = ml2
            service_plugins = {service_plugins}
            ipam_driver = romana
            auth_strategy = noauth
            transport_url = fake:/
            notify_nova_on_port_status_changes = false
            notify_nova_on_port_data_changes = false
            allow_overlapping_ips = true
            debug = false
            use_stderr = true
            state_path = {dir}

            [database]
            connection = {db}
            max_pool_size = 10
            max_overflow = 20

            [ml2]
            type_drivers = {type_drivers}
            project_network_types = local
            mechanism_drivers = {mechanism_drivers}
            extension_drivers = port_security

            [ml2_type_flat]
            flat_networks = *

            [ml2_type_vlan]
            network_vlan_ranges = physnet1:100:199

            [oslo_concurrency]
            lock_path = {dir}/lock

            [oslo_policy]
            {policy}
            [romana]
            """).format(service_plugins=self.service_plugins, dir=self.dir, db=self.db_url,
                        type_drivers=self.type_drivers,
                        mechanism_drivers=self.mechanism_drivers, policy=policy)
        for k, v in romana.items():
            conf += "%s = %s\n" % (k, v)
        (self.dir / "neutron.conf").write_text(conf)

    def _env(self):
        env = {k: v for k, v in os.environ.items() if not k.startswith("ROMANA_")}
        env["OS_NEUTRON_CONFIG_DIR"] = str(self.dir)
        env["OS_NEUTRON_CONFIG_FILES"] = "neutron.conf"
        env["PYTHONWARNINGS"] = "ignore"
        env.pop("PYTHONPATH", None)
        return env

    def migrate(self):
        started = time.monotonic()
        cmd = [str(VENV_BIN / "neutron-db-manage"), "--config-file",
               str(self.dir / "neutron.conf"), "upgrade", "heads"]
        log = self.dir / "db-manage.log"
        self._check_closing()
        with open(log, "wb") as f:
            self._migrating = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT,
                                               stdin=subprocess.DEVNULL, env=self._env())
            try:
                rc = self._migrating.wait(timeout=600)
            finally:
                if self._migrating.poll() is None:
                    self._migrating.kill()
                    self._migrating.wait()
                self._migrating = None
        self._check_closing()
        self.timings["migrate"] = time.monotonic() - started
        if rc != 0:
            raise RuntimeError("neutron-db-manage upgrade heads failed:\n%s"
                               % log.read_text()[-3000:])

    def _start_uwsgi(self, timeout=180):
        self.port = free_port()
        argv = [uwsgi_path(),
                "--http-socket", "127.0.0.1:%d" % self.port,
                "--module", "neutron.wsgi.api:application",
                "--home", sys.prefix,
                "--master", "--processes", str(self.processes),
                "--threads", str(self.threads),
                # Each worker loads Neutron itself (after the fork), so the threads the
                # plugins start (the romana port status watcher) run in every worker.
                "--lazy-apps", "--enable-threads",
                "--need-app", "--die-on-term", "--no-orphans", "--thunder-lock",
                "--buffer-size", "65535",
                "--worker-reload-mercy", "5", "--reload-mercy", "5"]
        started = time.monotonic()
        self._check_closing()
        self.proc = Proc("neutron-%s" % self.name, argv, self.dir, env=self._env())
        deadline = started + timeout
        last = None
        while True:
            self._check_closing()
            if self.proc is None or not self.proc.alive():
                raise RuntimeError("neutron-server (uWSGI) exited:\n%s"
                                   % (self.proc.tail(60) if self.proc else ""))
            self._note_workers()
            ready = self.log_text().count(") ready in ")
            if ready >= self.processes:
                try:
                    r = self.get("/v2.0/networks", timeout=10)
                    if r.status_code == 200:
                        break
                    last = "%s %s" % (r.status_code, r.text[:200])
                except requests.RequestException as e:
                    last = str(e)
            if time.monotonic() > deadline:
                raise RuntimeError("neutron-server did not answer GET /v2.0/networks in "
                                   "%ds (%s):\n%s" % (timeout, last, self.proc.tail(60)))
            time.sleep(0.2)
        self._warm_up(deadline)
        self.timings["start"] = time.monotonic() - started

    def _warm_up(self, deadline):
        """Every worker creates, updates and deletes a port before the tests do.

        A worker's first port requests initialise things lazily, and not thread-safely:
        when its first POST /v2.0/ports arrive together, some are denied with 403 "Access
        was denied to this resource" (seen with 8 concurrent creates on a fresh worker,
        GETs before do not help; Neutron's policy init also publishes _ENFORCER before
        registering the rules, neutron/policy.py init()). uWSGI logs the pid that served
        each request, which tells when every worker has had its first of each. The port
        is on a network without subnets, so Romana is not involved."""
        import re
        import uuid

        project = uuid.uuid4().hex
        net = self.post("/v2.0/networks", {"network": {
            "name": "warm-up", "project_id": project,
            "provider:network_type": "local"}}, timeout=60)
        if net.status_code != 201:
            raise RuntimeError("warm-up network: %d %s" % (net.status_code, net.text[:500]))
        net_id = net.json()["network"]["id"]
        pattern = re.compile(r"\[pid: (\d+)\|app: \d+\|req: [^\]]*\] .*?"
                             r"(POST|PUT) /v2\.0/ports")
        try:
            while True:
                self._check_closing()
                self._note_workers()
                served = {}
                for pid, method in pattern.findall(self.log_text()):
                    served.setdefault(method, set()).add(int(pid))
                if self._workers and all(self._workers <= served.get(m, set())
                                         for m in ("POST", "PUT")):
                    return
                if time.monotonic() > deadline:
                    raise RuntimeError("not every uWSGI worker served a port request "
                                       "(workers %s, served %s)"
                                       % (sorted(self._workers), served))
                r = self.post("/v2.0/ports", {"port": {"network_id": net_id,
                                                       "project_id": project}},
                              timeout=60)
                if r.status_code == 201:
                    port_id = r.json()["port"]["id"]
                    self.put("/v2.0/ports/%s" % port_id, {"port": {"name": "warm"}},
                             timeout=60)
                    self.delete("/v2.0/ports/%s" % port_id, timeout=60)
        finally:
            self.delete("/v2.0/networks/%s" % net_id, timeout=60)

    def _note_workers(self):
        if self.proc is None:
            return
        try:
            kids = Path("/proc/%d/task/%d/children" % (self.proc.pid, self.proc.pid))
            self._workers.update(int(p) for p in kids.read_text().split())
        except (OSError, ValueError):
            pass

    # --- tear-down ------------------------------------------------------------------------

    def close(self):
        self.closing = True
        migrating = self._migrating
        if migrating is not None and migrating.poll() is None:
            migrating.kill()
        if self.proc is not None:
            self._note_workers()
            self.proc.stop(signal.SIGTERM, timeout=20)
            self.proc = None
        for pid in self._workers:  # uWSGI workers that outlived their master
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self._workers = set()
        shutil.rmtree(self.dir, ignore_errors=True)

    # --- inspection -----------------------------------------------------------------------

    def log_text(self):
        try:
            return (self.dir / ("neutron-%s.log" % self.name)).read_text(errors="replace")
        except OSError:
            return ""

    # --- REST -----------------------------------------------------------------------------

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.port

    def request(self, method, path, body=None, roles=None, timeout=60):
        """One REST call, as noauth's admin, with ``roles`` added (e.g. ["service"])."""
        headers = {"Accept": "application/json"}
        if roles:
            headers["X-Roles"] = ",".join(roles)
        return requests.request(method, self.url + path, json=body, headers=headers,
                                timeout=timeout)

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, body, **kw):
        return self.request("POST", path, body, **kw)

    def put(self, path, body, **kw):
        return self.request("PUT", path, body, **kw)

    def delete(self, path, **kw):
        return self.request("DELETE", path, **kw)


def expect(response, status):
    """The JSON body of ``response``, asserting its status (with the body on failure)."""
    assert response.status_code == status, "%s %s -> %d (want %d): %s" % (
        response.request.method, response.request.url, response.status_code, status,
        response.text[:2000])
    return response.json() if response.content else None


def error_type(response):
    try:
        return response.json()["NeutronError"]["type"]
    except (ValueError, KeyError, TypeError):
        return None


_ = cluster_mod  # the atexit net in cluster.py also covers our Proc instances
