//! What the endpoint-dependent sets of the program hold, as data: for each such set, the
//! rule that says which elements one endpoint contributes. [`crate::compile`] fills the
//! sets by running these over every endpoint; [`crate::incremental`] runs them over the
//! endpoints that changed only, which is what makes an endpoint change cost O(policies)
//! instead of O(endpoints x policies). One function for both, so they cannot disagree.
//! Recipes read addresses, labels and named ports, never the endpoint's interface: which
//! interface carries a local endpoint is the `endpoints` set's business, filled by the
//! full compile only.

use std::collections::BTreeSet;

use romana_core::policy::eval::k8s_peer_matches;
use romana_core::policy::k8s;
use romana_core::policy::{ClusterView, Protocol};
use romana_core::Endpoint;

use crate::compile::proto_number;
use crate::nft::{Family, SetElement};

/// How one endpoint-dependent set is filled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Recipe {
    /// `npI_{in,eg}R_peers`: the address of every endpoint one of `selectors` (pod and
    /// namespace selectors, no ipBlocks) picks, for a policy of `namespace`.
    Peers {
        namespace: String,
        selectors: Vec<k8s::Peer>,
    },
    /// `npI_{in,eg}R_ports`: `addr . proto . port` of every named port of an endpoint
    /// whose name and protocol are in `named`.
    Ports { named: Vec<(String, Protocol)> },
}

/// Set name, the family of its addresses, and how it is filled, for every
/// endpoint-dependent set of one program.
pub type Recipes = Vec<(String, Family, Recipe)>;

impl Recipe {
    /// The elements endpoint `e` puts into a set of `family`, by its address of that family
    /// (none without one). `view` is only asked for tenant labels (namespace selectors), so
    /// it need not hold the endpoints.
    pub fn elements(&self, e: &Endpoint, view: &ClusterView, family: Family) -> Vec<SetElement> {
        let Some(address) = family.address_of(e) else {
            return Vec::new();
        };
        match self {
            Recipe::Peers {
                namespace,
                selectors,
            } => {
                let picked = selectors
                    .iter()
                    .any(|q| k8s_peer_matches(q, namespace, view, address, Some(e)));
                if picked {
                    vec![SetElement::Addr(address)]
                } else {
                    Vec::new()
                }
            }
            Recipe::Ports { named } => {
                let mut out = BTreeSet::new();
                for (name, protocol) in named {
                    for np in &e.ports {
                        if np.name == *name && np.protocol.eq_ignore_ascii_case(protocol.as_str()) {
                            out.insert(SetElement::AddrProtoPort(
                                address,
                                proto_number(*protocol, family),
                                np.port,
                            ));
                        }
                    }
                }
                out.into_iter().collect()
            }
        }
    }
}
