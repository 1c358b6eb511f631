//! The table as read back, reduced to what the planner compares (structure, rule comments,
//! set elements), and the element changes between two such views.

use std::collections::{BTreeMap, BTreeSet};

use super::ir::{Hook, NftProgram, SetElement};
use super::render::rule_comment;

/// The table as read back, reduced to what we compare: structure and set elements.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TableView {
    pub chains: Vec<ChainView>,
    /// Set or map name -> key type as nft prints it (`ipv4_addr . ipv4_addr`,
    /// `ipv4_addr : verdict`) and elements.
    pub sets: BTreeMap<String, SetView>,
    /// Objects we never create (counters, flowtables, flags...): any makes the table foreign.
    pub other: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainView {
    pub name: String,
    pub kind: Option<String>,
    pub hook: Option<String>,
    pub prio: Option<i64>,
    pub policy: Option<String>,
    /// The comment of each rule, in order (`None` for a rule without one: not ours).
    pub rules: Vec<Option<String>>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SetView {
    pub key: String,
    pub elements: BTreeSet<SetElement>,
}

// === impl NftProgram ===

impl NftProgram {
    /// The view [`parse_table`] gives of this program once applied.
    pub fn view(&self) -> TableView {
        TableView {
            chains: self
                .chains
                .iter()
                .map(|c| ChainView {
                    name: c.name.clone(),
                    kind: c.hook.map(|_| "filter".into()),
                    hook: c.hook.map(|h| h.name().into()),
                    prio: c.hook.map(Hook::priority),
                    policy: c.hook.map(|_| "accept".into()),
                    rules: c
                        .rules
                        .iter()
                        .map(|r| Some(rule_comment(&r.text())))
                        .collect(),
                })
                .collect(),
            sets: self
                .sets
                .iter()
                .map(|(name, set)| {
                    (
                        name.clone(),
                        SetView {
                            key: set.key.type_text(),
                            elements: set.elements.clone(),
                        },
                    )
                })
                .collect(),
            other: Vec::new(),
        }
    }
}

// === impl TableView ===

impl TableView {
    /// Same chains, rules (by comment) and set declarations: only elements may differ.
    pub fn same_structure(&self, other: &TableView) -> bool {
        self.chains == other.chains
            && self.decls() == other.decls()
            && self.other.is_empty()
            && other.other.is_empty()
    }

    /// Each set's name and key type: the declarations, without elements.
    pub(super) fn decls(&self) -> Vec<(&str, &str)> {
        self.sets
            .iter()
            .map(|(n, s)| (n.as_str(), s.key.as_str()))
            .collect()
    }
}

/// Set elements to add or delete, by set name.
pub type ElementOps = Vec<(String, SetElement)>;

/// Element changes that turn `from`'s sets into `to`'s; both must have the same structure.
/// A map element whose verdict changed is a delete of the old and an add of the new.
pub fn element_changes(from: &TableView, to: &TableView) -> (ElementOps, ElementOps) {
    let (mut add, mut delete) = (Vec::new(), Vec::new());
    for (name, want) in &to.sets {
        let have = from.sets.get(name).map(|s| &s.elements);
        for e in &want.elements {
            if !have.is_some_and(|h| h.contains(e)) {
                add.push((name.clone(), e.clone()));
            }
        }
        if let Some(have) = have {
            for e in have.difference(&want.elements) {
                delete.push((name.clone(), e.clone()));
            }
        }
    }
    (add, delete)
}
