//! What romanactl shows. These structs, not the pb types, are what `-o json` and
//! `-o yaml` serialize: their field names and order are a contract with scripts, and must
//! not move when a proto field is added or renamed. Each also knows its table row.
//!
//! Endpoints are identified by `endpoint` everywhere (the CONVENTIONS name), although the
//! wire field is `id`.

use std::collections::BTreeMap;

use romana_proto::pb;
use serde::Serialize;

use crate::output::Tabular;

/// The cluster layout.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Config {
    pub address_space: String,
    pub host_bits: u32,
    pub rack_bits: u32,
    pub tenant_bits: u32,
    pub segment_bits: u32,
    pub endpoint_bits: u32,
    pub single_tenant: bool,
}

/// The answer to `config init`: the layout, and whether it was new.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ConfigInit {
    #[serde(flatten)]
    pub config: Config,
    pub changed: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Host {
    pub name: String,
    pub ip: String,
    pub rack: u32,
    pub index: u32,
    pub prefix: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct HostRemoved {
    pub removed: Host,
    /// Endpoints released with the host (`--force`).
    pub released_endpoints: u32,
}

/// What a host's agent last applied, as it reported it. Every field but `host` and
/// `reported` is zero or empty when `reported` is false, so that scripts find the same
/// fields with the same types on every host.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct HostStatus {
    pub host: String,
    /// False while the host's agent has not reported since the host was added.
    pub reported: bool,
    /// The etcd revision the agent last applied.
    pub revision: i64,
    /// The etcd revision of the last policy change the agent applied.
    pub policy_revision: i64,
    pub converged: bool,
    /// Routes read back from the kernel, e.g. `10.1.0.0/16 via 192.168.0.12`.
    pub routes: Vec<String>,
    pub nft_rules: u64,
    pub nft_sets: u64,
    pub nft_elements: u64,
    /// Routes waiting for their endpoint's interface.
    pub blocked: Vec<String>,
    pub problems: Vec<String>,
    /// Unix seconds of the apply, by the host's clock.
    pub applied_at: u64,
    /// Unix seconds of the agent's last heartbeat, by the host's clock.
    pub alive_at: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Tenant {
    pub name: String,
    pub id: u32,
    /// `segment`, `tenant` or `none`.
    pub isolation: String,
    pub labels: BTreeMap<String, String>,
    #[serde(rename = "match")]
    pub match_: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TenantRemoved {
    pub removed: Tenant,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Segment {
    pub tenant: String,
    pub name: String,
    pub id: u32,
    #[serde(rename = "match")]
    pub match_: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SegmentRemoved {
    pub removed: Segment,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Port {
    pub name: String,
    pub protocol: String,
    pub port: u32,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Endpoint {
    pub endpoint: String,
    pub address: String,
    pub host: String,
    pub tenant: String,
    pub segment: String,
    pub segment_cidr: String,
    pub gateway: String,
    pub labels: BTreeMap<String, String>,
    pub ports: Vec<Port>,
    /// The host-side interface the endpoint's record names (a VM's tap); absent when it
    /// is the one derived from the id (the CNI plugin's veth).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub interface: String,
}

/// The answer to `ipam release`: the endpoint released, or null when nothing was held
/// (releases are idempotent, so that is not an error).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Released {
    /// What was asked for, e.g. `endpoint e1` or `address 10.1.16.2`.
    pub target: String,
    pub released: Option<Endpoint>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Fabric {
    pub leaves: Vec<Leaf>,
    pub spine: Vec<SpineRoute>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Leaf {
    pub rack: u32,
    pub aggregate: String,
    pub routes: Vec<LeafRoute>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LeafRoute {
    pub prefix: String,
    pub via: String,
    pub host: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SpineRoute {
    pub prefix: String,
    pub rack: u32,
}

/// One row of the fabric table: a route on one device.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FabricRoute {
    pub device: String,
    pub route: String,
    pub via: String,
    pub host: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Service {
    pub kind: String,
    pub instance: String,
    pub url: String,
}

/// Counts of what the services hold; a count is null when its service did not answer.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub hosts: Option<u64>,
    pub tenants: Option<u64>,
    pub segments: Option<u64>,
    pub endpoints: Option<u64>,
}

/// The answer to `status`. It reports what it could not learn in `problems` instead of
/// failing, because status is what one runs when something is broken.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Status {
    pub root: String,
    /// Null before `config init`.
    pub config: Option<Config>,
    pub services: Vec<Service>,
    pub counts: Counts,
    pub problems: Vec<String>,
}

// === impl From<pb> ===

impl From<pb::ClusterConfig> for Config {
    fn from(c: pb::ClusterConfig) -> Self {
        let pb::ClusterConfig {
            address_space,
            host_bits,
            rack_bits,
            tenant_bits,
            segment_bits,
            single_tenant,
            endpoint_bits,
        } = c;
        Config {
            address_space,
            host_bits,
            rack_bits,
            tenant_bits,
            segment_bits,
            endpoint_bits,
            single_tenant,
        }
    }
}

impl From<pb::Host> for Host {
    fn from(h: pb::Host) -> Self {
        let pb::Host {
            name,
            ip,
            rack,
            index,
            prefix,
        } = h;
        Host {
            name,
            ip,
            rack,
            index,
            prefix,
        }
    }
}

impl From<pb::HostStatus> for HostStatus {
    fn from(s: pb::HostStatus) -> Self {
        let pb::HostStatus {
            host,
            reported,
            revision,
            policy_revision,
            converged,
            routes,
            nft_rules,
            nft_sets,
            nft_elements,
            blocked,
            problems,
            applied_at,
            alive_at,
        } = s;
        HostStatus {
            host,
            reported,
            revision,
            policy_revision,
            converged,
            routes,
            nft_rules,
            nft_sets,
            nft_elements,
            blocked,
            problems,
            applied_at,
            alive_at,
        }
    }
}

impl From<pb::Tenant> for Tenant {
    fn from(t: pb::Tenant) -> Self {
        let pb::Tenant {
            name,
            id,
            isolation,
            labels,
            r#match,
        } = t;
        Tenant {
            name,
            id,
            isolation: isolation_name(isolation),
            labels: labels.into_iter().collect(),
            match_: r#match,
        }
    }
}

/// The lower-case mode, as `--isolation` takes it. A number this romanactl does not know
/// is shown as such rather than guessed.
pub fn isolation_name(value: i32) -> String {
    match pb::Isolation::try_from(value) {
        Ok(pb::Isolation::Segment) => "segment".into(),
        Ok(pb::Isolation::Tenant) => "tenant".into(),
        Ok(pb::Isolation::None) => "none".into(),
        Ok(pb::Isolation::Unspecified) => "unspecified".into(),
        Err(_) => format!("unknown({value})"),
    }
}

impl From<pb::Segment> for Segment {
    fn from(s: pb::Segment) -> Self {
        let pb::Segment {
            tenant,
            name,
            id,
            r#match,
        } = s;
        Segment {
            tenant,
            name,
            id,
            match_: r#match,
        }
    }
}

impl From<pb::Endpoint> for Endpoint {
    fn from(e: pb::Endpoint) -> Self {
        let pb::Endpoint {
            id,
            address,
            host,
            tenant,
            segment,
            labels,
            ports,
            segment_cidr,
            gateway,
            interface,
        } = e;
        Endpoint {
            endpoint: id,
            address,
            host,
            tenant,
            segment,
            segment_cidr,
            gateway,
            interface,
            labels: labels.into_iter().collect(),
            ports: ports
                .into_iter()
                .map(|p| Port {
                    name: p.name,
                    protocol: p.protocol,
                    port: p.port,
                })
                .collect(),
        }
    }
}

impl From<pb::Fabric> for Fabric {
    fn from(f: pb::Fabric) -> Self {
        Fabric {
            leaves: f
                .leaves
                .into_iter()
                .map(|l| Leaf {
                    rack: l.rack,
                    aggregate: l.aggregate,
                    routes: l
                        .routes
                        .into_iter()
                        .map(|r| LeafRoute {
                            prefix: r.prefix,
                            via: r.via,
                            host: r.host,
                        })
                        .collect(),
                })
                .collect(),
            spine: f
                .spine
                .into_iter()
                .map(|s| SpineRoute {
                    prefix: s.prefix,
                    rack: s.rack,
                })
                .collect(),
        }
    }
}

impl From<pb::ServiceInstance> for Service {
    fn from(s: pb::ServiceInstance) -> Self {
        Service {
            kind: s.kind,
            instance: s.instance,
            url: s.url,
        }
    }
}

// === impl Fabric ===

impl Fabric {
    /// Every route as a table row: the leaves' host routes first, then the spine's rack
    /// aggregates, which is the order one configures a fabric in.
    pub fn routes(&self) -> Vec<FabricRoute> {
        let leaves = self.leaves.iter().flat_map(|leaf| {
            leaf.routes.iter().map(move |r| FabricRoute {
                device: leaf_name(leaf.rack),
                route: r.prefix.clone(),
                via: r.via.clone(),
                host: r.host.clone(),
            })
        });
        let spine = self.spine.iter().map(|s| FabricRoute {
            device: "spine".into(),
            route: s.prefix.clone(),
            via: leaf_name(s.rack),
            host: String::new(),
        });
        leaves.chain(spine).collect()
    }
}

fn leaf_name(rack: u32) -> String {
    format!("leaf-{rack}")
}

// === impl HostStatus ===

impl HostStatus {
    pub const HEADERS: &'static [&'static str] = &[
        "HOST",
        "REVISION",
        "CONVERGED",
        "AGENT",
        "ROUTES",
        "NFT",
        "AGE",
        "PROBLEMS",
    ];

    /// The table row as of `now` (Unix seconds): the age is the only cell that depends on
    /// the time, which is why this is not [`Tabular`]. NFT is rules/sets/elements; ROUTES
    /// and PROBLEMS are counts, listed in full by `host status NAME`.
    pub fn row_at(&self, now: u64) -> Vec<String> {
        if !self.reported {
            let none = || "<none>".to_string();
            return vec![
                self.host.clone(),
                none(),
                none(),
                none(),
                none(),
                none(),
                "never".into(),
                none(),
            ];
        }
        let silent = now.saturating_sub(self.alive_at);
        let agent = if silent <= romana_proto::convert::AGENT_SILENT_AFTER_SECS {
            "up".to_string()
        } else if self.alive_at == 0 {
            "silent".to_string()
        } else {
            format!("silent {}", age(silent))
        };
        vec![
            self.host.clone(),
            self.revision.to_string(),
            self.converged.to_string(),
            agent,
            self.routes.len().to_string(),
            format!("{}/{}/{}", self.nft_rules, self.nft_sets, self.nft_elements),
            age(now.saturating_sub(self.applied_at)),
            self.problems.len().to_string(),
        ]
    }
}

/// Seconds as kubectl's AGE column shows them: `45s`, `7m`, `5h`, `3d`, precise while
/// recent. A time ahead of ours (clock skew between host and operator) shows as `0s`.
pub fn age(seconds: u64) -> String {
    const MINUTE: u64 = 60;
    const HOUR: u64 = 60 * MINUTE;
    const DAY: u64 = 24 * HOUR;
    match seconds {
        s if s < 2 * MINUTE => format!("{s}s"),
        s if s < 3 * HOUR => format!("{}m", s / MINUTE),
        s if s < 2 * DAY => format!("{}h", s / HOUR),
        s => format!("{}d", s / DAY),
    }
}

// === impl Tabular ===

impl Tabular for Config {
    const HEADERS: &'static [&'static str] = &[
        "ADDRESS-SPACE",
        "HOST-BITS",
        "RACK-BITS",
        "TENANT-BITS",
        "SEGMENT-BITS",
        "ENDPOINT-BITS",
        "SINGLE-TENANT",
    ];

    fn row(&self) -> Vec<String> {
        vec![
            self.address_space.clone(),
            self.host_bits.to_string(),
            self.rack_bits.to_string(),
            self.tenant_bits.to_string(),
            self.segment_bits.to_string(),
            self.endpoint_bits.to_string(),
            self.single_tenant.to_string(),
        ]
    }
}

impl Tabular for ConfigInit {
    const HEADERS: &'static [&'static str] = &[
        "ADDRESS-SPACE",
        "HOST-BITS",
        "RACK-BITS",
        "TENANT-BITS",
        "SEGMENT-BITS",
        "ENDPOINT-BITS",
        "SINGLE-TENANT",
        "CHANGED",
    ];

    fn row(&self) -> Vec<String> {
        let mut row = self.config.row();
        row.push(self.changed.to_string());
        row
    }
}

impl Tabular for Host {
    const HEADERS: &'static [&'static str] = &["NAME", "IP", "RACK", "INDEX", "PREFIX"];

    fn row(&self) -> Vec<String> {
        vec![
            self.name.clone(),
            self.ip.clone(),
            self.rack.to_string(),
            self.index.to_string(),
            self.prefix.clone(),
        ]
    }
}

impl Tabular for Tenant {
    const HEADERS: &'static [&'static str] = &["NAME", "ID", "ISOLATION", "MATCH", "LABELS"];

    fn row(&self) -> Vec<String> {
        vec![
            self.name.clone(),
            self.id.to_string(),
            self.isolation.clone(),
            self.match_.clone(),
            labels_cell(&self.labels),
        ]
    }
}

impl Tabular for Segment {
    const HEADERS: &'static [&'static str] = &["TENANT", "NAME", "ID", "MATCH"];

    fn row(&self) -> Vec<String> {
        vec![
            self.tenant.clone(),
            self.name.clone(),
            self.id.to_string(),
            self.match_.clone(),
        ]
    }
}

impl Tabular for Endpoint {
    const HEADERS: &'static [&'static str] = &[
        "ENDPOINT",
        "ADDRESS",
        "HOST",
        "TENANT",
        "SEGMENT",
        "GATEWAY",
        "LABELS",
        "PORTS",
        "INTERFACE",
    ];

    fn row(&self) -> Vec<String> {
        let ports = self
            .ports
            .iter()
            .map(|p| format!("{}={}/{}", p.name, p.protocol, p.port))
            .collect::<Vec<_>>();
        vec![
            self.endpoint.clone(),
            self.address.clone(),
            self.host.clone(),
            self.tenant.clone(),
            self.segment.clone(),
            self.gateway.clone(),
            labels_cell(&self.labels),
            none_if_empty(ports.join(",")),
            // Last, so the columns scripts already cut by position stay where they were.
            none_if_empty(self.interface.clone()),
        ]
    }
}

impl Tabular for FabricRoute {
    const HEADERS: &'static [&'static str] = &["DEVICE", "ROUTE", "VIA", "HOST"];

    fn row(&self) -> Vec<String> {
        vec![
            self.device.clone(),
            self.route.clone(),
            self.via.clone(),
            none_if_empty(self.host.clone()),
        ]
    }
}

impl Tabular for Service {
    const HEADERS: &'static [&'static str] = &["KIND", "INSTANCE", "URL"];

    fn row(&self) -> Vec<String> {
        vec![self.kind.clone(), self.instance.clone(), self.url.clone()]
    }
}

impl Tabular for Counts {
    const HEADERS: &'static [&'static str] = &["HOSTS", "TENANTS", "SEGMENTS", "ENDPOINTS"];

    fn row(&self) -> Vec<String> {
        [self.hosts, self.tenants, self.segments, self.endpoints]
            .iter()
            .map(|n| n.map_or_else(|| "?".to_string(), |n| n.to_string()))
            .collect()
    }
}

/// `k=v,k2=v2` sorted by key, as `kubectl get --show-labels` prints them.
fn labels_cell(labels: &BTreeMap<String, String>) -> String {
    let joined = labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",");
    none_if_empty(joined)
}

/// kubectl's placeholder: an empty cell would shift the columns for `awk`.
fn none_if_empty(cell: String) -> String {
    if cell.is_empty() {
        "<none>".into()
    } else {
        cell
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mk_endpoint() -> pb::Endpoint {
        pb::Endpoint {
            id: "c1-eth0".into(),
            address: "10.3.82.7".into(),
            host: "h3".into(),
            tenant: "t5".into(),
            segment: "s2".into(),
            labels: [("app".to_string(), "web".to_string())].into(),
            ports: vec![pb::NamedPort {
                name: "http".into(),
                protocol: "tcp".into(),
                port: 80,
            }],
            segment_cidr: "10.3.82.0/24".into(),
            gateway: "10.3.82.1".into(),
            interface: String::new(),
        }
    }

    #[test]
    fn endpoint_json_names_the_id_endpoint_in_a_stable_order() {
        let json = serde_json::to_string(&Endpoint::from(mk_endpoint())).unwrap();
        assert_eq!(
            json,
            r#"{"endpoint":"c1-eth0","address":"10.3.82.7","host":"h3","tenant":"t5","segment":"s2","segment_cidr":"10.3.82.0/24","gateway":"10.3.82.1","labels":{"app":"web"},"ports":[{"name":"http","protocol":"tcp","port":80}]}"#
        );
    }

    #[test]
    fn tenant_json_has_lower_case_isolation_and_a_match_field() {
        let tenant = Tenant::from(pb::Tenant {
            name: "t1".into(),
            id: 1,
            isolation: pb::Isolation::None.into(),
            labels: [("kubernetes.io/metadata.name".to_string(), "t1".to_string())].into(),
            r#match: "0.0.16.0 & 0.0.240.0".into(),
        });
        let json = serde_json::to_value(&tenant).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "name": "t1",
                "id": 1,
                "isolation": "none",
                "labels": {"kubernetes.io/metadata.name": "t1"},
                "match": "0.0.16.0 & 0.0.240.0",
            })
        );
    }

    #[test]
    fn config_init_json_is_the_config_plus_changed() {
        let init = ConfigInit {
            config: Config::from(pb::ClusterConfig {
                address_space: "10.0.0.0/8".into(),
                host_bits: 8,
                rack_bits: 2,
                tenant_bits: 4,
                segment_bits: 4,
                single_tenant: false,
                endpoint_bits: 8,
            }),
            changed: true,
        };
        assert_eq!(
            serde_json::to_string(&init).unwrap(),
            r#"{"address_space":"10.0.0.0/8","host_bits":8,"rack_bits":2,"tenant_bits":4,"segment_bits":4,"endpoint_bits":8,"single_tenant":false,"changed":true}"#
        );
    }

    #[test]
    fn fabric_rows_put_leaves_before_the_spine() {
        let fabric = Fabric::from(pb::Fabric {
            leaves: vec![pb::Leaf {
                rack: 1,
                aggregate: "10.64.0.0/10".into(),
                routes: vec![pb::LeafRoute {
                    prefix: "10.64.0.0/16".into(),
                    via: "192.168.1.10".into(),
                    host: "h1".into(),
                }],
            }],
            spine: vec![pb::SpineRoute {
                prefix: "10.64.0.0/10".into(),
                rack: 1,
            }],
        });
        let rows: Vec<_> = fabric.routes().iter().map(Tabular::row).collect();
        assert_eq!(
            rows,
            [
                ["leaf-1", "10.64.0.0/16", "192.168.1.10", "h1"],
                ["spine", "10.64.0.0/10", "leaf-1", "<none>"],
            ]
        );
    }

    #[test]
    fn empty_cells_show_none_so_columns_stay_aligned() {
        let mut e = mk_endpoint();
        e.labels.clear();
        e.ports.clear();
        let row = Endpoint::from(e).row();
        assert_eq!(row[6], "<none>");
        assert_eq!(row[7], "<none>");
        assert_eq!(row[8], "<none>", "no interface named: the derived one");
    }

    #[test]
    fn a_named_interface_is_shown_last_in_the_table_and_only_when_set_in_json() {
        let mut e = mk_endpoint();
        e.interface = "tap3f2a9c1b-7d".into();
        let view = Endpoint::from(e);
        assert_eq!(Endpoint::HEADERS.last(), Some(&"INTERFACE"));
        assert_eq!(
            view.row().last().map(String::as_str),
            Some("tap3f2a9c1b-7d")
        );
        let json = serde_json::to_value(&view).unwrap();
        assert_eq!(json["interface"], "tap3f2a9c1b-7d");
    }

    fn mk_host_status() -> HostStatus {
        HostStatus::from(pb::HostStatus {
            host: "h1".into(),
            reported: true,
            revision: 42,
            policy_revision: 40,
            converged: true,
            routes: vec![
                "10.1.0.0/16 via 192.168.0.12".into(),
                "10.0.0.5 dev romana-e1".into(),
            ],
            nft_rules: 12,
            nft_sets: 3,
            nft_elements: 40,
            blocked: vec![],
            problems: vec!["kernel refused".into()],
            applied_at: 1_000,
            alive_at: 1_005,
        })
    }

    #[test]
    fn host_status_json_has_stable_snake_case_fields_in_order() {
        assert_eq!(
            serde_json::to_string(&mk_host_status()).unwrap(),
            r#"{"host":"h1","reported":true,"revision":42,"policy_revision":40,"converged":true,"routes":["10.1.0.0/16 via 192.168.0.12","10.0.0.5 dev romana-e1"],"nft_rules":12,"nft_sets":3,"nft_elements":40,"blocked":[],"problems":["kernel refused"],"applied_at":1000,"alive_at":1005}"#
        );
    }

    #[test]
    fn host_status_row_counts_routes_and_problems_and_shows_the_age() {
        assert_eq!(
            mk_host_status().row_at(1_007),
            ["h1", "42", "true", "up", "2", "12/3/40", "7s", "1"]
        );
        assert_eq!(
            mk_host_status().row_at(900)[6],
            "0s",
            "an apply ahead of our clock is not a negative age"
        );
        assert_eq!(mk_host_status().row_at(1_035)[3], "up");
        assert_eq!(mk_host_status().row_at(1_005 + 120)[3], "silent 2m");
    }

    #[test]
    fn host_that_never_reported_has_no_values_to_show() {
        let status = HostStatus::from(pb::HostStatus {
            host: "h2".into(),
            ..Default::default()
        });
        assert_eq!(
            status.row_at(1_000),
            ["h2", "<none>", "<none>", "<none>", "<none>", "<none>", "never", "<none>"]
        );
    }

    #[test]
    fn age_is_precise_while_recent() {
        let cases = [
            (0, "0s"),
            (119, "119s"),
            (120, "2m"),
            (3 * 3600 - 1, "179m"),
            (3 * 3600, "3h"),
            (48 * 3600 - 1, "47h"),
            (48 * 3600, "2d"),
        ];
        for (seconds, shown) in cases {
            assert_eq!(age(seconds), shown, "{seconds} s");
        }
    }

    #[test]
    fn unknown_isolation_numbers_are_shown_not_guessed() {
        assert_eq!(isolation_name(1), "segment");
        assert_eq!(isolation_name(42), "unknown(42)");
    }
}
