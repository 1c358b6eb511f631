//! Segments of a tenant: added with the tenant's lowest free segment number, removed only
//! without endpoints; `default` lives as long as its tenant.

use std::collections::{BTreeMap, BTreeSet};

use romana_core::names::validate_segment_name;
use romana_core::{alloc::lowest_free, Layout, Segment};
use romana_proto::pb;
use romana_runtime::{
    bad_name, check_name, contended, current_layout, preview, store_status, MAX_ATTEMPTS,
};
use romana_store::StoreError;
use tonic::Status;

use crate::{id_of, ids_of, TenantService, DEFAULT_SEGMENT};

impl TenantService {
    pub(crate) async fn add_segment(
        &self,
        req: pb::AddSegmentRequest,
    ) -> Result<pb::Segment, Status> {
        validate_segment_name(&req.name).map_err(bad_name)?;
        check_name("tenant", &req.tenant)?;
        let keys = self.store.keys();
        for _ in 0..MAX_ATTEMPTS {
            let (_, layout) = current_layout(&self.store).await?;
            let tenant = self.get_tenant(&req.tenant).await?;
            if let Some(s) = self
                .store
                .get(&keys.segment(&req.tenant, &req.name))
                .await
                .map_err(store_status)?
            {
                return Err(Status::already_exists(format!(
                    "segment {}/{} already exists (number {})",
                    req.tenant, req.name, s.value.id
                )));
            }
            let ids = self
                .store
                .list(&keys.segment_ids_of(&req.tenant))
                .await
                .map_err(store_status)?;
            let used: BTreeSet<u32> = ids.items.iter().filter_map(id_of).collect();
            let Some(id) = lowest_free(&used, 0..=(layout.max_segments() - 1) as u32) else {
                return Err(Status::resource_exhausted(format!(
                    "tenant {} uses all {} segment numbers (segment bits {}); remove a segment first",
                    req.tenant,
                    layout.max_segments(),
                    layout.config().segment_bits
                )));
            };
            let segment = Segment {
                tenant: req.tenant.clone(),
                name: req.name.clone(),
                id,
            };
            // Comparing the tenant's revision keeps a segment from outliving a tenant removed
            // concurrently.
            let result = self
                .store
                .txn()
                .create(&keys.segment(&req.tenant, &req.name), &segment)
                .create(&keys.segment_id(&req.tenant, id), &segment.name)
                .expect_unchanged(&keys.tenant(&req.tenant), tenant.mod_revision)
                .commit()
                .await;
            match result {
                Ok(_) => {
                    tracing::info!(tenant = %req.tenant, segment = %req.name, id, "segment added");
                    return Ok(pb::Segment::from((&segment, tenant.value.id, &layout)));
                }
                Err(StoreError::Conflict { .. }) => continue,
                Err(e) => return Err(store_status(e)),
            }
        }
        Err(contended("adding segment", &req.name))
    }

    pub(crate) async fn remove_segment(
        &self,
        req: pb::RemoveSegmentRequest,
    ) -> Result<pb::Segment, Status> {
        check_name("tenant", &req.tenant)?;
        check_name("segment", &req.name)?;
        if req.name == DEFAULT_SEGMENT {
            return Err(Status::failed_precondition(format!(
                "segment {DEFAULT_SEGMENT} lives as long as its tenant; remove tenant {} instead",
                req.tenant
            )));
        }
        let keys = self.store.keys();
        let (_, layout) = current_layout(&self.store).await?;
        for _ in 0..MAX_ATTEMPTS {
            let tenant = self.get_tenant(&req.tenant).await?;
            let segment = self
                .store
                .get(&keys.segment(&req.tenant, &req.name))
                .await
                .map_err(store_status)?
                .ok_or_else(|| {
                    Status::not_found(format!(
                        "segment {}/{} does not exist",
                        req.tenant, req.name
                    ))
                })?;
            let endpoints = self
                .store
                .list(&keys.segment_endpoints_of(&req.tenant, &req.name))
                .await
                .map_err(store_status)?;
            if !endpoints.items.is_empty() {
                let ids = ids_of(&endpoints.items);
                return Err(Status::failed_precondition(format!(
                    "segment {}/{} has {} endpoint(s) ({}); release them first",
                    req.tenant,
                    req.name,
                    ids.len(),
                    preview(&ids)
                )));
            }
            let result = self
                .store
                .txn()
                .delete(&keys.segment(&req.tenant, &req.name), segment.mod_revision)
                .delete_unchecked(&keys.segment_id(&req.tenant, segment.value.id))
                .expect_empty(&keys.segment_endpoints_of(&req.tenant, &req.name))
                .commit()
                .await;
            match result {
                Ok(_) => {
                    tracing::info!(tenant = %req.tenant, segment = %req.name, "segment removed");
                    return Ok(pb::Segment::from((
                        &segment.value,
                        tenant.value.id,
                        &layout,
                    )));
                }
                Err(StoreError::Conflict { .. }) => continue,
                Err(e) => return Err(store_status(e)),
            }
        }
        Err(contended("removing segment", &req.name))
    }

    pub(crate) async fn list_segments(
        &self,
        tenant: &str,
        layout: &Layout,
    ) -> Result<Vec<pb::Segment>, Status> {
        if !tenant.is_empty() {
            check_name("tenant", tenant)?;
        }
        let keys = self.store.keys();
        let tenants = self
            .store
            .list(&keys.tenants())
            .await
            .map_err(store_status)?;
        let ids: BTreeMap<&str, u32> = tenants
            .items
            .iter()
            .map(|t| (t.value.name.as_str(), t.value.id))
            .collect();
        if !tenant.is_empty() && !ids.contains_key(tenant) {
            return Err(Status::not_found(format!("tenant {tenant} does not exist")));
        }
        let prefix = if tenant.is_empty() {
            keys.segments()
        } else {
            keys.segments_of(tenant)
        };
        let listing = self.store.list(&prefix).await.map_err(store_status)?;
        let mut segments: Vec<Segment> = listing.items.into_iter().map(|s| s.value).collect();
        segments.sort_by(|a, b| (&a.tenant, a.id).cmp(&(&b.tenant, b.id)));
        Ok(segments
            .iter()
            // A segment whose tenant vanished between the two reads is skipped, not shown
            // with a made-up match.
            .filter_map(|s| {
                ids.get(s.tenant.as_str())
                    .map(|&t| pb::Segment::from((s, t, layout)))
            })
            .collect())
    }
}
