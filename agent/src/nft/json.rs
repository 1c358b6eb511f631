//! Reading `nft -j list table inet romana` back into a [`TableView`], through typed serde
//! structs of the objects nft prints. Lenient where reading a table of ours needs no more
//! (fields we do not compare are skipped), strict where a wrong guess would hide drift.
//!
//! What each shape becomes:
//! - `metainfo`, `table`, and items that are not objects: nothing.
//! - `chain`, `rule`, `set`, `map`: their [`ChainView`], rule comment or [`SetView`]; a
//!   missing name (or a rule's chain, a set's type) fails the read.
//! - A set or map with `flags` or `timeout`, an object of any other kind (counter,
//!   flowtable, ...) and a rule of a chain not listed: named in [`TableView::other`], so
//!   the table is foreign and replaced whole.
//! - A set element of a shape we never write fails the read ([`ParseError::Element`]):
//!   fail closed, the caller treats the table as drifted.

use std::collections::BTreeSet;
use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, value::MapAccessDeserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::Value;

use super::view::{ChainView, SetView, TableView};
use elem::ElemJson;

mod elem;

/// Why `nft -j` output could not be read; the caller treats the table as drifted.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("nft JSON has no `nftables` array")]
    NoArray,
    #[error("nft JSON: set {set} has an element we cannot read: {element}")]
    Element { set: String, element: String },
    #[error("nft JSON: {what} lacks field {field}")]
    Field {
        what: &'static str,
        field: &'static str,
    },
    /// Not JSON, or an object of a known kind that is not shaped as nft prints it.
    #[error("nft -j output: {0}")]
    Json(String),
}

/// Reads `nft -j list table inet romana` output already parsed as JSON.
pub fn parse_table(json: &Value) -> Result<TableView, ParseError> {
    Listing::deserialize(json)
        .map_err(|e| ParseError::Json(e.to_string()))?
        .into_view()
}

/// Reads `nft -j list table inet romana` output as nft printed it.
pub fn parse_table_text(text: &str) -> Result<TableView, ParseError> {
    serde_json::from_str::<Listing>(text)
        .map_err(|e| ParseError::Json(e.to_string()))?
        .into_view()
}

// --- the shapes nft prints ---

/// `{"nftables": [...]}`; `items` is `None` when there is no such array.
struct Listing {
    items: Option<Vec<Item>>,
}

/// One object of the `nftables` array, by its only key.
enum Item {
    Skip,
    Chain(ChainJson),
    Rule(RuleJson),
    Set { kind: &'static str, body: SetJson },
    Other(String),
}

#[derive(Deserialize)]
struct ChainJson {
    name: Option<Loose<String>>,
    #[serde(rename = "type")]
    kind: Option<Loose<String>>,
    hook: Option<Loose<String>>,
    prio: Option<Loose<i64>>,
    policy: Option<Loose<String>>,
}

#[derive(Deserialize)]
struct RuleJson {
    chain: Option<Loose<String>>,
    comment: Option<Loose<String>>,
}

#[derive(Deserialize)]
struct SetJson {
    name: Option<Loose<String>>,
    #[serde(rename = "type")]
    key: Option<Loose<SetType>>,
    /// A map's value type.
    map: Option<Loose<String>>,
    #[serde(default, deserialize_with = "elem::one_or_many")]
    elem: Vec<ElemJson>,
    #[serde(default, deserialize_with = "present")]
    flags: bool,
    #[serde(default, deserialize_with = "present")]
    timeout: bool,
}

/// `"ipv4_addr"`, or `["ipv4_addr", "ipv4_addr"]` for a concatenation.
#[derive(Deserialize)]
#[serde(untagged)]
enum SetType {
    One(String),
    Concat(Vec<Loose<String>>),
}

/// A field read as `T` when it has `T`'s shape, else as nothing (as a JSON walk would).
#[derive(Deserialize)]
#[serde(untagged)]
enum Loose<T> {
    Is(T),
    Not(IgnoredAny),
}

/// `T` read only from a JSON object: derived structs also take an array, by position,
/// which nft never prints where we expect an object.
struct Obj<T>(T);

// === conversion to the view ===

impl Listing {
    fn into_view(self) -> Result<TableView, ParseError> {
        let items = self.items.ok_or(ParseError::NoArray)?;
        let mut view = TableView::default();
        let mut rules: Vec<(String, Option<String>)> = Vec::new();
        for item in items {
            match item {
                Item::Skip => {}
                Item::Chain(c) => view.chains.push(ChainView {
                    name: required(c.name, "chain", "name")?,
                    kind: loose(c.kind),
                    hook: loose(c.hook),
                    prio: loose(c.prio),
                    policy: loose(c.policy),
                    rules: Vec::new(),
                }),
                Item::Rule(r) => {
                    rules.push((required(r.chain, "rule", "chain")?, loose(r.comment)))
                }
                Item::Set { kind, body } => {
                    let (name, set, foreign) = body.into_view(kind)?;
                    if foreign {
                        view.other.push(format!("{kind} {name} with flags"));
                    }
                    view.sets.insert(name, set);
                }
                Item::Other(kind) => view.other.push(kind),
            }
        }
        for (chain, comment) in rules {
            match view.chains.iter_mut().find(|c| c.name == chain) {
                Some(c) => c.rules.push(comment),
                None => view.other.push(format!("rule of unknown chain {chain}")),
            }
        }
        Ok(view)
    }
}

impl SetJson {
    /// The set's name, view, and whether it has flags or timeouts (none are ours).
    fn into_view(self, kind: &str) -> Result<(String, SetView, bool), ParseError> {
        let name = required(self.name, "set", "name")?;
        let mut key = match loose(self.key) {
            Some(SetType::One(t)) => t,
            Some(SetType::Concat(ts)) => ts
                .into_iter()
                .map(|t| t.into_option().unwrap_or_else(|| "?".into()))
                .collect::<Vec<_>>()
                .join(" . "),
            None => {
                return Err(ParseError::Field {
                    what: "set",
                    field: "type",
                })
            }
        };
        if kind == "map" {
            let value = loose(self.map).unwrap_or_else(|| "?".into());
            key = format!("{key} : {value}");
        }
        let mut elements = BTreeSet::new();
        for e in &self.elem {
            elements.insert(e.element().ok_or_else(|| ParseError::Element {
                set: name.clone(),
                element: e.to_string(),
            })?);
        }
        Ok((name, SetView { key, elements }, self.flags || self.timeout))
    }
}

impl<T> Loose<T> {
    fn into_option(self) -> Option<T> {
        match self {
            Loose::Is(v) => Some(v),
            Loose::Not(_) => None,
        }
    }
}

fn loose<T>(field: Option<Loose<T>>) -> Option<T> {
    field.and_then(Loose::into_option)
}

fn required(
    field: Option<Loose<String>>,
    what: &'static str,
    name: &'static str,
) -> Result<String, ParseError> {
    loose(field).ok_or(ParseError::Field { what, field: name })
}

// === serde plumbing ===

/// Scalars where an object or array was expected give `$value`.
macro_rules! scalars_give {
    ($value:expr) => {
        fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
            Ok($value)
        }
        fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
            Ok($value)
        }
        fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
            Ok($value)
        }
        fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
            Ok($value)
        }
        fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
            Ok($value)
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok($value)
        }
    };
}

fn drain_seq<'de, A: SeqAccess<'de>>(mut seq: A) -> Result<(), A::Error> {
    while seq.next_element::<IgnoredAny>()?.is_some() {}
    Ok(())
}

fn drain_map<'de, A: MapAccess<'de>>(mut map: A) -> Result<(), A::Error> {
    while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
    Ok(())
}

impl<'de> Deserialize<'de> for Listing {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Listing;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("nft's JSON listing")
            }
            scalars_give!(Listing { items: None });
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Listing, A::Error> {
                drain_seq(seq)?;
                Ok(Listing { items: None })
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Listing, A::Error> {
                let mut items = None;
                while let Some(key) = map.next_key::<String>()? {
                    if key == "nftables" {
                        items = map.next_value::<Items>()?.0;
                    } else {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
                Ok(Listing { items })
            }
        }
        d.deserialize_any(V)
    }
}

/// The `nftables` value: its items when it is an array.
struct Items(Option<Vec<Item>>);

impl<'de> Deserialize<'de> for Items {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Items;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an array of nft objects")
            }
            scalars_give!(Items(None));
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Items, A::Error> {
                drain_map(map)?;
                Ok(Items(None))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Items, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element::<Item>()? {
                    items.push(item);
                }
                Ok(Items(Some(items)))
            }
        }
        d.deserialize_any(V)
    }
}

impl<'de> Deserialize<'de> for Item {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Item;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an nft object")
            }
            scalars_give!(Item::Skip);
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Item, A::Error> {
                drain_seq(seq)?;
                Ok(Item::Skip)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Item, A::Error> {
                let Some(kind) = map.next_key::<String>()? else {
                    return Ok(Item::Skip);
                };
                let item = match kind.as_str() {
                    "metainfo" | "table" => {
                        map.next_value::<IgnoredAny>()?;
                        Item::Skip
                    }
                    "chain" => Item::Chain(map.next_value::<Obj<ChainJson>>()?.0),
                    "rule" => Item::Rule(map.next_value::<Obj<RuleJson>>()?.0),
                    "set" | "map" => Item::Set {
                        kind: if kind == "map" { "map" } else { "set" },
                        body: map.next_value::<Obj<SetJson>>()?.0,
                    },
                    _ => {
                        map.next_value::<IgnoredAny>()?;
                        Item::Other(kind)
                    }
                };
                drain_map(map)?;
                Ok(item)
            }
        }
        d.deserialize_any(V)
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Obj<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = T;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
                T::deserialize(MapAccessDeserializer::new(map))
            }
        }
        d.deserialize_map(V(PhantomData)).map(Obj)
    }
}

/// A field that is there, whatever its value (a JSON walk's `get(..).is_some()`).
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    IgnoredAny::deserialize(d)?;
    Ok(true)
}

#[cfg(test)]
mod tests;
