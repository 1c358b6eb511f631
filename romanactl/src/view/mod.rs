//! What romanactl shows. These structs, not the pb types, are what `-o json` and
//! `-o yaml` serialize: their field names and order are a contract with scripts, and must
//! not move when a proto field is added or renamed. Each is declared once: serde gives its
//! objects, `#[derive(Tabled)]` its table columns (header and cell per field), and where its
//! fields are the wire message's, [`wire_view!`] its `From<pb::X>`.
//!
//! Endpoints are identified by `endpoint` everywhere (the CONVENTIONS name), although the
//! wire field is `id`.
//!
//! # Layout
//! - `cluster`: the layout (`config`) and `status`.
//! - `host`: hosts and what their agents report.
//! - `tenant`: tenants and segments.
//! - `endpoint`: endpoints and releases.
//! - `fabric`: the routes a fabric needs.
//! - `policy`: policies, applies and `explain`.

use std::collections::BTreeMap;

/// Declares a view whose fields are its wire message's, with the same names and types, and
/// the `From` that destructures the message exhaustively: a field added to the proto fails
/// the build here until the view shows it (or the view is written out by hand).
macro_rules! wire_view {
    (
        $(#[$attr:meta])*
        pub struct $name:ident from pb::$wire:ident {
            $( $(#[$field_attr:meta])* pub $field:ident : $ty:ty, )*
        }
    ) => {
        $(#[$attr])*
        pub struct $name {
            $( $(#[$field_attr])* pub $field: $ty, )*
        }

        impl From<pb::$wire> for $name {
            fn from(wire: pb::$wire) -> Self {
                let pb::$wire { $($field),* } = wire;
                Self { $($field),* }
            }
        }
    };
}

mod cluster;
mod endpoint;
mod fabric;
mod host;
mod policy;
mod tenant;

pub use cluster::{Config, ConfigInit, Counts, Service, Status};
pub use endpoint::{Endpoint, Port, Released};
pub use fabric::{Fabric, FabricRoute, Leaf, LeafRoute, SpineRoute};
pub use host::{age, Host, HostRemoved, HostStatus};
pub use policy::{AppliedView, ApplyView, ExplainView, PolicyDeleted, PolicyView};
pub use tenant::{isolation_name, Segment, SegmentRemoved, Tenant, TenantRemoved};

// === table cells ===

/// `k=v,k2=v2` sorted by key, as `kubectl get --show-labels` prints them.
fn labels_cell(labels: &BTreeMap<String, String>) -> String {
    let joined = labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",");
    none_if_empty(joined)
}

/// A dual-stack cell: `first` alone, or `first,second` when there is a second (the
/// other IP family's space, address).
fn first_and_second(first: &str, second: &str) -> String {
    if second.is_empty() {
        first.to_string()
    } else {
        format!("{first},{second}")
    }
}

/// kubectl's placeholder: an empty cell would shift the columns for `awk`.
fn none_if_empty(cell: String) -> String {
    if cell.is_empty() {
        "<none>".into()
    } else {
        cell
    }
}

/// [`none_if_empty`] for a field the table shows as it is.
fn text_or_none(cell: &str) -> String {
    none_if_empty(cell.to_string())
}

#[cfg(test)]
mod tests {
    use tabled::Tabled;

    use super::*;
    use crate::cmd::context::ContextView;
    use crate::cmd::health::InstanceHealth;

    fn headers<T: Tabled>() -> Vec<String> {
        T::headers().into_iter().map(String::from).collect()
    }

    /// Scripts cut table columns by position: the derived headers must stay the ones the
    /// hand-written tables had.
    #[test]
    fn every_table_has_its_columns_in_their_order() {
        let config = [
            "ADDRESS-SPACE",
            "HOST-BITS",
            "RACK-BITS",
            "TENANT-BITS",
            "SEGMENT-BITS",
            "ENDPOINT-BITS",
            "SINGLE-TENANT",
        ];
        assert_eq!(headers::<Config>(), config);
        assert_eq!(headers::<ConfigInit>()[..7], config);
        assert_eq!(headers::<ConfigInit>()[7..], ["CHANGED"]);
        assert_eq!(headers::<Host>(), ["NAME", "IP", "RACK", "INDEX", "PREFIX"]);
        assert_eq!(
            headers::<Tenant>(),
            ["NAME", "ID", "ISOLATION", "MATCH", "LABELS"]
        );
        assert_eq!(headers::<Segment>(), ["TENANT", "NAME", "ID", "MATCH"]);
        assert_eq!(
            headers::<Endpoint>(),
            [
                "ENDPOINT",
                "ADDRESS",
                "HOST",
                "TENANT",
                "SEGMENT",
                "GATEWAY",
                "LABELS",
                "PORTS",
                "INTERFACE",
                "POD"
            ]
        );
        assert_eq!(headers::<FabricRoute>(), ["DEVICE", "ROUTE", "VIA", "HOST"]);
        assert_eq!(headers::<Service>(), ["KIND", "INSTANCE", "URL"]);
        assert_eq!(
            headers::<Counts>(),
            ["HOSTS", "TENANTS", "SEGMENTS", "ENDPOINTS"]
        );
        assert_eq!(
            headers::<PolicyView>(),
            ["ID", "FORM", "TENANT", "NAME", "REVISION"]
        );
        assert_eq!(
            headers::<ExplainView>(),
            ["VERDICT", "TIER", "DIRECTION", "POLICY", "RULE", "REASON"]
        );
        assert_eq!(
            headers::<ContextView>(),
            ["CURRENT", "NAME", "ROOT", "TLS-CA", "TLS-CERT", "OUTPUT"]
        );
        assert_eq!(headers::<InstanceHealth>(), ["URL", "STATUS"]);
    }

    #[test]
    fn unknown_counts_and_absent_explain_details_have_their_placeholders() {
        let counts = Counts {
            hosts: Some(2),
            ..Counts::default()
        };
        assert_eq!(crate::output::row(&counts), ["2", "?", "?", "?"]);
        let explain = ExplainView {
            verdict: "deny".into(),
            reason: "default".into(),
            tier: "baseline".into(),
            direction: None,
            policy: None,
            rule: Some(3),
            from: "a".into(),
            to: "b".into(),
            decision: serde_json::Value::Null,
        };
        assert_eq!(
            crate::output::row(&explain),
            ["deny", "baseline", "", "", "3", "default"]
        );
    }
}
