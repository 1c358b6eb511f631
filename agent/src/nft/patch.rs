//! Rule changes without replacing the table: when a policy changes, the chains of the table
//! stay the same and only the rules of some of them differ (a port, a selector's rule). One
//! transaction flushes those chains and adds their rules again, with the element changes;
//! loading the whole table instead costs as much as the table has elements (~10 ms at 1k,
//! ~400 ms at 100k), on every host, for a one-line change.
//!
//! Only for a table that is ours and intact: a chain holding a rule without our comment
//! (someone else's) or no rules at all (flushed by hand) is drift, and drift is repaired
//! by replacing the table whole, as before.

use std::fmt::Write as _;

use super::{
    render_elements, rule_comment, Chain, SetElement, TableView, TABLE_FAMILY, TABLE_NAME,
};

impl TableView {
    /// The chains whose rules differ from `want`'s when nothing else but set elements
    /// does (same chains in the same order, same hooks, same set declarations, nothing
    /// foreign), and every such chain of ours is intact; `None` otherwise.
    pub fn patchable(&self, want: &TableView) -> Option<Vec<String>> {
        if !self.other.is_empty()
            || !want.other.is_empty()
            || self.decls() != want.decls()
            || self.chains.len() != want.chains.len()
        {
            return None;
        }
        let mut differ = Vec::new();
        for (have, want) in self.chains.iter().zip(&want.chains) {
            let same_chain = have.name == want.name
                && have.kind == want.kind
                && have.hook == want.hook
                && have.prio == want.prio
                && have.policy == want.policy;
            if !same_chain {
                return None;
            }
            if have.rules != want.rules {
                if have.rules.is_empty() || have.rules.iter().any(Option::is_none) {
                    return None;
                }
                differ.push(have.name.clone());
            }
        }
        Some(differ)
    }
}

/// One transaction: the element changes, then each chain of `chains` flushed and given
/// its rules again.
pub fn render_patch(
    chains: &[Chain],
    add: &[(String, SetElement)],
    delete: &[(String, SetElement)],
) -> String {
    let mut out = render_elements(add, delete);
    for chain in chains {
        let _ = writeln!(
            out,
            "flush chain {TABLE_FAMILY} {TABLE_NAME} {}",
            chain.name
        );
        for rule in &chain.rules {
            let text = rule.text();
            let _ = writeln!(
                out,
                "add rule {TABLE_FAMILY} {TABLE_NAME} {} {text} comment \"{}\"",
                chain.name,
                rule_comment(&text)
            );
        }
    }
    out
}
