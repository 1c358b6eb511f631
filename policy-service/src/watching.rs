//! The policy listing, as ListPolicies answers it and WatchPolicies streams it.

use romana_core::authz::{Action, Identity};
use romana_core::policy::PolicyId;
use romana_proto::pb;
use romana_runtime::authz::may;
use romana_runtime::listings::{self, Draining, Listings};
use romana_runtime::{check_name, store_status};
use romana_store::Store;
use tonic::Status;

use crate::policy_object;

/// Every policy `who` may read, or the Kubernetes ones of `tenant` when it is not empty:
/// Romana form first, then Kubernetes, each by id.
pub async fn list(store: &Store, who: &Identity, tenant: &str) -> Result<Vec<pb::Policy>, Status> {
    if !tenant.is_empty() {
        check_name("tenant", tenant)?;
    }
    let keys = store.keys();
    let prefix = if tenant.is_empty() {
        keys.policies()
    } else {
        keys.tenant_policies_of(tenant)
    };
    let listing = store.list(&prefix).await.map_err(store_status)?;
    let mut items: Vec<(PolicyId, pb::Policy)> = listing
        .items
        .iter()
        .filter(|v| may(who, Action::read(policy_object(&v.value.id()))))
        .map(|v| (v.value.id(), pb::Policy::from((&v.value, v.mod_revision))))
        .collect();
    items.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(items.into_iter().map(|(_, p)| p).collect())
}

/// WatchPolicies: [`list`] again whenever a policy (of `tenant`, if given) changes.
pub fn watch(
    store: &Store,
    draining: Draining,
    who: Identity,
    tenant: String,
) -> Result<Listings<pb::ListPoliciesResponse>, Status> {
    if !tenant.is_empty() {
        check_name("tenant", &tenant)?;
    }
    let keys = store.keys();
    let prefix = if tenant.is_empty() {
        keys.policies()
    } else {
        keys.tenant_policies_of(&tenant)
    };
    let lister = store.clone();
    Ok(listings::stream(
        store,
        vec![prefix.path().to_string()],
        draining,
        listings::Options::default(),
        move || {
            let (store, who, tenant) = (lister.clone(), who.clone(), tenant.clone());
            async move {
                let policies = list(&store, &who, &tenant).await?;
                Ok(pb::ListPoliciesResponse { policies })
            }
        },
    ))
}
