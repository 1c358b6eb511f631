//! Lowest-free number selection. Hosts, tenants, segments and endpoints all get the lowest
//! number not in use so that numbers stay dense and predictable for operators.

use std::collections::BTreeSet;
use std::ops::RangeInclusive;

/// The lowest number of `range` not in `used`, or `None` when the range is exhausted.
pub fn lowest_free<T>(used: &BTreeSet<T>, range: RangeInclusive<T>) -> Option<T>
where
    T: Copy + Ord + std::ops::Add<Output = T> + From<u8>,
{
    first_free(used, range, 1).pop()
}

/// The `n` lowest numbers of `range` not in `used` (fewer when the range runs out).
///
/// Walks `used` in order, so the cost is bounded by the number of used values below the
/// answer plus `n`, not by the size of the range (IPv6 segments are astronomically large).
/// Allocators racing for one segment pick among these instead of all taking the lowest.
pub fn first_free<T>(used: &BTreeSet<T>, range: RangeInclusive<T>, n: usize) -> Vec<T>
where
    T: Copy + Ord + std::ops::Add<Output = T> + From<u8>,
{
    let (start, end) = (*range.start(), *range.end());
    if start > end {
        return Vec::new();
    }
    first_free_sorted(used.range(start..=end).copied(), range, n)
}

/// [`first_free`] over used numbers given in ascending order (values outside `range` are
/// ignored), so a caller can stream them from wherever they are kept without collecting.
pub fn first_free_sorted<T>(
    used: impl Iterator<Item = T>,
    range: RangeInclusive<T>,
    n: usize,
) -> Vec<T>
where
    T: Copy + Ord + std::ops::Add<Output = T> + From<u8>,
{
    let (start, end) = (*range.start(), *range.end());
    let mut free = Vec::with_capacity(n);
    if start > end {
        return free;
    }
    let mut taken = used.skip_while(|u| *u < start).peekable();
    let mut candidate = start;
    while free.len() < n {
        if taken.next_if_eq(&candidate).is_none() {
            free.push(candidate);
        }
        if candidate == end {
            break;
        }
        candidate = candidate + T::from(1);
    }
    free
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn empty_set_gives_the_start() {
        assert_eq!(lowest_free::<u32>(&BTreeSet::new(), 0..=3), Some(0));
        assert_eq!(lowest_free::<u128>(&BTreeSet::new(), 2..=254), Some(2));
    }

    #[test]
    fn holes_are_filled_first() {
        let used: BTreeSet<u32> = [0, 1, 3].into();
        assert_eq!(lowest_free(&used, 0..=7), Some(2));
    }

    #[test]
    fn full_range_is_exhausted() {
        let used: BTreeSet<u32> = [0, 1, 2, 3].into();
        assert_eq!(lowest_free(&used, 0..=3), None);
    }

    #[test]
    fn values_outside_the_range_are_ignored() {
        let used: BTreeSet<u128> = [0, 1, 2, 300].into();
        assert_eq!(lowest_free(&used, 2..=254), Some(3));
    }

    #[test]
    fn full_range_ending_at_type_max_is_exhausted_without_overflow() {
        let used: BTreeSet<u32> = [u32::MAX - 1, u32::MAX].into();
        assert_eq!(lowest_free(&used, u32::MAX - 1..=u32::MAX), None);
    }

    #[test]
    fn first_free_skips_used_and_stops_at_the_end() {
        let used: BTreeSet<u32> = [2, 3, 5].into();
        assert_eq!(first_free(&used, 2..=8, 3), vec![4, 6, 7]);
        assert_eq!(first_free(&used, 2..=8, 10), vec![4, 6, 7, 8]);
        assert_eq!(first_free(&used, 2..=5, 10), vec![4]);
    }

    proptest! {
        #[test]
        fn answer_is_free_in_range_and_minimal(used in proptest::collection::btree_set(0u32..64, 0..64), end in 0u32..64) {
            match lowest_free(&used, 0..=end) {
                Some(n) => {
                    prop_assert!(n <= end);
                    prop_assert!(!used.contains(&n));
                    prop_assert!((0..n).all(|m| used.contains(&m)));
                }
                None => prop_assert!((0..=end).all(|m| used.contains(&m))),
            }
        }

        #[test]
        fn sorted_stream_gives_the_same_answer(used in proptest::collection::btree_set(0u32..64, 0..64), start in 0u32..8, end in 0u32..64, n in 1usize..8) {
            prop_assert_eq!(
                first_free_sorted(used.iter().copied(), start..=end, n),
                first_free(&used, start..=end, n)
            );
        }
    }
}
