//! Multi-key all-or-nothing writes. Every compared key is also read in the transaction's
//! failure branch, so a failed commit says which key moved and to what, in the same round
//! trip, without a racy second read.
//!
//! What has bitten us / etcd rules to keep in mind:
//! - etcd refuses a transaction that writes one key twice ("duplicate key given in txn
//!   request"); compares and reads of one key may repeat.
//! - etcd caps a transaction at 128 operations (`--max-txn-ops`), compares not counted.
//! - An absent key compares as version 0, so "absent" is `version == 0`, which also holds
//!   for a key that was deleted.

use std::collections::HashMap;

use etcd_client::{
    Compare, CompareOp, DeleteOptions, GetOptions, SortOrder, SortTarget, TxnOp, TxnOpResponse,
};
use serde::Serialize;

use crate::errors::StoreError;
use crate::keys::{Key, Prefix};
use crate::store::{encode, header_revision, Resend, Store};

/// Builder of one conditional multi-key write; nothing is sent before [`Txn::commit`].
#[must_use = "a Txn does nothing until commit()"]
pub struct Txn {
    store: Store,
    checks: Vec<Check>,
    ops: Vec<TxnOp>,
    /// Keys in the order they were named, for the error of a transport failure.
    first_key: Option<String>,
    /// An encoding failure is kept until `commit` so that the builder stays chainable.
    encode_error: Option<StoreError>,
    /// Bytes of the keys and values put so far.
    pub(crate) put_bytes: usize,
    /// Keys put or deleted, for telling whether two transactions may be committed as one.
    pub(crate) writes: Vec<String>,
    /// Committed with whatever other grouped transactions are waiting ([`Txn::grouped`]).
    grouped: bool,
    /// Compares or deletes a whole prefix: never grouped (its key set is not known).
    ranged: bool,
}

#[derive(Clone, PartialEq, Eq, Hash)]
pub(crate) struct Check {
    pub(crate) key: String,
    expect: Expect,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Expect {
    Absent,
    ModRevision(i64),
    /// No key under the prefix.
    Empty,
    /// No key under the prefix was written after this revision (deletions are not seen).
    UnmodifiedSince(i64),
    /// The key was not written after this revision (absent or older).
    UnwrittenSince(i64),
    /// The key exists and was created at this revision (later changes allowed): it is the
    /// one a transaction at that revision wrote, not a later key of the same name.
    CreatedAt(i64),
}

/// The last value of a key a committed transaction deleted with [`Txn::take`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Taken {
    pub key: String,
    pub value: Vec<u8>,
}

// === impl Txn ===

impl Txn {
    pub(crate) fn new(store: Store) -> Txn {
        Txn {
            store,
            checks: Vec::new(),
            ops: Vec::new(),
            first_key: None,
            encode_error: None,
            put_bytes: 0,
            writes: Vec::new(),
            grouped: false,
            ranged: false,
        }
    }

    /// Commits together with other grouped transactions waiting at the same time, as one
    /// etcd transaction (see `crate::group`). Only for transactions whose every write is
    /// conditional on its compares: a group whose outcome is unknown is committed again one
    /// by one, where a write already done fails its compare instead of repeating.
    pub fn grouped(mut self) -> Self {
        self.grouped = true;
        self
    }

    /// Writes `value` if `key` is absent.
    pub fn create<T: Serialize>(self, key: &Key<T>, value: &T) -> Self {
        self.expect_absent(key).put(key.path(), value)
    }

    /// Writes `value` if `key` is still at `mod_revision`.
    pub fn update<T: Serialize>(self, key: &Key<T>, value: &T, mod_revision: i64) -> Self {
        self.expect_unchanged(key, mod_revision)
            .put(key.path(), value)
    }

    /// Deletes `key` if it is still at `mod_revision`.
    pub fn delete<T>(self, key: &Key<T>, mod_revision: i64) -> Self {
        self.expect_unchanged(key, mod_revision)
            .delete_unchecked(key)
    }

    /// Deletes `key` if it was created at `revision`, and hands its last value to
    /// [`Txn::commit_taken`].
    pub fn take<T>(mut self, key: &Key<T>, revision: i64) -> Self {
        self = self.check(key.path(), Expect::CreatedAt(revision));
        self.writes.push(key.path().to_string());
        self.ops.push(TxnOp::delete(
            key.path(),
            Some(DeleteOptions::new().with_prev_key()),
        ));
        self
    }

    /// Deletes `key` whatever its state (absent is fine).
    pub fn delete_unchecked<T>(mut self, key: &Key<T>) -> Self {
        self.name(key.path());
        self.writes.push(key.path().to_string());
        self.ops.push(TxnOp::delete(key.path(), None));
        self
    }

    /// Commits only if `key` is absent; writes nothing to it.
    pub fn expect_absent<T>(self, key: &Key<T>) -> Self {
        self.check(key.path(), Expect::Absent)
    }

    /// Commits only if `key` is still at `mod_revision`; writes nothing to it.
    pub fn expect_unchanged<T>(self, key: &Key<T>, mod_revision: i64) -> Self {
        self.check(key.path(), Expect::ModRevision(mod_revision))
    }

    /// Commits only if no key starts with `prefix`.
    pub fn expect_empty<T>(self, prefix: &Prefix<T>) -> Self {
        self.check(prefix.path(), Expect::Empty)
    }

    /// Commits only if no key under `prefix` was created or changed after `revision`: a
    /// decision taken on a list read at `revision` still holds.
    pub fn expect_unmodified_since<T>(self, prefix: &Prefix<T>, revision: i64) -> Self {
        self.check(prefix.path(), Expect::UnmodifiedSince(revision))
    }

    /// Commits only if `key` was not written after `revision` (it may be absent).
    pub fn expect_unwritten_since<T>(self, key: &Key<T>, revision: i64) -> Self {
        self.check(key.path(), Expect::UnwrittenSince(revision))
    }

    /// Writes `value` under lease `lease`: the key goes when the lease expires.
    pub fn put_leased<T: Serialize>(mut self, key: &Key<T>, value: &T, lease: i64) -> Self {
        self.name(key.path());
        let options = etcd_client::PutOptions::new().with_lease(lease);
        self.put_with(key.path(), value, Some(options))
    }

    /// Deletes every key under `prefix` (one operation, however many keys).
    pub fn delete_prefix<T>(mut self, prefix: &Prefix<T>) -> Self {
        self.name(prefix.path());
        self.ranged = true;
        self.ops.push(TxnOp::delete(
            prefix.path(),
            Some(DeleteOptions::new().with_prefix()),
        ));
        self
    }

    fn check(mut self, key: &str, expect: Expect) -> Self {
        self.name(key);
        self.ranged |= matches!(expect, Expect::Empty | Expect::UnmodifiedSince(_));
        self.checks.push(Check {
            key: key.to_string(),
            expect,
        });
        self
    }

    fn put<T: Serialize>(self, key: &str, value: &T) -> Self {
        self.put_with(key, value, None)
    }

    fn put_with<T: Serialize>(
        mut self,
        key: &str,
        value: &T,
        options: Option<etcd_client::PutOptions>,
    ) -> Self {
        match encode(key, value) {
            Ok(bytes) => {
                self.put_bytes += key.len() + bytes.len();
                self.writes.push(key.to_string());
                self.ops.push(TxnOp::put(key, bytes, options))
            }
            Err(e) => {
                self.encode_error.get_or_insert(e);
            }
        }
        self
    }

    fn name(&mut self, key: &str) {
        self.first_key.get_or_insert_with(|| key.to_string());
    }

    /// Applies every write or none. Returns the new store revision; on a failed compare,
    /// [`StoreError::Conflict`] naming the first check (in builder order) that did not hold.
    pub async fn commit(self) -> Result<i64, StoreError> {
        self.commit_taken().await.map(|(revision, _)| revision)
    }

    /// [`Txn::commit`], also returning the last values of the keys [`Txn::take`] deleted
    /// (in builder order; a key that was already gone is not among them).
    pub async fn commit_taken(self) -> Result<(i64, Vec<Taken>), StoreError> {
        if self.grouped && !self.ranged && self.encode_error.is_none() {
            return crate::group::commit(self).await;
        }
        self.commit_alone().await
    }

    pub(crate) fn store(&self) -> &Store {
        &self.store
    }

    pub(crate) fn first_key(&self) -> Option<&str> {
        self.first_key.as_deref()
    }

    /// What this transaction compares.
    pub(crate) fn checks(&self) -> &[Check] {
        &self.checks
    }

    /// Operations etcd counts against `--max-txn-ops` for this transaction on its own.
    pub(crate) fn op_count(&self) -> usize {
        self.checks.len().max(self.ops.len())
    }

    /// One etcd transaction of all of `group`: every compare (a compare two members share
    /// once), every write in order, and the failure branch's reads, one per compare
    /// returned (in the order sent, for [`found_by_check`]).
    pub(crate) fn to_etcd<'a>(
        group: impl Iterator<Item = &'a Txn>,
    ) -> (etcd_client::Txn, Vec<&'a Check>) {
        let mut checks: Vec<&Check> = Vec::new();
        let mut ops = Vec::new();
        for txn in group {
            for c in &txn.checks {
                if !checks.contains(&c) {
                    checks.push(c);
                }
            }
            ops.extend(txn.ops.iter().cloned());
        }
        (Txn::etcd_of(&checks, ops), checks)
    }

    fn etcd_of(checks: &[&Check], ops: Vec<TxnOp>) -> etcd_client::Txn {
        let compares: Vec<Compare> = checks.iter().map(|c| c.compare()).collect();
        let reads: Vec<TxnOp> = checks.iter().map(|c| c.read()).collect();
        etcd_client::Txn::new()
            .when(compares)
            .and_then(ops)
            .or_else(reads)
    }

    /// Sends this transaction on its own.
    pub(crate) async fn commit_alone(mut self) -> Result<(i64, Vec<Taken>), StoreError> {
        if let Some(e) = self.encode_error {
            return Err(e);
        }
        if self.put_bytes > crate::MAX_WRITE_BYTES {
            return Err(StoreError::TooLarge {
                key: self.first_key.unwrap_or_default(),
                size: self.put_bytes,
                limit: crate::MAX_WRITE_BYTES,
            });
        }
        let ops = std::mem::take(&mut self.ops);
        let checks: Vec<&Check> = self.checks.iter().collect();
        let txn = Txn::etcd_of(&checks, ops);
        let key = self.first_key.as_deref().unwrap_or("(empty txn)");
        let resp = self.store.send_txn(key, txn).await?;
        if resp.succeeded() {
            return Ok((header_revision(resp.header()), taken(&resp)));
        }
        let found = found_by_check(&checks, &resp);
        Err(self.failing(&found).unwrap_or_else(|| {
            // etcd evaluated the same compares atomically with these reads, so one failed;
            // report the first rather than panic if etcd ever disagrees.
            match self.checks.first() {
                Some(check) => check.conflict(found.get(check).copied().flatten()),
                // Not reachable: a transaction without compares always succeeds.
                None => StoreError::Conflict {
                    key: self.first_key.clone().unwrap_or_default(),
                    expected: "success".to_string(),
                    found: "a failed transaction without compares".to_string(),
                },
            }
        }))
    }

    /// The first compare (in builder order) that does not hold by what a failed
    /// transaction's reads `found`, as the conflict to report; `None` when all hold.
    pub(crate) fn failing(&self, found: &HashMap<&Check, Option<Found>>) -> Option<StoreError> {
        self.checks.iter().find_map(|check| {
            let seen = found.get(check).copied().flatten();
            (!check.expect.holds(seen)).then(|| check.conflict(seen))
        })
    }
}

/// What the failure branch's reads found, by the compare each read is for (`checks` in the
/// order the transaction sent them).
pub(crate) fn found_by_check<'a>(
    checks: &[&'a Check],
    resp: &etcd_client::TxnResponse,
) -> HashMap<&'a Check, Option<Found>> {
    let found = resp.op_responses().into_iter().map(|r| match r {
        TxnOpResponse::Get(get) => get.kvs().first().map(|kv| Found {
            mod_revision: kv.mod_revision(),
            create_revision: kv.create_revision(),
        }),
        _ => None,
    });
    checks.iter().copied().zip(found).collect()
}

/// The last values of the keys a successful transaction deleted with `prev_kv`.
pub(crate) fn taken(resp: &etcd_client::TxnResponse) -> Vec<Taken> {
    resp.op_responses()
        .into_iter()
        .filter_map(|r| match r {
            TxnOpResponse::Delete(d) => Some(d),
            _ => None,
        })
        .flat_map(|d| {
            d.prev_kvs()
                .iter()
                .map(|kv| Taken {
                    key: String::from_utf8_lossy(kv.key()).into_owned(),
                    value: kv.value().to_vec(),
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

impl Store {
    /// Sends one etcd transaction (resent only where etcd provably did not carry it out) and
    /// notes the revision it answered at.
    pub(crate) async fn send_txn(
        &self,
        key: &str,
        txn: etcd_client::Txn,
    ) -> Result<etcd_client::TxnResponse, StoreError> {
        let resp = self
            .run("txn", key, Resend::IfNeverExecuted, |c| {
                let txn = txn.clone();
                async move { c.kv_client().txn(txn).await }
            })
            .await
            .map_err(|e| self.err("txn", key, e))?;
        self.saw(header_revision(resp.header()));
        Ok(resp)
    }
}

// === impl Check / Expect ===

impl Check {
    fn conflict(&self, found: Option<Found>) -> StoreError {
        StoreError::Conflict {
            key: self.key.clone(),
            expected: self.expect.to_string(),
            found: self.expect.describe(found),
        }
    }

    fn compare(&self) -> Compare {
        let key = self.key.as_str();
        // A range compare holds when every key in the range satisfies it, and an empty range
        // compares as one absent key (version 0, mod_revision 0).
        match self.expect {
            Expect::Absent => Compare::version(key, CompareOp::Equal, 0),
            Expect::ModRevision(rev) => Compare::mod_revision(key, CompareOp::Equal, rev),
            Expect::Empty => Compare::version(key, CompareOp::Equal, 0).with_prefix(),
            Expect::UnmodifiedSince(rev) => {
                Compare::mod_revision(key, CompareOp::Less, rev + 1).with_prefix()
            }
            Expect::UnwrittenSince(rev) => Compare::mod_revision(key, CompareOp::Less, rev + 1),
            Expect::CreatedAt(rev) => Compare::create_revision(key, CompareOp::Equal, rev),
        }
    }

    /// The read in the failure branch: the key itself, or the most recently modified key of
    /// a prefix, which is what a prefix expectation is about.
    fn read(&self) -> TxnOp {
        match self.expect {
            Expect::Absent
            | Expect::ModRevision(_)
            | Expect::UnwrittenSince(_)
            | Expect::CreatedAt(_) => TxnOp::get(self.key.as_str(), None),
            Expect::Empty | Expect::UnmodifiedSince(_) => TxnOp::get(
                self.key.as_str(),
                Some(
                    GetOptions::new()
                        .with_prefix()
                        .with_keys_only()
                        .with_sort(SortTarget::Mod, SortOrder::Descend)
                        .with_limit(1),
                ),
            ),
        }
    }
}

/// What a failed transaction's read found of a compared key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Found {
    mod_revision: i64,
    create_revision: i64,
}

impl Expect {
    fn holds(self, found: Option<Found>) -> bool {
        let modified = found.map(|f| f.mod_revision);
        match self {
            Expect::Absent => found.is_none(),
            Expect::ModRevision(rev) => modified == Some(rev),
            Expect::Empty => found.is_none(),
            Expect::UnmodifiedSince(rev) | Expect::UnwrittenSince(rev) => {
                modified.is_none_or(|m| m <= rev)
            }
            Expect::CreatedAt(rev) => found.is_some_and(|f| f.create_revision == rev),
        }
    }

    /// What a conflict message says was found instead.
    fn describe(self, found: Option<Found>) -> String {
        match (self, found) {
            (_, None) => "absent".to_string(),
            (Expect::CreatedAt(_), Some(f)) => format!("created at revision {}", f.create_revision),
            (_, Some(f)) => format!("mod_revision {}", f.mod_revision),
        }
    }
}

impl std::fmt::Display for Expect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Expect::Absent => f.write_str("absent"),
            Expect::ModRevision(rev) => write!(f, "mod_revision {rev}"),
            Expect::Empty => f.write_str("no keys under the prefix"),
            Expect::UnmodifiedSince(rev) => {
                write!(f, "no change under the prefix after revision {rev}")
            }
            Expect::UnwrittenSince(rev) => write!(f, "not written after revision {rev}"),
            Expect::CreatedAt(rev) => write!(f, "created at revision {rev}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A key last written at `m` and created at `c`.
    fn at(m: i64, c: i64) -> Option<Found> {
        Some(Found {
            mod_revision: m,
            create_revision: c,
        })
    }

    #[test]
    fn expectations_read_as_the_conflict_message_says() {
        assert_eq!(Expect::Absent.to_string(), "absent");
        assert_eq!(Expect::ModRevision(7).to_string(), "mod_revision 7");
        assert_eq!(Expect::CreatedAt(7).to_string(), "created at revision 7");
        assert_eq!(
            Expect::ModRevision(7).describe(at(42, 3)),
            "mod_revision 42"
        );
        assert_eq!(
            Expect::CreatedAt(7).describe(at(42, 3)),
            "created at revision 3"
        );
        assert_eq!(Expect::ModRevision(7).describe(None), "absent");
    }

    #[test]
    fn an_expectation_holds_only_for_its_exact_state() {
        assert!(Expect::Absent.holds(None));
        assert!(!Expect::Absent.holds(at(3, 3)));
        assert!(Expect::ModRevision(3).holds(at(3, 1)));
        assert!(!Expect::ModRevision(3).holds(at(4, 3)));
        assert!(!Expect::ModRevision(3).holds(None));
        assert!(Expect::Empty.holds(None));
        assert!(!Expect::Empty.holds(at(1, 1)));
        assert!(Expect::UnmodifiedSince(5).holds(None));
        assert!(Expect::UnwrittenSince(5).holds(None));
        assert!(Expect::UnwrittenSince(5).holds(at(5, 2)));
        assert!(!Expect::UnwrittenSince(5).holds(at(6, 2)));
        assert!(Expect::UnmodifiedSince(5).holds(at(5, 5)));
        assert!(!Expect::UnmodifiedSince(5).holds(at(6, 6)));
        // Changed since its creation is fine; recreated (or gone) is not.
        assert!(Expect::CreatedAt(5).holds(at(9, 5)));
        assert!(!Expect::CreatedAt(5).holds(at(9, 8)));
        assert!(!Expect::CreatedAt(5).holds(None));
    }
}
