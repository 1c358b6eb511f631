//! The routes a fabric needs: nested per device for a config generator, one table row per
//! route for people.

use romana_proto::pb;
use serde::Serialize;
use tabled::Tabled;

use super::text_or_none;

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

wire_view! {
    #[derive(Clone, Debug, PartialEq, Eq, Serialize)]
    pub struct LeafRoute from pb::LeafRoute {
        pub prefix: String,
        pub via: String,
        pub host: String,
    }
}

wire_view! {
    #[derive(Clone, Debug, PartialEq, Eq, Serialize)]
    pub struct SpineRoute from pb::SpineRoute {
        pub prefix: String,
        pub rack: u32,
    }
}

/// One row of the fabric table: a route on one device.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Tabled)]
#[tabled(rename_all = "UPPERCASE")]
pub struct FabricRoute {
    pub device: String,
    pub route: String,
    pub via: String,
    #[tabled(display = "text_or_none")]
    pub host: String,
}

impl From<pb::Fabric> for Fabric {
    fn from(f: pb::Fabric) -> Self {
        let pb::Fabric { leaves, spine } = f;
        Fabric {
            leaves: leaves.into_iter().map(Leaf::from).collect(),
            spine: spine.into_iter().map(SpineRoute::from).collect(),
        }
    }
}

impl From<pb::Leaf> for Leaf {
    fn from(l: pb::Leaf) -> Self {
        let pb::Leaf {
            rack,
            aggregate,
            routes,
        } = l;
        Leaf {
            rack,
            aggregate,
            routes: routes.into_iter().map(LeafRoute::from).collect(),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output;

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
        let rows: Vec<_> = fabric.routes().iter().map(output::row).collect();
        assert_eq!(
            rows,
            [
                ["leaf-1", "10.64.0.0/16", "192.168.1.10", "h1"],
                ["spine", "10.64.0.0/10", "leaf-1", "<none>"],
            ]
        );
    }
}
