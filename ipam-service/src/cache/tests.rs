use super::*;

fn ips(v: &[u8]) -> Vec<IpAddr> {
    v.iter().map(|&b| IpAddr::from([10, 0, 0, b])).collect()
}

#[test]
fn merge_keeps_order_and_drops_duplicates() {
    let a = ips(&[1, 3, 5, 7]);
    let b = ips(&[2, 3, 8]);
    let merged: Vec<IpAddr> = merge(a.iter().copied(), b.iter().copied()).collect();
    assert_eq!(merged, ips(&[1, 2, 3, 5, 7, 8]));
    let none = std::iter::empty::<IpAddr>;
    assert_eq!(merge(a.iter().copied(), none()).collect::<Vec<_>>(), a);
    assert_eq!(merge(none(), b.iter().copied()).collect::<Vec<_>>(), b);
}

/// A copy holding `config` and nothing else, with no watch behind it.
fn cache_of(config: ClusterConfig) -> (Cache, Layout) {
    let layout = config.layout().unwrap();
    let inner = Inner {
        config: Some((
            Read {
                value: config,
                mod_revision: 1,
            },
            layout.clone(),
        )),
        ..Default::default()
    };
    let (_, synced) = tokio::sync::watch::channel(true);
    let cache = Cache {
        inner: Arc::new(Mutex::new(inner)),
        synced,
        tasks: Vec::new(),
    };
    (cache, layout)
}

fn config(second: Option<&str>) -> ClusterConfig {
    ClusterConfig {
        address_space: "10.0.0.0/8".parse().unwrap(),
        host_bits: 8,
        rack_bits: 0,
        tenant_bits: 4,
        segment_bits: 4,
        single_tenant: false,
        second_address_space: second.map(|s| s.parse().unwrap()),
    }
}

/// Reserves the lowest free number of `spaces` (indexes into the layout's families) in
/// segment 0 of tenant 0 on host 0.
fn reserve(cache: &Cache, layout: &Layout, spaces: &[usize]) -> (u128, Reservation) {
    let families: Vec<&Layout> = layout.families().collect();
    let families: Vec<&Layout> = spaces.iter().map(|&i| families[i]).collect();
    let cidrs: Vec<IpNet> = families
        .iter()
        .map(|f| f.segment_cidr(0, 0, 0).unwrap())
        .collect();
    let assignable = match families[..] {
        [one] => one.assignable_endpoints(),
        _ => layout.assignable_in_every_family(),
    };
    let mut number = 0;
    let r = cache
        .reserve(layout, &cidrs, assignable, 1, |free| {
            number = free[0];
            families
                .iter()
                .map(|f| f.endpoint_address(0, 0, 0, free[0]).ok())
                .collect()
        })
        .expect("a free address");
    (number, r)
}

#[test]
fn a_segment_fills_from_the_bottom_and_every_freed_number_is_offered_again() {
    let (cache, layout) = cache_of(config(None));
    let address = |n: u128| layout.endpoint_address(0, 0, 0, n).unwrap();
    for expected in 2..=40 {
        let (n, r) = reserve(&cache, &layout, &[0]);
        assert_eq!(n, expected);
        r.claimed(&format!("e{n}"), n as i64);
    }
    // Released here, and released elsewhere (the watch's deletion).
    cache.freed(address(10));
    let (n, r) = reserve(&cache, &layout, &[0]);
    assert_eq!(n, 10);
    r.claimed("again", 100);
    unclaim(&mut cache.lock(), address(7));
    let (n, r) = reserve(&cache, &layout, &[0]);
    assert_eq!(n, 7);
    // Reserved but never claimed (its transaction lost): offered again.
    let (n, lost) = reserve(&cache, &layout, &[0]);
    assert_eq!(n, 41);
    let (n2, _held) = reserve(&cache, &layout, &[0]);
    assert_eq!(n2, 42, "a reserved number is not offered twice");
    drop(lost);
    assert_eq!(reserve(&cache, &layout, &[0]).0, 41);
    drop(r);
    // A replaced copy of the addresses forgets the hints: nothing is skipped.
    adopt(&mut cache.lock(), Inner::default(), Part::Addresses);
    assert_eq!(reserve(&cache, &layout, &[0]).0, 2);
}

#[test]
fn a_dual_stack_number_must_be_free_in_both_families_and_each_hint_is_its_own() {
    let (cache, layout) = cache_of(config(Some("fd00:10::/48")));
    let v6 = layout.second_family().unwrap();
    let held = |a: IpAddr| Holder {
        id: a.to_string(),
        revision: 1,
    };
    // Numbers 2 and 3 held in IPv6 only (CIDR-placed endpoints).
    for n in [2, 3] {
        let a = v6.endpoint_address(0, 0, 0, n).unwrap();
        cache.lock().claims.claim(a, held(a));
    }
    let (n, pair) = reserve(&cache, &layout, &[0, 1]);
    assert_eq!(n, 4, "the lowest number free in both");
    pair.claimed("pair", 5);
    // The IPv4 numbers below stay free for an IPv4-only endpoint.
    assert_eq!(reserve(&cache, &layout, &[0]).0, 2);
    assert_eq!(reserve(&cache, &layout, &[0, 1]).0, 5);
}

#[derive(Clone, Debug)]
enum Op {
    /// Reserve in IPv4 only, or in both families.
    Reserve { both: bool },
    /// Claim, or drop unclaimed, the k-th outstanding reservation.
    Settle { k: usize, claim: bool },
    /// Free the k-th claimed address (a release here or a deletion the watch saw).
    Free { k: usize },
}

fn op() -> impl proptest::strategy::Strategy<Value = Op> {
    use proptest::prelude::*;
    prop_oneof![
        3 => any::<bool>().prop_map(|both| Op::Reserve { both }),
        2 => (0..8usize, any::<bool>()).prop_map(|(k, claim)| Op::Settle { k, claim }),
        1 => (0..64usize).prop_map(|k| Op::Free { k }),
    ]
}

proptest::proptest! {
    /// Whatever the order of reservations, claims, lost races and releases, the copy offers
    /// exactly the lowest number free in every family asked for: the start hints never skip
    /// a free number.
    #[test]
    fn the_offered_number_is_always_the_lowest_free(ops in proptest::collection::vec(op(), 1..80)) {
        let (cache, layout) = cache_of(config(Some("fd00:10::/48")));
        let families: Vec<&Layout> = layout.families().collect();
        let mut outstanding: Vec<Reservation> = Vec::new();
        let mut claimed: Vec<IpAddr> = Vec::new();
        for op in ops {
            match op {
                Op::Reserve { both } => {
                    let spaces: &[usize] = if both { &[0, 1] } else { &[0] };
                    let used: BTreeSet<IpAddr> = outstanding
                        .iter()
                        .flat_map(|r| r.addresses.clone())
                        .chain(claimed.iter().copied())
                        .collect();
                    let range = if both {
                        layout.assignable_in_every_family()
                    } else {
                        layout.assignable_endpoints()
                    };
                    let expected = range.clone().find(|&n| {
                        spaces.iter().all(|&i| {
                            !used.contains(&families[i].endpoint_address(0, 0, 0, n).unwrap())
                        })
                    });
                    let (n, r) = reserve(&cache, &layout, spaces);
                    proptest::prop_assert_eq!(Some(n), expected);
                    outstanding.push(r);
                }
                Op::Settle { k, claim } if k < outstanding.len() => {
                    let r = outstanding.remove(k);
                    if claim {
                        claimed.extend(r.addresses.iter().copied());
                        r.claimed("e", 1);
                    }
                }
                Op::Free { k } if k < claimed.len() => {
                    let a = claimed.remove(k);
                    cache.freed(a);
                }
                _ => {}
            }
        }
    }
}
