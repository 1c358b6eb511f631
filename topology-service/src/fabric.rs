//! The fabric view on the wire: [`romana_core::fabric::view`], converted at this edge.

use romana_core::{AddrError, Host, Layout};
use romana_proto::pb;

/// The routes a routed-access fabric needs for `hosts` (see [`romana_core::fabric`]).
pub fn view(hosts: &[Host], layout: &Layout) -> Result<pb::Fabric, AddrError> {
    romana_core::fabric::view(hosts, layout).map(|f| pb::Fabric::from(&f))
}
