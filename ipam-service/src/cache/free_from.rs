//! Where the search for a free address of a segment starts: per segment CIDR, an endpoint
//! number below which every assignable number is used (claimed, or reserved by this
//! replica). Filling a segment from the bottom then costs each allocation the few numbers
//! since the last one, not a walk over every address already used. A hint is only ever
//! too low, never too high: whatever frees a number lowers it (see [`FreeFrom::lower`]).

use std::collections::HashMap;

use ipnet::IpNet;

/// Numbers `lo..from` of a CIDR are all used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Hint {
    lo: u128,
    from: u128,
}

#[derive(Default)]
pub struct FreeFrom {
    hints: HashMap<IpNet, Hint>,
}

impl FreeFrom {
    /// Where to start looking in `cidr` for numbers from `lo` on: every number of
    /// `lo..start` is used.
    pub fn start(&self, cidr: &IpNet, lo: u128) -> u128 {
        match self.hints.get(cidr) {
            Some(h) if h.lo <= lo => h.from.max(lo),
            _ => lo,
        }
    }

    /// Every number of `lo..from` in `cidr` is used.
    pub fn set(&mut self, cidr: IpNet, lo: u128, from: u128) {
        self.hints.insert(cidr, Hint { lo, from });
    }

    /// `number` of `cidr` may be free again.
    pub fn lower(&mut self, cidr: &IpNet, number: u128) {
        if let Some(h) = self.hints.get_mut(cidr) {
            h.from = h.from.min(number);
        }
    }

    /// Forget every hint (the layout or the whole copy of addresses was replaced).
    pub fn clear(&mut self) {
        self.hints.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hint_only_skips_numbers_known_used() {
        let cidr: IpNet = "10.0.0.0/24".parse().unwrap();
        let mut f = FreeFrom::default();
        assert_eq!(f.start(&cidr, 2), 2, "nothing known: from the bottom");
        f.set(cidr, 2, 40);
        assert_eq!(f.start(&cidr, 2), 40);
        assert_eq!(f.start(&cidr, 5), 40, "a narrower range is covered");
        assert_eq!(f.start(&cidr, 60), 60);
        assert_eq!(f.start(&cidr, 1), 1, "number 1 was never looked at");
        f.lower(&cidr, 17);
        assert_eq!(f.start(&cidr, 2), 17);
        f.lower(&cidr, 30);
        assert_eq!(f.start(&cidr, 2), 17, "lowering never raises");
        f.clear();
        assert_eq!(f.start(&cidr, 2), 2);
    }
}
