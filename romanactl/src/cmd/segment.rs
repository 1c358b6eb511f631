//! `romanactl segment add|list|remove`: segments of tenants, kept by tenant-service.

use clap::{Args, Subcommand};
use romana_proto::pb;

use super::Ctx;
use crate::{output, view, Error};

#[derive(Debug, Subcommand)]
pub enum SegmentCommand {
    /// Adds a segment with the lowest free segment number of its tenant.
    Add(Named),
    /// Lists segments, of one tenant or of all.
    List(List),
    /// Removes a segment; refused while it has endpoints, and for "default".
    Remove(Named),
}

#[derive(Debug, Args)]
pub struct Named {
    pub tenant: String,
    pub name: String,
}

#[derive(Debug, Args)]
pub struct List {
    /// Only this tenant's segments.
    pub tenant: Option<String>,
}

// === impl SegmentCommand ===

impl SegmentCommand {
    pub async fn apply(self, ctx: &Ctx) -> Result<String, Error> {
        let mut tenants = ctx.tenants().await?;
        match self {
            SegmentCommand::Add(Named { tenant, name }) => {
                let segment = tenants
                    .add_segment(pb::AddSegmentRequest { tenant, name })
                    .await?
                    .into_inner();
                output::one(&view::Segment::from(segment), ctx.format)
            }
            SegmentCommand::List(List { tenant }) => {
                let segments = tenants
                    .list_segments(pb::ListSegmentsRequest {
                        tenant: tenant.unwrap_or_default(),
                    })
                    .await?
                    .into_inner()
                    .segments;
                let segments: Vec<view::Segment> = segments.into_iter().map(Into::into).collect();
                output::list(&segments, ctx.format)
            }
            SegmentCommand::Remove(Named { tenant, name }) => {
                let segment = tenants
                    .remove_segment(pb::RemoveSegmentRequest { tenant, name })
                    .await?
                    .into_inner()
                    .segment
                    .ok_or(Error::Incomplete {
                        service: "tenant-service",
                        call: "RemoveSegment",
                        field: "segment",
                    })?;
                let removed = view::SegmentRemoved {
                    removed: segment.into(),
                };
                let text = format!(
                    "removed segment {}/{} (number {})",
                    removed.removed.tenant, removed.removed.name, removed.removed.id
                );
                output::message(&text, &removed, ctx.format)
            }
        }
    }
}
