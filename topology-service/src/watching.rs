//! The host status listing, as ListHostStatus answers it and WatchHostStatus streams it.

use std::collections::BTreeMap;
use std::time::Duration;

use romana_core::authz::{Action, Identity, Object};
use romana_core::AgentStatus;
use romana_proto::pb;
use romana_runtime::authz::may;
use romana_runtime::listings::{self, Draining, Listings};
use romana_runtime::store_status;
use romana_store::{KeyRef, Store, Versioned};
use tonic::Status;

use crate::current_report;

/// Heartbeat-only changes reach a watch at most this often: the time after which an agent
/// counts as gone (missed heartbeats), so a watch still shows it going silent.
const HEARTBEATS_EVERY: Duration =
    Duration::from_secs(AgentStatus::HEARTBEAT_SECS * AgentStatus::MISSED_HEARTBEATS);

/// The status of every host `who` may read (or only of `only`, when not empty), by index.
pub async fn host_statuses(
    store: &Store,
    who: &Identity,
    only: &str,
) -> Result<Vec<pb::HostStatus>, Status> {
    let keys = store.keys();
    let mut hosts = store.list(&keys.hosts()).await.map_err(store_status)?.items;
    hosts.retain(|h| only.is_empty() || h.value.name == only);
    hosts.retain(|h| may(who, Action::read(Object::HostStatus(&h.value.name))));
    hosts.sort_by_key(|h| h.value.index);
    // Keyed by the host in the key, not the record's own field: the key is what the
    // agent was told to write, and a record must not answer for another host.
    let statuses: BTreeMap<String, Versioned<AgentStatus>> = store
        .list(&keys.agent_statuses())
        .await
        .map_err(store_status)?
        .items
        .into_iter()
        .filter_map(|s| match keys.parse(&s.key) {
            Some(KeyRef::AgentStatus(host)) => Some((host, s)),
            _ => None,
        })
        .filter(|(host, _)| only.is_empty() || host == only)
        .collect();
    Ok(hosts
        .iter()
        .map(|h| {
            let report = current_report(h, statuses.get(&h.value.name));
            pb::HostStatus::from((h.value.name.as_str(), report))
        })
        .collect())
}

/// WatchHostStatus, once the caller's right to the named host (if any) has been checked.
pub fn watch(
    store: &Store,
    draining: Draining,
    who: Identity,
    only: String,
) -> Listings<pb::ListHostStatusResponse> {
    let keys = store.keys();
    let prefixes = vec![
        keys.hosts().path().to_string(),
        keys.agent_statuses().path().to_string(),
    ];
    let options = listings::Options {
        minor: Some((heartbeats_only, HEARTBEATS_EVERY)),
        ..Default::default()
    };
    let lister = store.clone();
    listings::stream(store, prefixes, draining, options, move || {
        let (store, who, only) = (lister.clone(), who.clone(), only.clone());
        async move {
            let hosts = host_statuses(&store, &who, &only).await?;
            Ok(pb::ListHostStatusResponse { hosts })
        }
    })
}

/// The same hosts with the same reports but for the agents' heartbeat times.
fn heartbeats_only(a: &pb::ListHostStatusResponse, b: &pb::ListHostStatusResponse) -> bool {
    let timeless = |s: &pb::HostStatus| pb::HostStatus {
        alive_at: 0,
        ..s.clone()
    };
    a.hosts.len() == b.hosts.len()
        && a.hosts
            .iter()
            .zip(&b.hosts)
            .all(|(x, y)| timeless(x) == timeless(y))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mk(alive_at: u64, revision: i64) -> pb::ListHostStatusResponse {
        pb::ListHostStatusResponse {
            hosts: vec![pb::HostStatus {
                host: "h1".into(),
                reported: true,
                revision,
                alive_at,
                ..Default::default()
            }],
        }
    }

    #[test]
    fn only_a_newer_heartbeat_is_minor() {
        assert!(heartbeats_only(&mk(10, 5), &mk(20, 5)));
        assert!(!heartbeats_only(&mk(10, 5), &mk(20, 6)));
        assert!(!heartbeats_only(
            &mk(10, 5),
            &pb::ListHostStatusResponse::default()
        ));
    }
}
