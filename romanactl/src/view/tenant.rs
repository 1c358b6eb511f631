//! Tenants and their segments.

use std::collections::BTreeMap;

use romana_proto::pb;
use serde::Serialize;
use tabled::Tabled;

use super::labels_cell;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Tabled)]
#[tabled(rename_all = "UPPERCASE")]
pub struct Tenant {
    pub name: String,
    pub id: u32,
    /// `segment`, `tenant` or `none`.
    pub isolation: String,
    #[tabled(order = 4, display = "labels_cell")]
    pub labels: BTreeMap<String, String>,
    #[tabled(rename = "MATCH")]
    pub r#match: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TenantRemoved {
    pub removed: Tenant,
}

wire_view! {
    #[derive(Clone, Debug, PartialEq, Eq, Serialize, Tabled)]
    #[tabled(rename_all = "UPPERCASE")]
    pub struct Segment from pb::Segment {
        pub tenant: String,
        pub name: String,
        pub id: u32,
        #[tabled(rename = "MATCH")]
        pub r#match: String,
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SegmentRemoved {
    pub removed: Segment,
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
            r#match,
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

#[cfg(test)]
mod tests {
    use super::*;

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
    fn unknown_isolation_numbers_are_shown_not_guessed() {
        assert_eq!(isolation_name(1), "segment");
        assert_eq!(isolation_name(42), "unknown(42)");
    }
}
