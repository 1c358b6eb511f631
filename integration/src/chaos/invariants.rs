//! What must hold after a load, read from etcd with `romana_store` (not through the
//! services under test).
//!
//! # The rule
//! Each client's calls are replayed in order into a model of its endpoint ids; an id is
//! *present* (with an address), *absent*, or *unknown* (its last attempt failed with an
//! unknown outcome, see [`super::load`]):
//! - a successful allocation makes it present with the returned address; a success that
//!   returns another address than one already known is a violation (not idempotent);
//! - a successful release makes it absent; one that reports freeing nothing while the id
//!   was known present is a violation (the allocation was lost);
//! - a definite failure changes nothing; an unknown failure makes it unknown (present or
//!   absent), and the client retries until the operation succeeds, which makes it known.
//!
//! Then etcd must agree exactly: every present id has its endpoint record with that
//! address, every absent id has no record and no address claim naming it, and no id is
//! left unknown (retrying must converge). Across everything under the prefix, not only the
//! load's ids: no two endpoints share an address, every endpoint has its address claim and
//! its host and segment index entries, and no claim or index entry points at an endpoint
//! that is not there or has another address (nothing leaked by a half-done release).
//! From the clients' side alone: no address is held by two ids at once (hold = from the
//! end of the successful allocation to the start of the first release attempt).

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::Duration;

use romana_core::Endpoint;
use romana_store::Store;

use super::load::{Op, Outcome, Run};
use crate::retrying;

/// The result of [`check`].
#[derive(Clone, Debug, Default)]
pub struct Invariants {
    /// Endpoint records in etcd.
    pub endpoints: usize,
    /// Ids of the load that must be in etcd, and that must not.
    pub present: usize,
    pub absent: usize,
    /// Ids whose last operation never got a known outcome.
    pub unresolved: Vec<String>,
    pub violations: Vec<String>,
}

impl Invariants {
    pub fn hold(&self) -> bool {
        self.violations.is_empty() && self.unresolved.is_empty()
    }

    /// One line for the summary.
    pub fn describe(&self) -> String {
        format!(
            "{} (etcd endpoints {}, present {}, absent {}, unresolved {}, violations {})",
            if self.hold() { "hold" } else { "VIOLATED" },
            self.endpoints,
            self.present,
            self.absent,
            self.unresolved.len(),
            self.violations.len()
        )
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Known {
    Absent,
    Present(IpAddr),
    Unknown,
}

/// The model of the load's ids (see the module docs), and client-side violations.
struct Model {
    ids: BTreeMap<String, Known>,
    violations: Vec<String>,
}

/// An address held by an id from the end of its allocation to the start of its release.
type Hold = (IpAddr, String, Duration, Option<Duration>);

fn model(run: &Run) -> Model {
    let mut ids: BTreeMap<String, Known> = BTreeMap::new();
    let mut violations = Vec::new();
    let mut holds: Vec<Hold> = Vec::new();
    let mut holding: BTreeMap<String, usize> = BTreeMap::new();
    let mut calls: Vec<_> = run.calls.iter().collect();
    calls.sort_by_key(|c| (c.client, c.start));
    for c in calls {
        let state = ids.entry(c.endpoint.clone()).or_insert(Known::Absent);
        let id = &c.endpoint;
        match (c.op, &c.outcome) {
            (Op::Allocate, Outcome::Allocated(a)) => {
                if let Known::Present(b) = *state {
                    if b != *a {
                        violations.push(format!("allocate {id} returned {a}, but it held {b}"));
                    }
                } else {
                    holding.insert(id.clone(), holds.len());
                    holds.push((*a, id.clone(), c.end, None));
                }
                *state = Known::Present(*a);
            }
            (Op::Release, Outcome::Released(freed)) => {
                match (*state, freed) {
                    (Known::Present(b), Some(a)) if *a != b => {
                        violations.push(format!("release {id} freed {a}, but {id} held {b}"))
                    }
                    (Known::Present(b), None) => violations.push(format!(
                        "release {id} found nothing, but {id} held {b}: the allocation was lost"
                    )),
                    (Known::Absent, Some(a)) => violations.push(format!(
                        "release {id} freed {a}, but {id} was never allocated"
                    )),
                    _ => {}
                }
                *state = Known::Absent;
            }
            (_, outcome) if outcome.is_unknown() => *state = Known::Unknown,
            // A definite failure changed nothing.
            _ => {}
        }
        if c.op == Op::Release {
            if let Some(i) = holding.remove(id) {
                holds[i].3 = Some(c.start);
            }
        }
    }
    let mut by_address: BTreeMap<IpAddr, Vec<&Hold>> = BTreeMap::new();
    for h in &holds {
        by_address.entry(h.0).or_default().push(h);
    }
    for (address, mut hs) in by_address {
        hs.sort_by_key(|h| h.2);
        for pair in hs.windows(2) {
            let (first, second) = (pair[0], pair[1]);
            if first.3.is_none_or(|until| until > second.2) {
                violations.push(format!(
                    "{address} was held by {} (from {:?} to {:?}) and by {} (from {:?}) at once",
                    first.1, first.2, first.3, second.1, second.2
                ));
            }
        }
    }
    Model { ids, violations }
}

/// Checks the invariants of the module docs against etcd after `run` finished.
pub async fn check(store: &Store, run: &Run) -> anyhow::Result<Invariants> {
    let keys = store.keys();
    let model = model(run);
    let mut violations = model.violations;
    let prefix = keys.endpoints();
    let endpoints: BTreeMap<String, Endpoint> = retrying(|| store.list(&prefix))
        .await?
        .items
        .into_iter()
        .map(|v| (v.value.id.clone(), v.value))
        .collect();
    let mut claims: BTreeMap<IpAddr, String> = BTreeMap::new();
    let prefix = keys.addresses();
    for v in retrying(|| store.list(&prefix)).await?.items {
        match v.key_name().parse::<IpAddr>() {
            Ok(ip) => {
                claims.insert(ip, v.value);
            }
            Err(_) => violations.push(format!("address claim with a bad key {}", v.key)),
        }
    }

    // Addresses: one endpoint each, claimed by it; no claim without its endpoint.
    let mut by_address: BTreeMap<IpAddr, Vec<&str>> = BTreeMap::new();
    for e in endpoints.values() {
        by_address.entry(e.address).or_default().push(&e.id);
        if claims.get(&e.address) != Some(&e.id) {
            violations.push(format!(
                "endpoint {} has {} but the claim names {:?}",
                e.id,
                e.address,
                claims.get(&e.address)
            ));
        }
    }
    for (address, ids) in &by_address {
        if ids.len() > 1 {
            violations.push(format!("duplicate address {address}: {ids:?}"));
        }
    }
    for (address, id) in &claims {
        if endpoints.get(id).map(|e| e.address) != Some(*address) {
            violations.push(format!(
                "claim {address} -> {id} leaked: no such endpoint holds it"
            ));
        }
    }

    // Index entries, both ways, for every host and segment in play.
    let mut hosts: BTreeSet<String> = endpoints.values().map(|e| e.host.clone()).collect();
    let mut segments: BTreeSet<(String, String)> = endpoints
        .values()
        .map(|e| (e.tenant.clone(), e.segment.clone()))
        .collect();
    for p in &run.spec.placements {
        hosts.insert(p.host.clone());
        segments.insert((p.tenant.clone(), p.segment.clone()));
    }
    let mut indexed: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for host in &hosts {
        let prefix = keys.host_endpoints_of(host);
        for v in retrying(|| store.list(&prefix)).await?.items {
            let id = v.key_name().to_string();
            match endpoints.get(&id) {
                Some(e) if e.host == *host && e.address == v.value => {}
                _ => violations.push(format!("stale host index {} -> {}", v.key, v.value)),
            }
            indexed.entry(id).or_default().push("host".into());
        }
    }
    for (tenant, segment) in &segments {
        let prefix = keys.segment_endpoints_of(tenant, segment);
        for v in retrying(|| store.list(&prefix)).await?.items {
            let id = v.key_name().to_string();
            match endpoints.get(&id) {
                Some(e) if e.tenant == *tenant && e.segment == *segment && e.address == v.value => {
                }
                _ => violations.push(format!("stale segment index {} -> {}", v.key, v.value)),
            }
            indexed.entry(id).or_default().push("segment".into());
        }
    }
    for id in endpoints.keys() {
        let entries = indexed.get(id).map(Vec::len).unwrap_or(0);
        if entries != 2 {
            violations.push(format!(
                "endpoint {id} has {entries} index entries, not 2 (host, segment)"
            ));
        }
    }

    // The load's ids against the model.
    let (mut present, mut absent, mut unresolved) = (0, 0, Vec::new());
    let claimed: BTreeSet<&String> = claims.values().collect();
    for (id, known) in &model.ids {
        match known {
            Known::Present(a) => {
                present += 1;
                match endpoints.get(id) {
                    Some(e) if e.address == *a => {}
                    Some(e) => violations.push(format!(
                        "{id} was allocated {a} but etcd holds {}",
                        e.address
                    )),
                    None => violations.push(format!(
                        "{id} was allocated {a} (success returned) but is not in etcd"
                    )),
                }
            }
            Known::Absent => {
                absent += 1;
                if let Some(e) = endpoints.get(id) {
                    violations.push(format!(
                        "{id} must be absent (released, or its allocation failed definitely) \
                         but etcd holds it with {}",
                        e.address
                    ));
                }
                if claimed.contains(id) {
                    violations.push(format!("{id} must be absent but an address claim names it"));
                }
            }
            Known::Unknown => unresolved.push(id.clone()),
        }
    }
    Ok(Invariants {
        endpoints: endpoints.len(),
        present,
        absent,
        unresolved,
        violations,
    })
}
