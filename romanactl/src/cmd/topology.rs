//! `romanactl topology fabric`: the static routes a routed-access fabric needs.

use clap::Subcommand;
use romana_proto::pb;

use super::Ctx;
use crate::{output, view, Error, Format};

#[derive(Debug, Subcommand)]
pub enum TopologyCommand {
    /// The routes each leaf (one per rack) and the spine need: host prefixes via hosts at
    /// the leaves, one aggregate per rack via its leaf at the spine.
    Fabric,
}

// === impl TopologyCommand ===

impl TopologyCommand {
    pub async fn apply(self, ctx: &Ctx) -> Result<String, Error> {
        match self {
            TopologyCommand::Fabric => {
                let fabric = ctx
                    .topology()
                    .await?
                    .get_fabric(pb::GetFabricRequest {})
                    .await?
                    .into_inner();
                let fabric = view::Fabric::from(fabric);
                match ctx.format {
                    // One row per route, which is what one types into a switch.
                    Format::Table => output::list(&fabric.routes(), Format::Table),
                    // Nested per device, which is what a config generator walks.
                    format => output::encode(&fabric, format),
                }
            }
        }
    }
}
