//! The text `nft -f -` reads: the whole table, a replacing transaction, element changes;
//! and the comment that marks each rule as ours.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::{self, Write as _};

use super::ir::{proto_name, Atom, Match, NftProgram, Part, Rule, SetElement, Side, Verdict};
use super::{COMMENT_PREFIX, TABLE_FAMILY, TABLE_NAME};
use crate::ifname::nft_endpoint_names;

impl SetElement {
    /// The key alone, as a `delete element` names it.
    pub fn key_text(&self) -> String {
        match self {
            SetElement::Goto(a, _) => a.to_string(),
            other => other.to_string(),
        }
    }
}

impl fmt::Display for SetElement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SetElement::Addr(a) => write!(f, "{a}"),
            SetElement::Pair(a, b) => write!(f, "{a} . {b}"),
            SetElement::AddrProtoPort(a, p, port) => write!(f, "{a} . {} . {port}", proto_name(*p)),
            SetElement::Goto(a, chain) => write!(f, "{a} : goto {chain}"),
            SetElement::IfAddr(name, a) => write!(f, "\"{name}\" . {a}"),
        }
    }
}

// === impl Part / Atom / Match / Rule ===

impl fmt::Display for Part {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Part::Addr { family, side, mask } => {
                let field = match side {
                    Side::Src => "saddr",
                    Side::Dst => "daddr",
                };
                write!(f, "{} {field}", family.payload())?;
                if let Some(m) = mask {
                    write!(f, " & {m}")?;
                }
                Ok(())
            }
            Part::L4proto => f.write_str("meta l4proto"),
            Part::Dport => f.write_str("th dport"),
            Part::IcmpType(family) => write!(f, "{} type", family.icmp()),
            Part::IcmpCode(family) => write!(f, "{} code", family.icmp()),
            Part::Iifname => f.write_str("iifname"),
            Part::Oifname => f.write_str("oifname"),
        }
    }
}

impl fmt::Display for Atom {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Atom::Addr(a) => write!(f, "{a}"),
            Atom::Net(n) => write!(f, "{n}"),
            Atom::Proto(p) => f.write_str(&proto_name(*p)),
            Atom::Port(p) => write!(f, "{p}"),
            Atom::PortRange(lo, hi) => write!(f, "{lo}-{hi}"),
            Atom::Num(n) => write!(f, "{n}"),
        }
    }
}

fn concat<T: fmt::Display>(items: &[T]) -> String {
    items
        .iter()
        .map(T::to_string)
        .collect::<Vec<_>>()
        .join(" . ")
}

impl fmt::Display for Match {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Match::FromEndpoint => write!(f, "iifname {}", nft_endpoint_names()),
            Match::ToEndpoint => write!(f, "oifname {}", nft_endpoint_names()),
            Match::Established => f.write_str("ct state established,related"),
            Match::Nfproto(family) => write!(f, "meta nfproto {}", family.nfproto()),
            Match::Eq(part @ Part::Addr { mask: Some(_), .. }, value) => {
                write!(f, "{part} == {value}")
            }
            Match::Eq(part, value) => write!(f, "{part} {value}"),
            Match::InSet(parts, set) => write!(f, "{} @{set}", concat(parts)),
            Match::InAnon(parts, elements) => {
                let elements: Vec<String> = elements.iter().map(|e| concat(e)).collect();
                write!(f, "{} {{ {} }}", concat(parts), elements.join(", "))
            }
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Verdict::Accept => f.write_str("accept"),
            Verdict::Drop => f.write_str("drop"),
            Verdict::Return => f.write_str("return"),
            Verdict::Jump(chain) => write!(f, "jump {chain}"),
            Verdict::Vmap(part, map) => write!(f, "{part} vmap @{map}"),
        }
    }
}

impl Rule {
    /// The rule as `nft` reads it, without its comment.
    pub fn text(&self) -> String {
        let mut out = String::new();
        for m in &self.matches {
            let _ = write!(out, "{m} ");
        }
        let _ = write!(out, "{}", self.verdict);
        out
    }
}

// === impl NftProgram ===

impl NftProgram {
    /// The table definition, as `nft -f -` reads it.
    pub fn render_table(&self) -> String {
        let mut out = format!("table {TABLE_FAMILY} {TABLE_NAME} {{\n");
        for (name, set) in &self.sets {
            let kind = if set.key.is_map() { "map" } else { "set" };
            let _ = writeln!(out, "\t{kind} {name} {{");
            let _ = writeln!(out, "\t\ttype {}", set.key.type_text());
            // nft refuses `elements = { }`: an empty set has no elements line.
            if !set.elements.is_empty() {
                let _ = writeln!(out, "\t\telements = {{ {} }}", join(&set.elements));
            }
            out.push_str("\t}\n");
        }
        for chain in &self.chains {
            let _ = writeln!(out, "\tchain {} {{", chain.name);
            if let Some(hook) = chain.hook {
                let _ = writeln!(
                    out,
                    "\t\ttype filter hook {} priority {}; policy accept;",
                    hook.name(),
                    hook.priority()
                );
            }
            for rule in &chain.rules {
                let text = rule.text();
                let _ = writeln!(out, "\t\t{text} comment \"{}\"", rule_comment(&text));
            }
            out.push_str("\t}\n");
        }
        out.push_str("}\n");
        out
    }

    /// One transaction that replaces our table whole, whatever was there. nft 1.0.6 has no
    /// `destroy`, and `delete` of an absent table fails the batch, so the table is first
    /// added (a no-op when present) and then deleted.
    pub fn render_replace(&self) -> String {
        format!(
            "add table {TABLE_FAMILY} {TABLE_NAME}\ndelete table {TABLE_FAMILY} {TABLE_NAME}\n{}",
            self.render_table()
        )
    }
}

/// The `nft -f -` text of element deletes and adds, one transaction. Deletes come first:
/// adding a map key that is still there with another verdict fails the batch.
pub fn render_elements(add: &[(String, SetElement)], delete: &[(String, SetElement)]) -> String {
    let mut out = String::new();
    for (verb, list) in [("delete", delete), ("add", add)] {
        let mut by_set: BTreeMap<&str, BTreeSet<&SetElement>> = BTreeMap::new();
        for (set, e) in list {
            by_set.entry(set).or_default().insert(e);
        }
        for (set, elements) in by_set {
            let texts: Vec<String> = elements
                .iter()
                .map(|e| {
                    if verb == "delete" {
                        e.key_text()
                    } else {
                        e.to_string()
                    }
                })
                .collect();
            let _ = writeln!(
                out,
                "{verb} element {TABLE_FAMILY} {TABLE_NAME} {set} {{ {} }}",
                texts.join(", ")
            );
        }
    }
    out
}

/// The comment that marks a rule as ours and pins its exact text.
pub fn rule_comment(rule: &str) -> String {
    let h = crate::ifname::fnv1a64(rule.as_bytes());
    format!("{COMMENT_PREFIX}{:08x}", (h >> 32) as u32 ^ h as u32)
}

fn join(elements: &BTreeSet<SetElement>) -> String {
    elements
        .iter()
        .map(SetElement::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}
