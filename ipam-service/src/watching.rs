//! WatchEndpoints: the ListEndpoints listing (every page) streamed again on each change of
//! the endpoints or the layout (which the wire form's segment CIDR and gateway come from).

use romana_core::authz::Identity;
use romana_proto::pb;
use romana_runtime::listings::{self, Draining, Listings};
use romana_runtime::{check_labels, current_layout};
use romana_store::Store;
use tonic::Status;

use crate::check_place_names;
use crate::listing::{list_page, MAX_PAGE};

/// The stream, once the filters are checked; `who` filters as ListEndpoints does.
pub(crate) fn watch(
    store: &Store,
    draining: Draining,
    who: Identity,
    req: pb::WatchEndpointsRequest,
) -> Result<Listings<pb::WatchEndpointsResponse>, Status> {
    check_place_names(&req.host, &req.tenant, &req.segment)?;
    check_labels(&req.labels)?;
    let keys = store.keys();
    let prefixes = vec![
        keys.endpoints().path().to_string(),
        keys.config().path().to_string(),
    ];
    let lister = store.clone();
    Ok(listings::stream(
        store,
        prefixes,
        draining,
        listings::Options::default(),
        move || {
            let (store, who, req) = (lister.clone(), who.clone(), req.clone());
            async move { all_pages(&store, &who, req).await }
        },
    ))
}

async fn all_pages(
    store: &Store,
    who: &Identity,
    req: pb::WatchEndpointsRequest,
) -> Result<pb::WatchEndpointsResponse, Status> {
    let (_, layout) = current_layout(store).await?;
    let mut endpoints = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = pb::ListEndpointsRequest {
            host: req.host.clone(),
            tenant: req.tenant.clone(),
            segment: req.segment.clone(),
            labels: req.labels.clone(),
            page_size: MAX_PAGE as u32,
            page_token,
        };
        let answer = list_page(store, &layout, who, page, MAX_PAGE).await?;
        endpoints.extend(answer.endpoints);
        if answer.next_page_token.is_empty() {
            return Ok(pb::WatchEndpointsResponse { endpoints });
        }
        page_token = answer.next_page_token;
    }
}
