//! A watched copy of the service registry, for discovery while etcd cannot answer.
//!
//! Discovery is what every client does first, so it must outlive an etcd election: a
//! linearizable read waits for a leader, and on a loaded machine an election takes
//! seconds, longer than the clients' own deadlines. `ListServices` still reads etcd
//! first (a fresh answer, so a service that just registered is listed), but when that
//! read has not answered within [`READ_PATIENCE`] it is answered from this copy, which a
//! watch keeps current to the last event etcd delivered. The copy may then list a
//! replica that has died since: clients try the next one, as they do for any dead
//! replica whose lease has not expired yet.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use romana_core::ServiceRecord;
use romana_store::{KeyRef, Store, WatchEvent};

/// How long `ListServices` waits for etcd before answering from the copy.
pub const READ_PATIENCE: Duration = Duration::from_millis(800);
/// Between failed watch attempts.
const BACKOFF: Duration = Duration::from_millis(200);

/// The copy; the task that keeps it stops once the copy is dropped.
pub struct Registry {
    copy: Arc<Mutex<Copy>>,
}

#[derive(Default)]
struct Copy {
    /// By key, as listed and watched.
    services: BTreeMap<String, ServiceRecord>,
    /// True once a listing completed: before that the copy is no answer at all.
    synced: bool,
    /// The listing in progress, kept apart so a re-list never shows half a registry.
    listing: Option<BTreeMap<String, ServiceRecord>>,
}

impl Registry {
    /// Starts watching `store`'s registry (in the running tokio runtime).
    pub fn start(store: &Store) -> Registry {
        let copy = Arc::new(Mutex::new(Copy::default()));
        tokio::spawn(keep(store.clone(), Arc::downgrade(&copy)));
        Registry { copy }
    }

    /// The services of `kind` (every kind when empty) as last seen, or `None` before the
    /// first listing completed.
    pub fn services(&self, kind: &str) -> Option<Vec<ServiceRecord>> {
        let copy = self.copy.lock().unwrap_or_else(|p| p.into_inner());
        copy.synced.then(|| {
            copy.services
                .values()
                .filter(|s| kind.is_empty() || s.kind == kind)
                .cloned()
                .collect()
        })
    }
}

async fn keep(store: Store, copy: Weak<Mutex<Copy>>) {
    let keys = store.keys().clone();
    let mut watcher = store.watch(keys.services().path());
    loop {
        let event = watcher.next().await;
        let Some(copy) = copy.upgrade() else {
            return;
        };
        let event = match event {
            Ok(event) => event,
            Err(e) => {
                tracing::debug!(error = %e, "registry watch broke; the copy stays as it was");
                drop(copy);
                tokio::time::sleep(BACKOFF).await;
                continue;
            }
        };
        let mut copy = copy.lock().unwrap_or_else(|p| p.into_inner());
        let is_service = |key: &str| matches!(keys.parse(key), Some(KeyRef::Service { .. }));
        match event {
            WatchEvent::Init => copy.listing = Some(BTreeMap::new()),
            WatchEvent::InitApply(kv) => {
                if let (true, Ok(record)) = (is_service(&kv.key), kv.decode::<ServiceRecord>()) {
                    copy.listing.get_or_insert_default().insert(kv.key, record);
                }
            }
            WatchEvent::InitDone { .. } => {
                copy.services = copy.listing.take().unwrap_or_default();
                copy.synced = true;
            }
            WatchEvent::Apply(kv) => match (is_service(&kv.key), kv.decode::<ServiceRecord>()) {
                (true, Ok(record)) => {
                    copy.services.insert(kv.key, record);
                }
                // An unreadable record is no service to offer.
                _ => {
                    copy.services.remove(&kv.key);
                }
            },
            WatchEvent::Delete { key, .. } => {
                copy.services.remove(&key);
            }
        }
    }
}
