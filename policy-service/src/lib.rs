//! policy-service: network policies in the Romana form and as Kubernetes NetworkPolicy,
//! parsed, defaulted and validated by `romana_core::policy` and stored in etcd under
//! `policies/` (see `romana_store::keys`), where every agent watches them.
//!
//! - Apply is all or nothing: every object of the input is validated first, then all are
//!   written in one etcd transaction that compares every key read, so a concurrent change
//!   makes the whole apply retry rather than half-happen.
//! - Explain answers from etcd's current policies, tenants and endpoints with
//!   `romana_core::policy::evaluate`, the evaluator the agents' programs are held to.
//! - A Kubernetes policy's namespace (tenant) must exist, as the API server requires of any
//!   namespaced object (FAILED_PRECONDITION otherwise, naming the tenant): a typo in a
//!   namespace would otherwise store a policy that protects nothing. The apply compares the
//!   tenants' revisions, so a tenant removed concurrently makes it retry.
//! - Bad input is refused before any expensive work: every text is bounded in size (1 MiB in
//!   all) and nesting (64 levels) by one linear scan (`romana_core::policy::bounds`) before a
//!   parser sees it; parsing then runs on a blocking thread, one apply at a time per replica,
//!   so a big valid document never stalls other calls.
//!
//! # Layout
//! - [`PolicyService`]: the gRPC handlers.
//! - [`SERVING`], [`routes`]: what [`romana_runtime::serve`] runs.
//! - `explaining`: ExplainPolicy, the evaluator over the current state.
//! - [`watching`]: the policy listing, and its watch (WatchPolicies).
#![forbid(unsafe_code)]

mod explaining;
pub mod watching;

use std::collections::{BTreeMap, BTreeSet};
use std::str::FromStr;
use std::sync::Arc;

use romana_core::authz::{Action, Identity, Object, Verb};
use romana_core::policy::bounds::{check_bounds, MAX_DOCUMENT_BYTES};
use romana_core::policy::{self, Policy, PolicyId};
use romana_proto::pb::{self, policies_server};
use romana_runtime::authz::{caller, require};
use romana_runtime::listings::Draining;
use romana_runtime::serve::Routes;
use romana_runtime::{check_name, contended, store_status, Serving, MAX_ATTEMPTS};
use romana_store::{Store, StoreError, Txn, Versioned};
use tonic::{Request, Response, Status};

/// Most policies one apply may carry: one etcd transaction holds at most 128 writes.
pub const MAX_APPLY: usize = policy::parse::MAX_POLICIES;

pub struct PolicyService {
    store: Store,
    /// One parse at a time per replica, on a blocking thread: a big valid document takes a
    /// core for a while, never the async runtime.
    parsing: Arc<tokio::sync::Semaphore>,
    draining: Draining,
}

/// policy-service as [`romana_runtime::serve`] runs it.
pub const SERVING: Serving = Serving {
    kind: "policy",
    grpc_name: "romana.v1.Policies",
    routes,
};

/// The policy-service handlers over `store`.
pub fn routes(store: &Store, draining: Draining) -> Routes {
    romana_runtime::grpc_routes!(policies_server::PoliciesServer::new(PolicyService {
        store: store.clone(),
        parsing: Arc::new(tokio::sync::Semaphore::new(1)),
        draining,
    }))
}

/// A policy as authorization sees it: Romana-form ones belong to no tenant.
fn policy_object(id: &PolicyId) -> Object<'_> {
    match id {
        PolicyId::Romana { name } => Object::Policy { tenant: None, name },
        PolicyId::Kubernetes { tenant, name } => Object::Policy {
            tenant: Some(tenant),
            name,
        },
    }
}

fn parse_id(text: &str) -> Result<PolicyId, Status> {
    let id = PolicyId::from_str(text).map_err(|e| Status::invalid_argument(format!("id: {e}")))?;
    match &id {
        PolicyId::Romana { name } => check_name("policy", name)?,
        PolicyId::Kubernetes { tenant, name } => {
            check_name("tenant", tenant)?;
            check_name("policy", name)?;
        }
    }
    Ok(id)
}

// === impl PolicyService ===

impl PolicyService {
    /// The cheap checks, on the calling task, before any parser runs: sizes, counts, nesting.
    fn check_request(req: &pb::ApplyPoliciesRequest) -> Result<(), Status> {
        let total = req.document.len() + req.policies.iter().map(|p| p.json.len()).sum::<usize>();
        if total > MAX_DOCUMENT_BYTES {
            return Err(Status::invalid_argument(format!(
                "the policies given are {total} bytes; at most {MAX_DOCUMENT_BYTES} bytes (1 MiB) \
                 are applied at once, split the input"
            )));
        }
        if req.policies.len() > MAX_APPLY {
            return Err(Status::invalid_argument(format!(
                "{} policies in one apply; at most {MAX_APPLY} are applied atomically, split the input",
                req.policies.len()
            )));
        }
        for (i, text) in std::iter::once(&req.document)
            .chain(req.policies.iter().map(|p| &p.json))
            .enumerate()
        {
            check_bounds(text).map_err(|e| {
                let field = if i == 0 {
                    "document".to_string()
                } else {
                    format!("policies[{}]", i - 1)
                };
                Status::invalid_argument(format!("{field}: {e}"))
            })?;
        }
        Ok(())
    }

    /// Every policy of the request, validated; nothing is stored when any is refused.
    fn parse_request(req: &pb::ApplyPoliciesRequest) -> Result<Vec<Policy>, Status> {
        let mut texts: Vec<&str> = Vec::new();
        if !req.document.trim().is_empty() {
            texts.push(&req.document);
        }
        texts.extend(req.policies.iter().map(|p| p.json.as_str()));
        if texts.is_empty() {
            return Err(Status::invalid_argument(
                "no policy given: set document (JSON or YAML text) or policies",
            ));
        }
        let mut all: Vec<Policy> = Vec::new();
        let mut seen: BTreeSet<PolicyId> = BTreeSet::new();
        for text in texts {
            let parsed = policy::parse_documents(text)
                .map_err(|e| Status::invalid_argument(e.to_string()))?;
            for p in parsed {
                if !seen.insert(p.id()) {
                    return Err(Status::invalid_argument(format!(
                        "{} appears twice in the input",
                        p.describe()
                    )));
                }
                all.push(p);
            }
            if all.len() > MAX_APPLY {
                break;
            }
        }
        if all.len() > MAX_APPLY {
            return Err(Status::invalid_argument(format!(
                "{} policies in one apply; at most {MAX_APPLY} are applied atomically, split the input",
                all.len()
            )));
        }
        Ok(all)
    }

    async fn apply(
        &self,
        who: &Identity,
        req: pb::ApplyPoliciesRequest,
    ) -> Result<pb::ApplyPoliciesResponse, Status> {
        Self::check_request(&req)?;
        let (req, policies) = {
            let _slot = self
                .parsing
                .acquire()
                .await
                .map_err(|_| Status::unavailable("policy-service is shutting down"))?;
            tokio::task::spawn_blocking(move || {
                let parsed = Self::parse_request(&req);
                parsed.map(|p| (req, p))
            })
            .await
            .map_err(|e| Status::internal(format!("parsing policies failed: {e}")))??
        };
        // All or nothing, as the apply itself: one refused policy refuses the whole input.
        for p in &policies {
            require(who, Action::new(Verb::Apply, policy_object(&p.id())))?;
        }
        let keys = self.store.keys();
        for _ in 0..MAX_ATTEMPTS {
            let mut txn: Txn = self.store.txn();
            txn = self.expect_tenants(txn, &policies).await?;
            let mut applied = Vec::with_capacity(policies.len());
            let mut changes = 0;
            for p in &policies {
                let key = keys.policy(&p.id());
                let current = self.store.get(&key).await.map_err(store_status)?;
                let (action, revision) = match current {
                    None => {
                        txn = txn.create(&key, p);
                        changes += 1;
                        ("created", 0)
                    }
                    Some(c) if c.value == *p => {
                        txn = txn.expect_unchanged(&key, c.mod_revision);
                        ("unchanged", c.mod_revision)
                    }
                    Some(c) => {
                        txn = txn.update(&key, p, c.mod_revision);
                        changes += 1;
                        ("configured", 0)
                    }
                };
                applied.push((p, action, revision));
            }
            let revision = if req.dry_run || changes == 0 {
                0
            } else {
                match txn.commit().await {
                    Ok(revision) => revision,
                    Err(StoreError::Conflict { .. }) => continue,
                    Err(e) => return Err(store_status(e)),
                }
            };
            if !req.dry_run {
                for (p, action, _) in &applied {
                    tracing::info!(policy = %p.id(), form = p.form(), action, "policy applied");
                }
            }
            return Ok(pb::ApplyPoliciesResponse {
                applied: applied
                    .into_iter()
                    .map(|(p, action, rev)| pb::AppliedPolicy {
                        policy: Some(pb::Policy::from((p, if rev == 0 { revision } else { rev }))),
                        action: action.to_string(),
                    })
                    .collect(),
                dry_run: req.dry_run,
                revision,
            });
        }
        Err(contended("applying", "policies"))
    }

    /// The tenants (namespaces) the Kubernetes policies live in must exist; the transaction
    /// then commits only if they are unchanged.
    async fn expect_tenants(&self, mut txn: Txn, policies: &[Policy]) -> Result<Txn, Status> {
        let mut tenants: BTreeMap<&str, &Policy> = BTreeMap::new();
        for p in policies {
            if let Policy::Kubernetes(k) = p {
                tenants.entry(k.namespace()).or_insert(p);
            }
        }
        let keys = self.store.keys();
        for (tenant, p) in tenants {
            check_name("tenant", tenant)?;
            let key = keys.tenant(tenant);
            match self.store.get(&key).await.map_err(store_status)? {
                Some(t) => txn = txn.expect_unchanged(&key, t.mod_revision),
                None => {
                    // Validated namespaces are DNS labels: short, safe to show whole.
                    return Err(Status::failed_precondition(format!(
                        "tenant {tenant} does not exist: {} is in namespace {tenant}, which must \
                         be a tenant first (romanactl tenant add {tenant})",
                        p.describe()
                    )));
                }
            }
        }
        Ok(txn)
    }

    async fn get(&self, id: &PolicyId) -> Result<Versioned<Policy>, Status> {
        self.store
            .get(&self.store.keys().policy(id))
            .await
            .map_err(store_status)?
            .ok_or_else(|| Status::not_found(format!("policy {id} does not exist")))
    }

    async fn delete(&self, id: &PolicyId) -> Result<pb::Policy, Status> {
        let key = self.store.keys().policy(id);
        for _ in 0..MAX_ATTEMPTS {
            let current = self.get(id).await?;
            match self.store.delete_if(&key, current.mod_revision).await {
                Ok(()) => {
                    tracing::info!(policy = %id, "policy deleted");
                    return Ok(pb::Policy::from((&current.value, current.mod_revision)));
                }
                Err(StoreError::Conflict { .. }) => continue,
                Err(e) => return Err(store_status(e)),
            }
        }
        Err(contended("deleting policy", &id.to_string()))
    }
}

#[tonic::async_trait]
impl policies_server::Policies for PolicyService {
    async fn apply_policies(
        &self,
        request: Request<pb::ApplyPoliciesRequest>,
    ) -> Result<Response<pb::ApplyPoliciesResponse>, Status> {
        let who = caller(&request)?;
        self.apply(&who, request.into_inner())
            .await
            .map(Response::new)
    }

    async fn get_policy(
        &self,
        request: Request<pb::GetPolicyRequest>,
    ) -> Result<Response<pb::Policy>, Status> {
        let who = caller(&request)?;
        let id = parse_id(&request.into_inner().id)?;
        require(&who, Action::read(policy_object(&id)))?;
        let v = self.get(&id).await?;
        Ok(Response::new(pb::Policy::from((&v.value, v.mod_revision))))
    }

    async fn list_policies(
        &self,
        request: Request<pb::ListPoliciesRequest>,
    ) -> Result<Response<pb::ListPoliciesResponse>, Status> {
        let who = caller(&request)?;
        let policies = watching::list(&self.store, &who, &request.into_inner().tenant).await?;
        Ok(Response::new(pb::ListPoliciesResponse { policies }))
    }

    type WatchPoliciesStream = romana_runtime::listings::Listings<pb::ListPoliciesResponse>;

    async fn watch_policies(
        &self,
        request: Request<pb::WatchPoliciesRequest>,
    ) -> Result<Response<Self::WatchPoliciesStream>, Status> {
        let who = caller(&request)?;
        let tenant = request.into_inner().tenant;
        watching::watch(&self.store, self.draining.clone(), who, tenant).map(Response::new)
    }

    async fn delete_policy(
        &self,
        request: Request<pb::DeletePolicyRequest>,
    ) -> Result<Response<pb::DeletePolicyResponse>, Status> {
        let who = caller(&request)?;
        let id = parse_id(&request.into_inner().id)?;
        require(&who, Action::new(Verb::Delete, policy_object(&id)))?;
        let policy = self.delete(&id).await?;
        Ok(Response::new(pb::DeletePolicyResponse {
            policy: Some(policy),
        }))
    }

    async fn explain(
        &self,
        request: Request<pb::ExplainRequest>,
    ) -> Result<Response<pb::ExplainResponse>, Status> {
        let who = caller(&request)?;
        self.explain(&who, request.into_inner())
            .await
            .map(Response::new)
    }
}
