//! ListEndpoints: one page at a time, read from the narrowest index the filters allow; the
//! server reads on until the page is full or the index ends, so a filter that matches
//! little costs etcd reads, not client round trips or memory.

use romana_core::authz::{Action, Identity};
use romana_core::labels::first_missing;
use romana_core::Layout;
use romana_proto::pb;
use romana_runtime::authz::may;
use romana_runtime::{check_labels, check_name, store_status};
use romana_store::{EndpointIndex, Store};
use tonic::Status;

use crate::{check_place_names, endpoint_object, IpamService};

/// Endpoints per ListEndpoints page unless the caller asks for fewer, and the most it may.
const DEFAULT_PAGE: usize = 500;
pub(crate) const MAX_PAGE: usize = 5000;

impl IpamService {
    /// One page of endpoints matching the filters (see the module docs).
    pub(crate) async fn list(
        &self,
        who: &Identity,
        req: pb::ListEndpointsRequest,
    ) -> Result<pb::ListEndpointsResponse, Status> {
        let size = check(&req)?;
        let (_, layout) = self.layout(false).await?;
        list_page(&self.store, &layout, who, req, size).await
    }
}

/// The page size `req` asks for, once its filters and token are checked.
fn check(req: &pb::ListEndpointsRequest) -> Result<usize, Status> {
    check_place_names(&req.host, &req.tenant, &req.segment)?;
    check_labels(&req.labels)?;
    let size = match req.page_size as usize {
        0 => DEFAULT_PAGE,
        n if n > MAX_PAGE => {
            return Err(Status::invalid_argument(format!(
                "page_size {n} is over the limit of {MAX_PAGE}"
            )))
        }
        n => n,
    };
    if !req.page_token.is_empty() {
        let parts: Vec<&str> = req.page_token.split('/').collect();
        if parts.len() > 2 || parts.iter().any(|p| check_name("endpoint", p).is_err()) {
            return Err(Status::invalid_argument(format!(
                "page_token {} is not one this service handed out",
                romana_core::text::quote(&req.page_token)
            )));
        }
    }
    Ok(size)
}

/// One page of `size` endpoints matching `req` that `who` may read; `req` is checked.
pub(crate) async fn list_page(
    store: &Store,
    layout: &Layout,
    who: &Identity,
    req: pb::ListEndpointsRequest,
    size: usize,
) -> Result<pb::ListEndpointsResponse, Status> {
    let index = if !req.host.is_empty() {
        EndpointIndex::Host(&req.host)
    } else if !req.segment.is_empty() && !req.tenant.is_empty() {
        EndpointIndex::Segment {
            tenant: &req.tenant,
            segment: &req.segment,
        }
    } else if !req.tenant.is_empty() {
        EndpointIndex::Tenant(&req.tenant)
    } else {
        EndpointIndex::All
    };
    let matches = |filter: &str, value: &str| filter.is_empty() || filter == value;
    let mut endpoints = Vec::new();
    let mut after = req.page_token.clone();
    let next_page_token = loop {
        let page = store
            .endpoints_page(index, &after, size - endpoints.len())
            .await
            .map_err(store_status)?;
        endpoints.extend(
            page.endpoints
                .iter()
                .filter(|e| {
                    matches(&req.host, &e.host)
                        && matches(&req.tenant, &e.tenant)
                        && matches(&req.segment, &e.segment)
                        && first_missing(&e.labels, &req.labels).is_none()
                        && may(who, Action::read(endpoint_object(e)))
                })
                .map(|e| pb::Endpoint::from((e, layout))),
        );
        match page.next {
            Some(next) if endpoints.len() >= size => break next,
            Some(next) => after = next,
            None => break String::new(),
        }
    };
    Ok(pb::ListEndpointsResponse {
        endpoints,
        next_page_token,
    })
}
