//! What ipam-service keeps of etcd between calls: the layout, hosts, tenants, segments and
//! every claimed address, each copied by a watch, so an allocation costs one etcd
//! transaction instead of a read per name and a listing of the segment.
//!
//! Nothing here is trusted for correctness. An allocation's transaction compares the
//! revisions its placement was read at and creates the address key only if it is absent, so
//! a stale copy costs a retry (with fresh reads), never a duplicate or a wrong placement.
//! A name the copy does not know yet (created a moment ago, watch still catching up) is read
//! from etcd. A release named from the copy (who holds which address since which revision)
//! is a transaction comparing every key it deletes, so a stale copy sends it to the read
//! path, never deletes the wrong keys.

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;
use std::ops::RangeInclusive;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use ipnet::IpNet;
use romana_core::alloc::first_free_sorted;
use romana_core::{ClusterConfig, Decoded, Host, Layout, Segment, Tenant};
use romana_store::{KeyRef, Kv, Store, WatchEvent};

use crate::placement::Read;

mod claims;
mod free_from;
pub use claims::Claimed;
use claims::{Claims, Holder};
use free_from::FreeFrom;

/// What one watch copies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Part {
    Config,
    Hosts,
    Tenants,
    Segments,
    Addresses,
}

const PARTS: [Part; 5] = [
    Part::Config,
    Part::Hosts,
    Part::Tenants,
    Part::Segments,
    Part::Addresses,
];

/// The copy, shared by the handlers and the watch tasks; the tasks stop when it is dropped.
pub struct Cache {
    inner: Arc<Mutex<Inner>>,
    /// True once every part has been listed.
    synced: tokio::sync::watch::Receiver<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

#[derive(Default)]
struct Inner {
    config: Option<(Read<ClusterConfig>, Layout)>,
    hosts: HashMap<String, Read<Host>>,
    tenants: HashMap<String, Read<Tenant>>,
    /// By (tenant, segment name).
    segments: HashMap<(String, String), Read<Segment>>,
    /// Every claimed address of the cluster and who holds it.
    claims: Claims,
    /// Chosen by an allocation of this replica whose transaction has not returned yet, so
    /// concurrent allocations here never race each other for one address.
    pending: BTreeSet<IpAddr>,
    /// Where each segment's search for a free address starts.
    free_from: FreeFrom,
    /// Parts whose listing has completed at least once (a re-list keeps the old copy
    /// usable until the new one is complete: stale is safe, see the module docs).
    synced: BTreeSet<usize>,
}

/// The addresses chosen for an allocation (one per family it gets); dropping it without
/// [`Reservation::claimed`] frees them for other allocations of this replica.
pub struct Reservation {
    inner: Arc<Mutex<Inner>>,
    pub addresses: Vec<IpAddr>,
    claimed: bool,
}

// === impl Cache ===

impl Cache {
    /// Starts the watches; the copy fills in the background.
    pub fn start(store: &Store) -> Cache {
        let inner = Arc::new(Mutex::new(Inner::default()));
        let (synced_tx, synced) = tokio::sync::watch::channel(false);
        let synced_tx = Arc::new(synced_tx);
        let keys = store.keys();
        let tasks = PARTS
            .iter()
            .enumerate()
            .map(|(i, &part)| {
                let prefix = match part {
                    Part::Config => keys.config().path().to_string(),
                    Part::Hosts => keys.hosts().path().to_string(),
                    Part::Tenants => keys.tenants().path().to_string(),
                    Part::Segments => keys.segments().path().to_string(),
                    Part::Addresses => keys.addresses().path().to_string(),
                };
                tokio::spawn(copy(
                    store.clone(),
                    prefix,
                    (i, part),
                    inner.clone(),
                    synced_tx.clone(),
                ))
            })
            .collect();
        Cache {
            inner,
            synced,
            tasks,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        lock(&self.inner)
    }

    /// Waits until every part has been listed once; false if that takes over `timeout`
    /// (etcd unreachable since the service started).
    pub async fn wait_synced(&self, timeout: Duration) -> bool {
        let mut synced = self.synced.clone();
        tokio::time::timeout(timeout, synced.wait_for(|s| *s))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    pub fn layout(&self) -> Option<(Read<ClusterConfig>, Layout)> {
        self.lock().config.clone()
    }

    pub fn host(&self, name: &str) -> Option<Read<Host>> {
        self.lock().hosts.get(name).cloned()
    }

    pub fn host_by_index(&self, index: u32) -> Option<Read<Host>> {
        let inner = self.lock();
        inner
            .hosts
            .values()
            .find(|h| h.value.index == index)
            .cloned()
    }

    pub fn tenant(&self, name: &str) -> Option<Read<Tenant>> {
        self.lock().tenants.get(name).cloned()
    }

    pub fn tenant_by_id(&self, id: u32) -> Option<Read<Tenant>> {
        let inner = self.lock();
        inner.tenants.values().find(|t| t.value.id == id).cloned()
    }

    pub fn segment(&self, tenant: &str, name: &str) -> Option<Read<Segment>> {
        let inner = self.lock();
        inner
            .segments
            .get(&(tenant.to_string(), name.to_string()))
            .cloned()
    }

    pub fn segment_by_id(&self, tenant: &str, id: u32) -> Option<Read<Segment>> {
        let inner = self.lock();
        inner
            .segments
            .values()
            .find(|s| s.value.tenant == tenant && s.value.id == id)
            .cloned()
    }

    /// The names of the host, tenant and segment behind layout numbers `d`, when the copy
    /// knows all three.
    pub fn names(&self, d: Decoded) -> Option<(String, String, String)> {
        let host = self.host_by_index(d.host)?;
        let tenant = self.tenant_by_id(d.tenant)?;
        let segment = self.segment_by_id(&tenant.value.name, d.segment)?;
        Some((host.value.name, tenant.value.name, segment.value.name))
    }

    /// Picks free addresses of `cidrs` (a segment's CIDR in each family) and holds them for
    /// this replica until the returned reservation is dropped. `choose` is given the lowest
    /// `n` endpoint numbers of `assignable` that are free (neither claimed nor reserved
    /// here) in every one of `cidrs`, ascending, and returns the addresses it takes; `None`
    /// when nothing is free.
    pub fn reserve(
        &self,
        layout: &Layout,
        cidrs: &[IpNet],
        assignable: RangeInclusive<u128>,
        n: usize,
        choose: impl FnOnce(&[u128]) -> Option<Vec<IpAddr>>,
    ) -> Option<Reservation> {
        let mut inner = self.lock();
        let Inner {
            claims,
            pending,
            free_from,
            ..
        } = &mut *inner;
        let lo = *assignable.start();
        // The used numbers of one CIDR from `from` on, ascending.
        let used_from = |cidr: &IpNet, from: u128| {
            let d = layout.decode(cidr.network());
            let start = layout
                .family_of(cidr.network())
                .zip(d)
                .and_then(|(f, d)| f.endpoint_address(d.host, d.tenant, d.segment, from).ok());
            let range = start.unwrap_or(cidr.broadcast())..=cidr.broadcast();
            merge(
                claims.range(range.clone()).copied(),
                pending.range(range).copied(),
            )
            .filter_map(|a| layout.decode(a).map(|d| d.endpoint))
        };
        // Each CIDR's lowest free number, remembered for the next search.
        let mut floor = lo;
        for cidr in cidrs {
            let start = free_from.start(cidr, lo);
            let first_free =
                first_free_sorted(used_from(cidr, start), start..=*assignable.end(), 1);
            let from = first_free
                .first()
                .copied()
                .unwrap_or(assignable.end().saturating_add(1));
            free_from.set(*cidr, lo, from);
            floor = floor.max(from);
        }
        let range = floor..=*assignable.end();
        let free = match cidrs {
            [one] => first_free_sorted(used_from(one, floor), range, n),
            _ => {
                let mut used: Box<dyn Iterator<Item = u128> + '_> = Box::new(std::iter::empty());
                for cidr in cidrs {
                    used = Box::new(merge(used, used_from(cidr, floor)));
                }
                first_free_sorted(used, range, n)
            }
        };
        let chosen = choose(&free)?;
        inner.pending.extend(chosen.iter().copied());
        Some(Reservation {
            inner: self.inner.clone(),
            addresses: chosen,
            claimed: false,
        })
    }

    /// Records that `address` is held (a lost race told us before the watch did).
    pub fn taken(&self, address: IpAddr) {
        self.lock().claims.taken(address);
    }

    /// Records that `address` was released here, so the next allocation may reuse it at
    /// once; a lagging watch event for its earlier claim is undone by the deletion's.
    pub fn freed(&self, address: IpAddr) {
        unclaim(&mut self.lock(), address);
    }

    /// What endpoint `id` holds, if the copy knows it whole.
    pub fn claimed_by(&self, id: &str) -> Option<Claimed> {
        self.lock().claims.claimed_by(id)
    }

    /// What the holder of `address` holds, if the copy knows it whole.
    pub fn claimed_at(&self, address: IpAddr) -> Option<Claimed> {
        self.lock().claims.claimed_at(address)
    }
}

impl Drop for Cache {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

// === impl Reservation ===

impl Reservation {
    /// Endpoint `id`'s transaction claimed the addresses at `revision`: they are used, not
    /// merely reserved.
    pub fn claimed(mut self, id: &str, revision: i64) {
        self.claimed = true;
        let mut inner = lock(&self.inner);
        for &a in &self.addresses {
            let holder = Holder {
                id: id.to_string(),
                revision,
            };
            inner.claims.claim(a, holder);
        }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        let mut inner = lock(&self.inner);
        for &a in &self.addresses {
            inner.pending.remove(&a);
            if !self.claimed {
                lower(&mut inner, a);
            }
        }
    }
}

/// Forgets `address`'s claim: it is free again.
fn unclaim(inner: &mut Inner, address: IpAddr) {
    inner.claims.unclaim(address);
    lower(inner, address);
}

/// `address` may be free again: its segment's search must not start above it.
fn lower(inner: &mut Inner, address: IpAddr) {
    let place = inner.config.as_ref().and_then(|(_, layout)| {
        let d = layout.decode(address)?;
        let cidr = layout
            .family_of(address)?
            .segment_cidr(d.host, d.tenant, d.segment)
            .ok()?;
        Some((cidr, d.endpoint))
    });
    match place {
        Some((cidr, number)) => inner.free_from.lower(&cidr, number),
        // Not placeable by the layout this copy holds: no hint can be trusted.
        None => inner.free_from.clear(),
    }
}

// === the watch tasks ===

fn lock(inner: &Mutex<Inner>) -> MutexGuard<'_, Inner> {
    // A panic while holding the lock leaves a copy that is at worst stale, which is safe.
    inner.lock().unwrap_or_else(|p| p.into_inner())
}

/// Two ascending streams as one ascending stream (duplicates kept once).
fn merge<T: Ord + Copy>(
    a: impl Iterator<Item = T>,
    b: impl Iterator<Item = T>,
) -> impl Iterator<Item = T> {
    let (mut a, mut b) = (a.peekable(), b.peekable());
    std::iter::from_fn(move || {
        let next = match (a.peek(), b.peek()) {
            (Some(x), Some(y)) if x <= y => {
                if x == y {
                    b.next();
                }
                a.next()
            }
            (Some(_), Some(_)) | (None, Some(_)) => b.next(),
            (Some(_), None) => a.next(),
            (None, None) => None,
        };
        next
    })
}

async fn copy(
    store: Store,
    prefix: String,
    (index, part): (usize, Part),
    inner: Arc<Mutex<Inner>>,
    synced: Arc<tokio::sync::watch::Sender<bool>>,
) {
    let mut watcher = store.watch(&prefix);
    // Keys listed by the current (re)list, so that whatever it did not list is dropped when
    // it completes; until then the previous copy keeps serving.
    let mut listed: Option<Inner> = None;
    let mut failures = 0u32;
    loop {
        let event = match watcher.next().await {
            Ok(e) => {
                failures = 0;
                e
            }
            Err(e) => {
                failures += 1;
                let pause = Duration::from_millis(200 << failures.min(4));
                tracing::warn!(%prefix, error = %e, ?pause, "ipam cache watch failed; retrying");
                tokio::time::sleep(pause).await;
                continue;
            }
        };
        match event {
            WatchEvent::Init => listed = Some(Inner::default()),
            WatchEvent::InitApply(kv) => {
                if let Some(fresh) = listed.as_mut() {
                    apply(fresh, &store, part, &kv);
                }
            }
            WatchEvent::InitDone { .. } => {
                let fresh = listed.take().unwrap_or_default();
                let mut inner = lock(&inner);
                adopt(&mut inner, fresh, part);
                inner.synced.insert(index);
                if inner.synced.len() == PARTS.len() {
                    synced.send_replace(true);
                }
            }
            WatchEvent::Apply(kv) => apply(&mut lock(&inner), &store, part, &kv),
            WatchEvent::Delete { key, .. } => remove(&mut lock(&inner), &store, &key),
        }
    }
}

/// Replaces one part of `inner` with a complete listing of it.
fn adopt(inner: &mut Inner, fresh: Inner, part: Part) {
    match part {
        Part::Config => {
            inner.config = fresh.config;
            inner.free_from.clear();
        }
        Part::Hosts => inner.hosts = fresh.hosts,
        Part::Tenants => inner.tenants = fresh.tenants,
        Part::Segments => inner.segments = fresh.segments,
        Part::Addresses => {
            inner.claims = fresh.claims;
            inner.free_from.clear();
        }
    }
}

fn apply(inner: &mut Inner, store: &Store, part: Part, kv: &Kv) {
    let rev = kv.mod_revision;
    if part == Part::Config {
        // Segment CIDRs and numbers may mean something else under a new layout.
        inner.free_from.clear();
    }
    // A record that does not decode is skipped: a missing entry only sends that allocation
    // to etcd, where the same record gets the error it deserves.
    let skipped = |e: romana_store::StoreError| {
        tracing::warn!(key = %kv.key, error = %e, "ipam cache skips a record it cannot read");
    };
    match (part, store.keys().parse(&kv.key)) {
        (Part::Config, Some(KeyRef::Config)) => match kv.decode::<ClusterConfig>() {
            Ok(config) => match config.layout() {
                Ok(layout) => {
                    inner.config = Some((
                        Read {
                            value: config,
                            mod_revision: rev,
                        },
                        layout,
                    ))
                }
                Err(e) => {
                    tracing::warn!(error = %e, "ipam cache: the stored layout is invalid");
                    inner.config = None;
                }
            },
            Err(e) => skipped(e),
        },
        (Part::Hosts, Some(KeyRef::Host(name))) => match kv.decode::<Host>() {
            Ok(h) => {
                inner.hosts.insert(
                    name,
                    Read {
                        value: h,
                        mod_revision: rev,
                    },
                );
            }
            Err(e) => skipped(e),
        },
        (Part::Tenants, Some(KeyRef::Tenant(name))) => match kv.decode::<Tenant>() {
            Ok(t) => {
                inner.tenants.insert(
                    name,
                    Read {
                        value: t,
                        mod_revision: rev,
                    },
                );
            }
            Err(e) => skipped(e),
        },
        (Part::Segments, Some(KeyRef::Segment { tenant, name })) => match kv.decode::<Segment>() {
            Ok(s) => {
                inner.segments.insert(
                    (tenant, name),
                    Read {
                        value: s,
                        mod_revision: rev,
                    },
                );
            }
            Err(e) => skipped(e),
        },
        (Part::Addresses, Some(KeyRef::Address(ip))) => match kv.decode::<String>() {
            Ok(id) => inner.claims.claim(ip, Holder { id, revision: rev }),
            Err(e) => {
                // Still taken: only the release shortcut is lost for it.
                skipped(e);
                inner.claims.taken(ip);
            }
        },
        _ => {}
    }
}

fn remove(inner: &mut Inner, store: &Store, key: &str) {
    match store.keys().parse(key) {
        Some(KeyRef::Config) => {
            inner.config = None;
            inner.free_from.clear();
        }
        Some(KeyRef::Host(name)) => {
            inner.hosts.remove(&name);
        }
        Some(KeyRef::Tenant(name)) => {
            inner.tenants.remove(&name);
        }
        Some(KeyRef::Segment { tenant, name }) => {
            inner.segments.remove(&(tenant, name));
        }
        Some(KeyRef::Address(ip)) => unclaim(inner, ip),
        _ => {}
    }
}

#[cfg(test)]
mod tests;
