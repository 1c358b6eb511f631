"""oslo.config options of the driver, in neutron.conf's ``[romana]`` group.

Only ``root`` is required in practice; everything else has a default that suits a
neutron-server next to a Romana control plane.
"""

from oslo_config import cfg

GROUP = "romana"

romana_opts = [
    cfg.ListOpt(
        "root",
        default=["http://127.0.0.1:9600"],
        help="URL of romana-root (several, comma separated, for redundancy). The driver "
             "finds ipam-service and tenant-service through root's ListServices. "
             "https:// URLs use TLS with the ca_file/cert_file/key_file below."),
    cfg.StrOpt(
        "ca_file",
        help="PEM file of the CA that signed the Romana services' certificates "
             "(https:// URLs). Without it the system trust store is used."),
    cfg.StrOpt(
        "cert_file",
        help="PEM client certificate for mutual TLS with the Romana services."),
    cfg.StrOpt(
        "key_file",
        help="PEM private key of cert_file."),
    cfg.FloatOpt(
        "timeout",
        default=5.0, min=0.1,
        help="Seconds one gRPC call to a Romana service may take."),
    cfg.FloatOpt(
        "retry_seconds",
        default=10.0, min=0.0,
        help="For how long the driver retries a call that found the service unavailable "
             "(other replicas, fresh discovery through root, short back-off) before the "
             "API request fails with 503 ServiceUnavailable. The user sees the 503 after "
             "at most about retry_seconds + timeout; Neutron does not retry it again."),
    cfg.BoolOpt(
        "create_tenants",
        default=True,
        help="Create the Romana tenant of a Neutron project (named by the project id) on "
             "the project's first port. When false, such a port is refused until an "
             "operator runs 'romanactl tenant add <project id>'."),
    cfg.BoolOpt(
        "create_segments",
        default=False,
        help="Create a segment named in a port's binding:profile 'romana_segment' when the "
             "tenant does not have it yet. When false (default), such a port is refused "
             "until 'romanactl segment add <project id> <segment>'."),
    cfg.BoolOpt(
        "delegate_other_subnets",
        default=True,
        help="Subnets that do not cover Romana's address space (external networks for "
             "floating IPs, provider networks, the other IP family) are handled by "
             "Neutron's built-in IPAM ('internal' driver, in Neutron's own database). "
             "When false, such subnets are refused."),
]


def register_opts(conf=cfg.CONF):
    conf.register_opts(romana_opts, group=GROUP)


def list_opts():
    """For oslo-config-generator (entry point oslo.config.opts)."""
    return [(GROUP, romana_opts)]


def options(conf=cfg.CONF):
    register_opts(conf)
    return conf[GROUP]
