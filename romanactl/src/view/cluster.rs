//! The cluster layout (`config`) and `status`, which shows it with the services and counts.

use romana_proto::pb;
use serde::Serialize;
use tabled::Tabled;

use super::first_and_second;

wire_view! {
    /// The cluster layout.
    #[derive(Clone, Debug, PartialEq, Eq, Serialize, Tabled)]
    #[tabled(rename_all = "UPPERCASE")]
    pub struct Config from pb::ClusterConfig {
        /// Dual-stack shows both spaces, `10.0.0.0/8,fd00:10::/48`, in the one column.
        #[tabled(rename = "ADDRESS-SPACE", display("spaces_cell", self))]
        pub address_space: String,
        #[tabled(rename = "HOST-BITS")]
        pub host_bits: u32,
        #[tabled(rename = "RACK-BITS")]
        pub rack_bits: u32,
        #[tabled(rename = "TENANT-BITS")]
        pub tenant_bits: u32,
        #[tabled(rename = "SEGMENT-BITS")]
        pub segment_bits: u32,
        #[tabled(rename = "ENDPOINT-BITS", display("endpoint_bits_cell", self))]
        pub endpoint_bits: u32,
        #[tabled(rename = "SINGLE-TENANT")]
        pub single_tenant: bool,
        #[serde(skip_serializing_if = "String::is_empty")]
        #[tabled(skip)]
        pub second_address_space: String,
        #[serde(skip_serializing_if = "is_zero")]
        #[tabled(skip)]
        pub second_endpoint_bits: u32,
    }
}

/// The first space alone, or `first,second` in a dual-stack cluster.
fn spaces_cell(first: &str, c: &Config) -> String {
    first_and_second(first, &c.second_address_space)
}

/// The endpoint bits of each space, as [`spaces_cell`] lists them.
fn endpoint_bits_cell(first: &u32, c: &Config) -> String {
    let second = match c.second_endpoint_bits {
        0 => String::new(),
        n => n.to_string(),
    };
    first_and_second(&first.to_string(), &second)
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// The answer to `config init`: the layout, and whether it was new.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Tabled)]
#[tabled(rename_all = "UPPERCASE")]
pub struct ConfigInit {
    #[serde(flatten)]
    #[tabled(inline)]
    pub config: Config,
    pub changed: bool,
}

wire_view! {
    #[derive(Clone, Debug, PartialEq, Eq, Serialize, Tabled)]
    #[tabled(rename_all = "UPPERCASE")]
    pub struct Service from pb::ServiceInstance {
        pub kind: String,
        pub instance: String,
        pub url: String,
    }
}

/// Counts of what the services hold; a count is null when its service did not answer.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Tabled)]
#[tabled(rename_all = "UPPERCASE", display(Option, "count_cell"))]
pub struct Counts {
    pub hosts: Option<u64>,
    pub tenants: Option<u64>,
    pub segments: Option<u64>,
    pub endpoints: Option<u64>,
}

fn count_cell(count: &Option<u64>) -> String {
    count.map_or_else(|| "?".to_string(), |n| n.to_string())
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

#[cfg(test)]
mod tests {
    use super::*;

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
                second_address_space: String::new(),
                second_endpoint_bits: 0,
            }),
            changed: true,
        };
        assert_eq!(
            serde_json::to_string(&init).unwrap(),
            r#"{"address_space":"10.0.0.0/8","host_bits":8,"rack_bits":2,"tenant_bits":4,"segment_bits":4,"endpoint_bits":8,"single_tenant":false,"changed":true}"#
        );
    }

    #[test]
    fn a_dual_stack_config_shows_both_spaces_in_one_column_and_apart_in_json() {
        let config = Config::from(pb::ClusterConfig {
            address_space: "10.0.0.0/8".into(),
            host_bits: 8,
            rack_bits: 0,
            tenant_bits: 4,
            segment_bits: 4,
            single_tenant: false,
            endpoint_bits: 8,
            second_address_space: "fd00:10::/48".into(),
            second_endpoint_bits: 48,
        });
        let row = crate::output::row(&config);
        assert_eq!(row[0], "10.0.0.0/8,fd00:10::/48");
        assert_eq!(row[5], "8,48");
        assert_eq!(
            Config::headers().len(),
            7,
            "the columns of a single-family cluster"
        );
        let json = serde_json::to_value(&config).unwrap();
        assert_eq!(json["address_space"], "10.0.0.0/8");
        assert_eq!(json["second_address_space"], "fd00:10::/48");
        assert_eq!(json["second_endpoint_bits"], 48);
    }
}
