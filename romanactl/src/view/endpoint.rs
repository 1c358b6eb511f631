//! Endpoints, and the answer to a release.

use std::collections::BTreeMap;

use romana_proto::pb;
use serde::Serialize;
use tabled::Tabled;

use super::{labels_cell, none_if_empty, text_or_none};

wire_view! {
    #[derive(Clone, Debug, PartialEq, Eq, Serialize)]
    pub struct Port from pb::NamedPort {
        pub name: String,
        pub protocol: String,
        pub port: u32,
    }
}

wire_view! {
    #[derive(Clone, Debug, PartialEq, Eq, Serialize)]
    pub struct Pod from pb::Pod {
        pub namespace: String,
        pub name: String,
        #[serde(skip_serializing_if = "String::is_empty")]
        pub uid: String,
        #[serde(skip_serializing_if = "String::is_empty")]
        pub infra_container_id: String,
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Tabled)]
#[tabled(rename_all = "UPPERCASE")]
pub struct Endpoint {
    pub endpoint: String,
    /// The first address; the table shows every address here, comma separated.
    #[tabled(display("addresses_cell", self))]
    pub address: String,
    /// Every address, `address` first (one of each IP family in a dual-stack cluster).
    #[tabled(skip)]
    pub addresses: Vec<String>,
    pub host: String,
    pub tenant: String,
    pub segment: String,
    #[tabled(skip)]
    pub segment_cidr: String,
    pub gateway: String,
    /// The gateway of each address, in the order of `addresses`.
    #[tabled(skip)]
    pub gateways: Vec<String>,
    #[tabled(display = "labels_cell")]
    pub labels: BTreeMap<String, String>,
    #[tabled(display = "ports_cell")]
    pub ports: Vec<Port>,
    /// The host-side interface the endpoint's record names (a VM's tap); absent when it
    /// is the one derived from the id (the CNI plugin's veth). After the columns that came
    /// before it, so the columns scripts already cut by position stay where they were.
    #[serde(skip_serializing_if = "String::is_empty")]
    #[tabled(display = "text_or_none")]
    pub interface: String,
    /// The Kubernetes pod, shown as kubectl names it (`namespace/name`); after INTERFACE
    /// for the same reason.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[tabled(display = "pod_cell")]
    pub pod: Option<Pod>,
}

/// The answer to `ipam release`: the endpoint released, or null when nothing was held
/// (releases are idempotent, so that is not an error).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Released {
    /// What was asked for, e.g. `endpoint e1` or `address 10.1.16.2`.
    pub target: String,
    pub released: Option<Endpoint>,
}

impl From<pb::Endpoint> for Endpoint {
    fn from(e: pb::Endpoint) -> Self {
        let owned = |list: Vec<&str>| list.into_iter().map(String::from).collect();
        let (addresses, gateways) = (owned(e.all_addresses()), owned(e.all_gateways()));
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
            pod,
            addresses: _,
            gateways: _,
        } = e;
        Endpoint {
            endpoint: id,
            address,
            addresses,
            gateways,
            host,
            tenant,
            segment,
            segment_cidr,
            gateway,
            interface,
            pod: pod.map(Pod::from),
            labels: labels.into_iter().collect(),
            ports: ports.into_iter().map(Port::from).collect(),
        }
    }
}

/// `name=proto/number,...`, as `--port` takes them.
fn ports_cell(ports: &[Port]) -> String {
    let ports = ports
        .iter()
        .map(|p| format!("{}={}/{}", p.name, p.protocol, p.port))
        .collect::<Vec<_>>();
    none_if_empty(ports.join(","))
}

/// Every address, comma separated (the first alone outside dual-stack).
fn addresses_cell(_first: &str, e: &Endpoint) -> String {
    e.addresses.join(",")
}

/// `namespace/name`, or `<none>` for an endpoint no runtime named a pod for.
fn pod_cell(pod: &Option<Pod>) -> String {
    none_if_empty(
        pod.as_ref()
            .map(|p| format!("{}/{}", p.namespace, p.name))
            .unwrap_or_default(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output;

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
            pod: None,
            addresses: vec!["10.3.82.7".into()],
            gateways: vec!["10.3.82.1".into()],
        }
    }

    #[test]
    fn endpoint_json_names_the_id_endpoint_in_a_stable_order() {
        let json = serde_json::to_string(&Endpoint::from(mk_endpoint())).unwrap();
        assert_eq!(
            json,
            r#"{"endpoint":"c1-eth0","address":"10.3.82.7","addresses":["10.3.82.7"],"host":"h3","tenant":"t5","segment":"s2","segment_cidr":"10.3.82.0/24","gateway":"10.3.82.1","gateways":["10.3.82.1"],"labels":{"app":"web"},"ports":[{"name":"http","protocol":"tcp","port":80}]}"#
        );
    }

    #[test]
    fn empty_cells_show_none_so_columns_stay_aligned() {
        let mut e = mk_endpoint();
        e.labels.clear();
        e.ports.clear();
        let row = output::row(&Endpoint::from(e));
        assert_eq!(row[6], "<none>");
        assert_eq!(row[7], "<none>");
        assert_eq!(row[8], "<none>", "no interface named: the derived one");
        assert_eq!(row[9], "<none>", "no pod named");
    }

    #[test]
    fn a_named_interface_is_shown_after_ports_in_the_table_and_only_when_set_in_json() {
        let mut e = mk_endpoint();
        e.interface = "tap3f2a9c1b-7d".into();
        let view = Endpoint::from(e);
        assert_eq!(Endpoint::headers()[8], "INTERFACE");
        assert_eq!(output::row(&view)[8], "tap3f2a9c1b-7d");
        let json = serde_json::to_value(&view).unwrap();
        assert_eq!(json["interface"], "tap3f2a9c1b-7d");
    }

    #[test]
    fn endpoint_table_row_shows_labels_and_ports_as_flags_take_them() {
        assert_eq!(
            output::row(&Endpoint::from(mk_endpoint())),
            [
                "c1-eth0",
                "10.3.82.7",
                "h3",
                "t5",
                "s2",
                "10.3.82.1",
                "app=web",
                "http=tcp/80",
                "<none>",
                "<none>"
            ]
        );
    }

    #[test]
    fn a_pod_shows_as_namespace_slash_name_last_and_whole_in_json() {
        let mut e = mk_endpoint();
        e.pod = Some(pb::Pod {
            namespace: "web".into(),
            name: "api-7d9f-x2".into(),
            uid: "5c3e0f6a".into(),
            infra_container_id: String::new(),
        });
        let view = Endpoint::from(e);
        assert_eq!(Endpoint::headers().last().map(|h| h.as_ref()), Some("POD"));
        assert_eq!(
            output::row(&view).last().map(String::as_str),
            Some("web/api-7d9f-x2")
        );
        let json = serde_json::to_value(&view).unwrap();
        assert_eq!(
            json["pod"],
            serde_json::json!({"namespace": "web", "name": "api-7d9f-x2", "uid": "5c3e0f6a"})
        );
    }

    #[test]
    fn a_dual_stack_endpoint_lists_both_addresses_in_the_address_column() {
        let mut e = mk_endpoint();
        e.addresses.push("fd00:10:0:352::7".into());
        e.gateways.push("fd00:10:0:352::1".into());
        let view = Endpoint::from(e);
        assert_eq!(output::row(&view)[1], "10.3.82.7,fd00:10:0:352::7");
        let json = serde_json::to_value(&view).unwrap();
        assert_eq!(json["address"], "10.3.82.7");
        assert_eq!(
            json["addresses"],
            serde_json::json!(["10.3.82.7", "fd00:10:0:352::7"])
        );
        assert_eq!(json["gateways"][1], "fd00:10:0:352::1");
        // From a service that sends no lists, the one address and gateway.
        let mut old = mk_endpoint();
        old.addresses.clear();
        old.gateways.clear();
        let view = Endpoint::from(old);
        assert_eq!(view.addresses, ["10.3.82.7"]);
        assert_eq!(view.gateways, ["10.3.82.1"]);
    }
}
