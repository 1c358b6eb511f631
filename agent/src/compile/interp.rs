//! A test interpreter of [`NftProgram`]: runs one new, routed packet through the base
//! chains as the kernel would, prerouting then forward (rules in order, the first verdict
//! wins; `jump` pushes a return point, `goto` and verdict maps do not; `return` or the end
//! of a non-base chain pops; the end of a base chain is its policy, accept). Set lookups
//! are exact for named sets and interval lookups for anonymous ones; masked addresses are
//! `addr & mask`.

use std::net::IpAddr;

use romana_core::policy::{Packet, Protocol};

use super::proto_number;
use crate::ifname::is_endpoint_interface;
use crate::nft::{Atom, Family, Hook, Match, NftProgram, Part, SetElement, Side, Verdict};

/// A packet routed through one host, as its hooks see it.
#[derive(Clone, Debug)]
pub struct Probe {
    pub packet: Packet,
    /// The interface it came in through, when that is a local endpoint's (else the uplink).
    pub iif: Option<String>,
    /// The interface it leaves through, when that is a local endpoint's.
    pub oif: Option<String>,
}

/// A field's value in the packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Value<'a> {
    Addr(IpAddr),
    Proto(u8),
    Port(u16),
    Num(u8),
    Name(&'a str),
}

/// Whether the program lets the packet through both base chains.
pub fn interpret(program: &NftProgram, probe: &Probe) -> bool {
    [Hook::Prerouting, Hook::Forward]
        .into_iter()
        .filter_map(|h| program.chains.iter().position(|c| c.hook == Some(h)))
        .all(|base| run(program, base, probe))
}

fn run(program: &NftProgram, base: usize, probe: &Probe) -> bool {
    // (chain index, next rule index) return points pushed by `jump`.
    let mut stack: Vec<(usize, usize)> = Vec::new();
    let (mut chain, mut at) = (base, 0);
    let mut steps = 0;
    loop {
        steps += 1;
        assert!(steps < 100_000, "the program loops");
        let rules = &program.chains[chain].rules;
        let Some(rule) = rules.get(at) else {
            // End of chain: the base chain's policy, or an implicit return.
            match stack.pop() {
                Some((c, r)) if chain != base => {
                    (chain, at) = (c, r);
                    continue;
                }
                _ => return true,
            }
        };
        at += 1;
        if !rule.matches.iter().all(|m| matches(program, probe, m)) {
            continue;
        }
        match &rule.verdict {
            Verdict::Accept => return true,
            Verdict::Drop => return false,
            Verdict::Return => match stack.pop() {
                Some((c, r)) => (chain, at) = (c, r),
                None => return true,
            },
            Verdict::Jump(target) => {
                stack.push((chain, at));
                (chain, at) = (index(program, target), 0);
            }
            Verdict::Vmap(part, map) => {
                let Some(Value::Addr(key)) = value(probe, part) else {
                    continue;
                };
                let target = program.sets[map].elements.iter().find_map(|e| match e {
                    SetElement::Goto(a, c) if *a == key => Some(c.clone()),
                    _ => None,
                });
                if let Some(target) = target {
                    (chain, at) = (index(program, &target), 0);
                }
            }
        }
    }
}

fn index(program: &NftProgram, name: &str) -> usize {
    program
        .chains
        .iter()
        .position(|c| c.name == name)
        .unwrap_or_else(|| panic!("no chain {name}"))
}

fn family_of(packet: &Packet) -> Family {
    Family::of_addr(&packet.from)
}

fn value<'a>(probe: &'a Probe, part: &Part) -> Option<Value<'a>> {
    let p = &probe.packet;
    let is_icmp = p.protocol == Protocol::Icmp;
    match part {
        Part::Addr { family, side, mask } => {
            let a = match side {
                Side::Src => p.from,
                Side::Dst => p.to,
            };
            if Family::of_addr(&a) != *family {
                return None;
            }
            Some(Value::Addr(match mask {
                None => a,
                Some(m) => and(a, *m)?,
            }))
        }
        Part::L4proto => Some(Value::Proto(proto_number(p.protocol, family_of(p)))),
        Part::Dport => (!is_icmp).then_some(p.port).flatten().map(Value::Port),
        Part::IcmpType(f) => (is_icmp && family_of(p) == *f)
            .then_some(p.icmp_type)
            .flatten()
            .map(Value::Num),
        Part::IcmpCode(f) => (is_icmp && family_of(p) == *f)
            .then_some(p.icmp_code)
            .flatten()
            .map(Value::Num),
        // An interface that is not an endpoint's has a name too, never one in our sets.
        Part::Iifname => Some(Value::Name(probe.iif.as_deref().unwrap_or("uplink"))),
        Part::Oifname => Some(Value::Name(probe.oif.as_deref().unwrap_or("uplink"))),
    }
}

/// The values of every part, or `None` when the packet lacks one (no such set can match).
fn values<'a>(probe: &'a Probe, parts: &[Part]) -> Option<Vec<Value<'a>>> {
    parts.iter().map(|p| value(probe, p)).collect()
}

fn and(a: IpAddr, m: IpAddr) -> Option<IpAddr> {
    match (a, m) {
        (IpAddr::V4(a), IpAddr::V4(m)) => Some(IpAddr::V4((u32::from(a) & u32::from(m)).into())),
        (IpAddr::V6(a), IpAddr::V6(m)) => Some(IpAddr::V6((u128::from(a) & u128::from(m)).into())),
        _ => None,
    }
}

fn atom_matches(atom: &Atom, v: Value) -> bool {
    match (atom, v) {
        (Atom::Addr(a), Value::Addr(b)) => *a == b,
        (Atom::Net(n), Value::Addr(b)) => n.contains(&b),
        (Atom::Proto(a), Value::Proto(b)) => *a == b,
        (Atom::Port(a), Value::Port(b)) => *a == b,
        (Atom::PortRange(lo, hi), Value::Port(b)) => (*lo..=*hi).contains(&b),
        (Atom::Num(a), Value::Num(b)) => *a == b,
        _ => false,
    }
}

fn matches(program: &NftProgram, probe: &Probe, m: &Match) -> bool {
    match m {
        // As nft's wildcards match: by prefix (`rmn*`, `tap*`).
        Match::FromEndpoint => probe.iif.as_deref().is_some_and(is_endpoint_interface),
        Match::ToEndpoint => probe.oif.as_deref().is_some_and(is_endpoint_interface),
        // Every probe opens a connection.
        Match::Established => false,
        Match::Nfproto(f) => family_of(&probe.packet) == *f,
        Match::Eq(part, atom) => value(probe, part).is_some_and(|v| atom_matches(atom, v)),
        Match::InAnon(parts, elements) => {
            let Some(values) = values(probe, parts) else {
                return false;
            };
            elements.iter().any(|e| {
                e.len() == values.len() && e.iter().zip(&values).all(|(a, v)| atom_matches(a, *v))
            })
        }
        Match::InSet(parts, set) => {
            let Some(values) = values(probe, parts) else {
                return false;
            };
            let element = match values.as_slice() {
                [Value::Addr(a)] => SetElement::Addr(*a),
                [Value::Addr(a), Value::Addr(b)] => SetElement::Pair(*a, *b),
                [Value::Addr(a), Value::Proto(p), Value::Port(n)] => {
                    SetElement::AddrProtoPort(*a, *p, *n)
                }
                [Value::Name(n), Value::Addr(a)] => SetElement::IfAddr(n.to_string(), *a),
                other => panic!("no set key of shape {other:?}"),
            };
            program.sets[set].elements.contains(&element)
        }
    }
}
