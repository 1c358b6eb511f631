"""A small gRPC client of the Romana control plane: discovery through root, per-call
deadlines, and retries while a service is unavailable.

Knows nothing about Neutron: it raises :class:`RpcFailure` for an answer that is an error
and :class:`Unavailable` when no instance answered within the retry budget. The driver maps
those to Neutron's exceptions (``errors.py``).

Every call the driver makes is safe to repeat: Allocate is idempotent per endpoint id,
Release of something unknown succeeds, the rest are reads or creations whose
ALREADY_EXISTS the caller handles. So UNAVAILABLE, DEADLINE_EXCEEDED and ABORTED are
retried, on the next registered instance first.
"""

import logging
import os
import threading
import time

import grpc

from romana_neutron_ipam import pb

LOG = logging.getLogger(__name__)

# Codes after which the same call is tried again (other instance, fresh discovery).
RETRIABLE = frozenset({
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.ABORTED,
})
# Codes that leave it unknown whether the server acted on the request.
AMBIGUOUS = frozenset({grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.ABORTED})

# How long discovered service URLs are trusted before asking root again.
DISCOVERY_TTL = 30.0

# Reconnect quickly after a restart instead of gRPC's default back-off of up to 2 minutes.
CHANNEL_OPTIONS = [
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
    ("grpc.enable_retries", 0),
]

STUBS = {
    "root": lambda ch: pb.root_grpc.RootStub(ch),
    "ipam": lambda ch: pb.ipam_grpc.IpamStub(ch),
    "tenant": lambda ch: pb.tenant_grpc.TenantsStub(ch),
    "topology": lambda ch: pb.topology_grpc.TopologyStub(ch),
}


class RpcFailure(Exception):
    """A service answered with an error status."""

    def __init__(self, kind, method, code, details):
        super().__init__("%s.%s: %s: %s" % (kind, method, code.name, details))
        self.kind = kind
        self.method = method
        self.code = code
        self.details = details


class Unavailable(Exception):
    """No instance of a service answered within the retry budget."""

    def __init__(self, kind, method, reason, ambiguous=False):
        super().__init__("%s-service unavailable for %s: %s" % (kind, method, reason))
        self.kind = kind
        self.method = method
        self.reason = reason
        # True when some attempt may have reached the server (it may have acted on it).
        self.ambiguous = ambiguous


class Tls:
    """TLS material for https:// URLs."""

    def __init__(self, ca_file=None, cert_file=None, key_file=None):
        self.ca_file = ca_file
        self.cert_file = cert_file
        self.key_file = key_file

    def key(self):
        return (self.ca_file, self.cert_file, self.key_file)

    def credentials(self):
        def read(path):
            if not path:
                return None
            with open(path, "rb") as f:
                return f.read()

        return grpc.ssl_channel_credentials(
            root_certificates=read(self.ca_file),
            private_key=read(self.key_file),
            certificate_chain=read(self.cert_file))


def _target(url):
    """'http://127.0.0.1:9601' -> ('127.0.0.1:9601', False); https -> TLS."""
    url = url.strip()
    secure = False
    if url.startswith("https://"):
        secure, url = True, url[len("https://"):]
    elif url.startswith("http://"):
        url = url[len("http://"):]
    return url.rstrip("/"), secure


class Client:
    """Thread-safe; one per (configuration, process). Use :func:`get_client`."""

    def __init__(self, roots, timeout=5.0, retry_seconds=10.0, tls=None):
        if isinstance(roots, str):
            roots = [roots]
        self.roots = [r for r in (x.strip() for x in roots) if r]
        if not self.roots:
            raise ValueError("no romana root URL configured ([romana] root)")
        self.timeout = float(timeout)
        self.retry_seconds = float(retry_seconds)
        self.tls = tls or Tls()
        self._lock = threading.Lock()
        self._channels = {}  # url -> grpc.Channel
        self._services = {}  # kind -> (expires_at, [url, ...])
        self._next = {}  # kind -> round-robin index

    # --- channels -------------------------------------------------------------------------

    def _channel(self, url):
        with self._lock:
            ch = self._channels.get(url)
            if ch is None:
                target, secure = _target(url)
                if secure:
                    ch = grpc.secure_channel(target, self.tls.credentials(), CHANNEL_OPTIONS)
                else:
                    ch = grpc.insecure_channel(target, CHANNEL_OPTIONS)
                self._channels[url] = ch
            return ch

    def _drop_channel(self, url):
        with self._lock:
            ch = self._channels.pop(url, None)
        if ch is not None:
            ch.close()

    def close(self):
        with self._lock:
            channels, self._channels = list(self._channels.values()), {}
        for ch in channels:
            ch.close()

    # --- discovery ------------------------------------------------------------------------

    def _discover(self, kind, refresh=False):
        """URLs of the registered instances of ``kind``, root's own being configured."""
        if kind == "root":
            return list(self.roots)
        now = time.monotonic()
        with self._lock:
            cached = self._services.get(kind)
        if cached and not refresh and cached[0] > now:
            return list(cached[1])
        last = None
        for root in self.roots:
            try:
                resp = STUBS["root"](self._channel(root)).ListServices(
                    pb.root.ListServicesRequest(kind=kind), timeout=self.timeout)
            except grpc.RpcError as e:
                last = e
                if e.code() in RETRIABLE:
                    self._drop_channel(root)
                    continue
                raise RpcFailure("root", "ListServices", e.code(), e.details())
            urls = [s.url for s in resp.services if s.kind == kind and s.url]
            with self._lock:
                self._services[kind] = (now + DISCOVERY_TTL, urls)
            return list(urls)
        # Root unreachable: keep using what we knew, if anything.
        if cached:
            LOG.warning("romana root unreachable (%s); using cached %s-service URLs",
                        _describe(last), kind)
            return list(cached[1])
        raise _RootDown(_describe(last))

    def _forget(self, kind):
        with self._lock:
            self._services.pop(kind, None)

    def _rotation(self, kind, urls):
        with self._lock:
            i = self._next.get(kind, 0)
            self._next[kind] = i + 1
        if not urls:
            return urls
        i %= len(urls)
        return urls[i:] + urls[:i]

    # --- calls ----------------------------------------------------------------------------

    def call(self, kind, method, request, retry_seconds=None):
        """Calls ``kind``'s ``method`` with ``request``; returns the response message.

        Raises RpcFailure for an error answer (other than the retriable codes), Unavailable
        when nothing answered within ``retry_seconds`` (default: the client's).
        """
        budget = self.retry_seconds if retry_seconds is None else float(retry_seconds)
        deadline = time.monotonic() + budget
        backoff = 0.05
        ambiguous = False
        refresh = False
        last = "no attempt"
        while True:
            try:
                urls = self._discover(kind, refresh=refresh)
            except _RootDown as e:
                urls, last = [], "root %s unreachable: %s" % (",".join(self.roots), e)
            else:
                if not urls:
                    last = "no %s-service is registered with root" % kind
            for url in self._rotation(kind, urls):
                timeout = self.timeout
                try:
                    stub = STUBS[kind](self._channel(url))
                    return getattr(stub, method)(request, timeout=timeout)
                except grpc.RpcError as e:
                    code = e.code()
                    if code not in RETRIABLE:
                        raise RpcFailure(kind, method, code, e.details())
                    ambiguous = ambiguous or code in AMBIGUOUS
                    last = "%s at %s: %s" % (code.name, url, e.details())
                    LOG.debug("romana %s.%s failed (%s); trying on", kind, method, last)
                    if code == grpc.StatusCode.UNAVAILABLE:
                        self._drop_channel(url)
            # Every known instance failed: ask root again, after a short pause.
            self._forget(kind)
            refresh = True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise Unavailable(kind, method, last, ambiguous=ambiguous)
            time.sleep(min(backoff, remaining))
            backoff = min(backoff * 2, 1.0)

    # Convenience wrappers ------------------------------------------------------------------

    def ipam(self, method, request, **kw):
        return self.call("ipam", method, request, **kw)

    def tenants(self, method, request, **kw):
        return self.call("tenant", method, request, **kw)

    def list_endpoints(self, max_pages=10000, **filters):
        """Every endpoint matching ``filters`` (host, tenant, segment, labels), page by
        page: ListEndpoints answers at most a page per call."""
        found, token = [], ""
        for _ in range(max_pages):
            page = self.ipam("ListEndpoints",
                             pb.ipam.ListEndpointsRequest(page_token=token, **filters))
            found.extend(page.endpoints)
            if not page.next_page_token:
                return found
            token = page.next_page_token
        raise RpcFailure("ipam", "ListEndpoints", grpc.StatusCode.ABORTED,
                         "the endpoint listing did not end after %d pages" % max_pages)

    def root(self, method, request, **kw):
        return self.call("root", method, request, **kw)


class _RootDown(Exception):
    pass


def _describe(err):
    if err is None:
        return "no root configured"
    if isinstance(err, grpc.RpcError):
        return "%s: %s" % (err.code().name, err.details())
    return str(err)


_CLIENTS = {}
_CLIENTS_LOCK = threading.Lock()


def get_client(roots, timeout, retry_seconds, tls=None):
    """The process-wide client for this configuration (a new one after a fork: gRPC
    channels must not cross a fork)."""
    tls = tls or Tls()
    key = (os.getpid(), tuple(roots), float(timeout), float(retry_seconds), tls.key())
    with _CLIENTS_LOCK:
        client = _CLIENTS.get(key)
        if client is None:
            for k in [k for k in _CLIENTS if k[0] != os.getpid()]:
                del _CLIENTS[k]
            client = Client(roots, timeout, retry_seconds, tls)
            _CLIENTS[key] = client
        return client
