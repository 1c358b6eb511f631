//! Hosts, and what their agents last applied.

use romana_proto::pb;
use serde::Serialize;
use tabled::Tabled;

use super::first_and_second;

wire_view! {
    #[derive(Clone, Debug, PartialEq, Eq, Serialize, Tabled)]
    #[tabled(rename_all = "UPPERCASE")]
    pub struct Host from pb::Host {
        pub name: String,
        /// A host with an address of each IP family shows both, `192.168.0.1,fd00:ff::1`,
        /// in the one column.
        #[tabled(display("ip_cell", self))]
        pub ip: String,
        pub rack: u32,
        pub index: u32,
        pub prefix: String,
        /// Dual-stack: the fabric address of the other IP family; absent when there is none.
        #[serde(skip_serializing_if = "String::is_empty")]
        #[tabled(skip)]
        pub second_ip: String,
    }
}

impl Host {
    /// `ip`, or `ip,second_ip` for a host with an address of each family.
    pub fn ips_cell(&self) -> String {
        first_and_second(&self.ip, &self.second_ip)
    }
}

fn ip_cell(_ip: &str, h: &Host) -> String {
    h.ips_cell()
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct HostRemoved {
    pub removed: Host,
    /// Endpoints released with the host (`--force`).
    pub released_endpoints: u32,
}

wire_view! {
    /// What a host's agent last applied, as it reported it. Every field but `host` and
    /// `reported` is zero or empty when `reported` is false, so that scripts find the same
    /// fields with the same types on every host.
    #[derive(Clone, Debug, PartialEq, Eq, Serialize)]
    pub struct HostStatus from pb::HostStatus {
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
    /// the time, which is why this is not [`Tabled`]. NFT is rules/sets/elements; ROUTES
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

#[cfg(test)]
mod tests {
    use super::*;

    fn mk_host(second_ip: &str) -> Host {
        Host::from(pb::Host {
            name: "h1".into(),
            ip: "192.168.0.1".into(),
            rack: 0,
            index: 1,
            prefix: "10.1.0.0/16".into(),
            second_ip: second_ip.into(),
        })
    }

    #[test]
    fn a_host_with_two_addresses_shows_both_in_the_ip_column_and_apart_in_json() {
        let dual = mk_host("fd00:ff::1");
        assert_eq!(
            crate::output::row(&dual),
            ["h1", "192.168.0.1,fd00:ff::1", "0", "1", "10.1.0.0/16"]
        );
        assert_eq!(
            serde_json::to_string(&dual).unwrap(),
            r#"{"name":"h1","ip":"192.168.0.1","rack":0,"index":1,"prefix":"10.1.0.0/16","second_ip":"fd00:ff::1"}"#
        );
        let single = mk_host("");
        assert_eq!(crate::output::row(&single)[1], "192.168.0.1");
        assert_eq!(
            serde_json::to_string(&single).unwrap(),
            r#"{"name":"h1","ip":"192.168.0.1","rack":0,"index":1,"prefix":"10.1.0.0/16"}"#,
            "the JSON of a single-address host is what it was"
        );
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
}
