//! Every claimed address of the cluster as the addresses watch shows it: ordered, so one
//! segment's are one range for picking a free one, and with the endpoint holding each and
//! the revision of the transaction that claimed it, so a release can name all of an
//! endpoint's keys without reading its record (`romana_store::Claim`).

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::ops::RangeInclusive;

/// Who holds an address: the endpoint, and the revision of the transaction that claimed it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Holder {
    pub id: String,
    pub revision: i64,
}

/// What the copy says an endpoint holds; a release transaction verifies it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claimed {
    pub id: String,
    /// In ascending order.
    pub addresses: Vec<IpAddr>,
    pub revision: i64,
}

#[derive(Default)]
pub struct Claims {
    /// `None`: known to be taken (a lost race said so), holder not known yet.
    addresses: BTreeMap<IpAddr, Option<Holder>>,
    /// The addresses each endpoint holds, by id.
    by_id: HashMap<String, Vec<IpAddr>>,
}

impl Claims {
    /// The taken addresses of `range`, ascending.
    pub fn range(&self, range: RangeInclusive<IpAddr>) -> impl Iterator<Item = &IpAddr> {
        self.addresses.range(range).map(|(a, _)| a)
    }

    /// `address` is taken, by whom is not known (yet).
    pub fn taken(&mut self, address: IpAddr) {
        self.addresses.entry(address).or_insert(None);
    }

    /// Records `holder` at `address`, taking the address off any earlier holder's list.
    pub fn claim(&mut self, address: IpAddr, holder: Holder) {
        let id = holder.id.clone();
        if let Some(Some(old)) = self.addresses.insert(address, Some(holder)) {
            if old.id != id {
                self.drop_from(&old.id, address);
            }
        }
        let held = self.by_id.entry(id).or_default();
        if !held.contains(&address) {
            held.push(address);
        }
    }

    /// Forgets `address` and who held it.
    pub fn unclaim(&mut self, address: IpAddr) {
        if let Some(Some(old)) = self.addresses.remove(&address) {
            self.drop_from(&old.id, address);
        }
    }

    /// What endpoint `id` holds, when each of its addresses names it at one revision.
    pub fn claimed_by(&self, id: &str) -> Option<Claimed> {
        let held = self.by_id.get(id)?;
        let mut revision = None;
        for a in held {
            let holder = self.addresses.get(a)?.as_ref()?;
            if holder.id != id || revision.is_some_and(|r| r != holder.revision) {
                return None;
            }
            revision = Some(holder.revision);
        }
        let mut addresses = held.clone();
        addresses.sort();
        Some(Claimed {
            id: id.to_string(),
            addresses,
            revision: revision?,
        })
    }

    /// What the holder of `address` holds.
    pub fn claimed_at(&self, address: IpAddr) -> Option<Claimed> {
        let holder = self.addresses.get(&address)?.as_ref()?;
        self.claimed_by(&holder.id)
    }

    fn drop_from(&mut self, id: &str, address: IpAddr) {
        if let Some(held) = self.by_id.get_mut(id) {
            held.retain(|a| *a != address);
            if held.is_empty() {
                self.by_id.remove(id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn holder(id: &str, revision: i64) -> Holder {
        Holder {
            id: id.into(),
            revision,
        }
    }

    #[test]
    fn a_claim_is_known_whole_or_not_at_all() {
        let mut claims = Claims::default();
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.2".parse().unwrap(), "fd00::2".parse().unwrap());
        claims.claim(b, holder("e1", 7));
        claims.claim(a, holder("e1", 7));
        let whole = claims.claimed_by("e1").unwrap();
        assert_eq!((whole.addresses, whole.revision), (vec![a, b], 7));
        assert_eq!(claims.claimed_at(b), claims.claimed_by("e1"));

        // Addresses of two claims (a missed deletion) are no claim.
        claims.claim(b, holder("e1", 9));
        assert_eq!(claims.claimed_by("e1"), None);

        // An address taken over by another endpoint leaves the first one's list.
        claims.claim(b, holder("e2", 11));
        assert_eq!(claims.claimed_by("e1").unwrap().addresses, vec![a]);
        assert_eq!(claims.claimed_at(b).unwrap().revision, 11);

        // Released: gone; "taken" without a holder is no claim, yet still taken.
        claims.unclaim(a);
        assert_eq!(claims.claimed_by("e1"), None);
        claims.taken(a);
        assert_eq!(claims.claimed_at(a), None);
        assert_eq!(claims.range(a..=a).count(), 1);
    }
}
