//! The fast path for the most frequent change: endpoints of other hosts come, go or change
//! labels. Such a change moves set elements only (peer sets and named-port sets; see
//! [`crate::recipe`]): the routes, chains, maps and every set of local endpoints stay as they
//! are. Recompiling the whole program for it cost O(endpoints x policies) (and comparing
//! the result with the table as much again); here each changed endpoint is run through each
//! set's recipe once, before and after, which gives the element changes directly.
//!
//! A remote endpoint's `interface` (its host's tap) is nothing to this host: no recipe
//! reads it. A local endpoint's is its route, its tap wiring and its `endpoints` element.
//!
//! Anything else (a local endpoint, two endpoints at one address, a record that does not
//! decode, any other row, a relist) takes the full path, and so does every round that does
//! not start from a settled one: this path only ever refines a program the full compile
//! made. The tests hold it to the full compile.

use std::collections::BTreeMap;

use romana_core::policy::ClusterView;
use romana_core::Endpoint;
use romana_store::{KeyRef, Keys, WatchEvent};

use crate::desired::Desired;
use crate::nft::{ElementOps, Family, TableView};
use crate::recipe::Recipes;
use crate::state::{ClusterState, Reduced};

/// What changed in the state since the last round.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Changes {
    /// Something besides endpoint records changed: only a full compile will do.
    pub full: bool,
    /// Endpoint id -> its record before the first change since the last round.
    pub endpoints: BTreeMap<String, Option<Endpoint>>,
}

impl Changes {
    /// Reduces `event` into `state`, noting what it changed.
    pub fn reduce(
        &mut self,
        keys: &Keys,
        state: &mut ClusterState,
        event: WatchEvent,
    ) -> (Reduced, Option<crate::state::StateError>) {
        let endpoint = match &event {
            WatchEvent::Apply(kv) => endpoint_id(keys, &kv.key, state),
            WatchEvent::Delete { key, .. } => endpoint_id(keys, key, state),
            _ => None,
        };
        if let Some(id) = &endpoint {
            let before = state.endpoints.get(id).cloned();
            self.endpoints.entry(id.clone()).or_insert(before);
        }
        let (reduced, error) = state.reduce(keys, event);
        if reduced != Reduced::Unchanged && (endpoint.is_none() || error.is_some()) {
            self.full = true;
        }
        (reduced, error)
    }
}

/// The endpoint id of `key`, unless that record is (or was) unreadable: those change the
/// problems the status lists, which only the full path recomputes.
fn endpoint_id(keys: &Keys, key: &str, state: &ClusterState) -> Option<String> {
    match keys.parse(key) {
        Some(KeyRef::Endpoint(id)) if !state.unreadable.contains_key(key) => Some(id),
        _ => None,
    }
}

/// The program last reduced and how its endpoint-dependent sets were filled.
#[derive(Clone, Debug)]
pub struct Compiled {
    pub desired: Desired,
    pub recipes: Recipes,
}

/// Element additions and deletions, by set name.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Delta {
    pub add: ElementOps,
    pub delete: ElementOps,
}

impl Delta {
    pub fn is_empty(&self) -> bool {
        self.add.is_empty() && self.delete.is_empty()
    }

    /// Carries the delta out on a table view (the agent's picture of the kernel).
    pub fn apply_to(&self, view: &mut TableView) {
        for (set, e) in &self.delete {
            if let Some(s) = view.sets.get_mut(set) {
                s.elements.remove(e);
            }
        }
        for (set, e) in &self.add {
            if let Some(s) = view.sets.get_mut(set) {
                s.elements.insert(e.clone());
            }
        }
    }
}

/// Updates `last` for `changes` and returns the element changes, or `None` when the
/// change needs the full path (see the module docs). `host` is this host's name.
pub fn endpoint_delta(
    last: &mut Compiled,
    state: &ClusterState,
    host: &str,
    changes: &Changes,
) -> Option<Delta> {
    if changes.full {
        return None;
    }
    let layout = state.config.as_ref()?.layout().ok()?;
    let changed: Vec<(Option<&Endpoint>, Option<&Endpoint>)> = changes
        .endpoints
        .iter()
        .map(|(id, before)| (before.as_ref(), state.endpoints.get(id)))
        .collect();
    for e in changed.iter().flat_map(|(a, b)| [a, b]).flatten() {
        if e.host == host {
            return None;
        }
        // Which endpoint an address means is decided among all that claim it.
        let shared = state
            .endpoints
            .values()
            .any(|other| other.id != e.id && other.addresses().any(|a| e.holds(a)));
        if shared {
            return None;
        }
    }
    // Recipes ask the view for tenant labels only.
    let view = ClusterView::new(
        layout,
        std::iter::empty(),
        state.tenants.values().cloned(),
        std::iter::empty(),
        std::iter::empty(),
    );
    let elements = |e: Option<&Endpoint>, family: Family, recipe: &crate::recipe::Recipe| {
        e.map(|e| recipe.elements(e, &view, family))
            .unwrap_or_default()
    };
    let mut delta = Delta::default();
    for (name, family, recipe) in &last.recipes {
        let set = last.desired.nft.sets.get_mut(name)?;
        for (before, after) in &changed {
            let old = elements(*before, *family, recipe);
            let new = elements(*after, *family, recipe);
            for e in old.iter().filter(|e| !new.contains(e)) {
                if set.elements.remove(e) {
                    delta.delete.push((name.clone(), e.clone()));
                }
            }
            for e in new.iter().filter(|e| !old.contains(e)) {
                if set.elements.insert(e.clone()) {
                    delta.add.push((name.clone(), e.clone()));
                }
            }
        }
    }
    Some(delta)
}

#[cfg(test)]
mod tests;
