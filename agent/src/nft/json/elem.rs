//! Set elements as nft prints the ones we write, read by hand-written visitors: a set holds
//! every endpoint, and serde's untagged enums would buffer each element (and the whole
//! array) before trying its shapes. Any shape we never write is [`ElemJson::Other`], which
//! fails the read.

use std::fmt;

use serde::de::{self, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};

use super::{Loose, Obj};
use crate::nft::ir::{proto_from_name, SetElement};

/// One element of `elem`.
pub(super) enum ElemJson {
    /// `"10.0.0.1"`.
    Key(String),
    /// A map element: `["10.0.0.1", {"goto": {"target": "np_in_0"}}]`, as key and target.
    Mapped(String, String),
    /// `{"concat": [a, b]}` or `{"concat": [addr, proto, port]}`.
    Concat(Vec<Scalar>),
    /// Anything else, described for the error.
    Other(String),
}

/// A part of a concatenated element (an address, interface name, protocol or port), or the
/// key of a map element.
pub(super) enum Scalar {
    Str(String),
    Num(u64),
    /// Anything else, described for the error.
    Other(String),
}

#[derive(Deserialize)]
struct MapValue {
    goto: Obj<Goto>,
}

#[derive(Deserialize)]
struct Goto {
    target: String,
}

// === impl ElemJson ===

impl ElemJson {
    pub(super) fn element(&self) -> Option<SetElement> {
        match self {
            ElemJson::Key(k) => k.parse().ok().map(SetElement::Addr),
            ElemJson::Mapped(k, target) => Some(SetElement::Goto(k.parse().ok()?, target.clone())),
            ElemJson::Concat(parts) => match parts.as_slice() {
                [Scalar::Str(a), Scalar::Str(b)] => match a.parse() {
                    Ok(a) => Some(SetElement::Pair(a, b.parse().ok()?)),
                    Err(_) => Some(SetElement::IfAddr(a.clone(), b.parse().ok()?)),
                },
                [Scalar::Str(a), proto, Scalar::Num(port)] => Some(SetElement::AddrProtoPort(
                    a.parse().ok()?,
                    proto.proto()?,
                    u16::try_from(*port).ok()?,
                )),
                _ => None,
            },
            ElemJson::Other(_) => None,
        }
    }
}

/// As JSON, for the error that names the element.
impl fmt::Display for ElemJson {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ElemJson::Key(k) => write!(f, "{}", quoted(k)),
            ElemJson::Mapped(k, t) => {
                write!(
                    f,
                    "[{}, {{\"goto\": {{\"target\": {}}}}}]",
                    quoted(k),
                    quoted(t)
                )
            }
            ElemJson::Concat(parts) => {
                let parts: Vec<String> = parts.iter().map(Scalar::to_string).collect();
                write!(f, "{{\"concat\": [{}]}}", parts.join(", "))
            }
            ElemJson::Other(d) => f.write_str(d),
        }
    }
}

impl<'de> Deserialize<'de> for ElemJson {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ElemVisitor)
    }
}

struct ElemVisitor;

impl<'de> Visitor<'de> for ElemVisitor {
    type Value = ElemJson;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a set element")
    }
    fn visit_str<E: de::Error>(self, s: &str) -> Result<ElemJson, E> {
        Ok(ElemJson::Key(s.to_string()))
    }
    fn visit_bool<E: de::Error>(self, b: bool) -> Result<ElemJson, E> {
        Ok(ElemJson::Other(b.to_string()))
    }
    fn visit_i64<E: de::Error>(self, n: i64) -> Result<ElemJson, E> {
        Ok(ElemJson::Other(n.to_string()))
    }
    fn visit_u64<E: de::Error>(self, n: u64) -> Result<ElemJson, E> {
        Ok(ElemJson::Other(n.to_string()))
    }
    fn visit_f64<E: de::Error>(self, n: f64) -> Result<ElemJson, E> {
        Ok(ElemJson::Other(n.to_string()))
    }
    fn visit_unit<E: de::Error>(self) -> Result<ElemJson, E> {
        Ok(ElemJson::Other("null".into()))
    }
    /// A map element is exactly `[key, {"goto": {"target": chain}}]`.
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<ElemJson, A::Error> {
        let key = seq.next_element::<Scalar>()?;
        let value = match key {
            Some(_) => seq.next_element::<Loose<Obj<MapValue>>>()?,
            None => None,
        };
        let mut extra = 0;
        while seq.next_element::<IgnoredAny>()?.is_some() {
            extra += 1;
        }
        Ok(match (key, value, extra) {
            (Some(Scalar::Str(k)), Some(Loose::Is(v)), 0) => ElemJson::Mapped(k, v.0.goto.0.target),
            (key, value, extra) => {
                let n = usize::from(key.is_some()) + usize::from(value.is_some()) + extra;
                ElemJson::Other(format!(
                    "an array of {n} items that is not a key and a goto"
                ))
            }
        })
    }
    /// A concatenation is an object whose `concat` is an array (other keys are ignored).
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ElemJson, A::Error> {
        let mut concat = None;
        while let Some(key) = map.next_key::<String>()? {
            if key == "concat" {
                concat = Some(map.next_value::<Loose<Vec<Scalar>>>()?);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(match concat {
            Some(Loose::Is(parts)) => ElemJson::Concat(parts),
            _ => ElemJson::Other("an object without a `concat` array".into()),
        })
    }
}

// === impl Scalar ===

impl Scalar {
    /// A protocol as nft prints it: its name, or its number.
    fn proto(&self) -> Option<u8> {
        match self {
            Scalar::Num(n) => u8::try_from(*n).ok(),
            Scalar::Str(s) => proto_from_name(s),
            Scalar::Other(_) => None,
        }
    }
}

impl fmt::Display for Scalar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scalar::Str(s) => f.write_str(&quoted(s)),
            Scalar::Num(n) => write!(f, "{n}"),
            Scalar::Other(d) => f.write_str(d),
        }
    }
}

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Scalar;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string or a number")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Scalar, E> {
                Ok(Scalar::Str(s.to_string()))
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<Scalar, E> {
                Ok(Scalar::Num(n))
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<Scalar, E> {
                Ok(Scalar::Other(n.to_string()))
            }
            fn visit_f64<E: de::Error>(self, n: f64) -> Result<Scalar, E> {
                Ok(Scalar::Other(n.to_string()))
            }
            fn visit_bool<E: de::Error>(self, b: bool) -> Result<Scalar, E> {
                Ok(Scalar::Other(b.to_string()))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Scalar, E> {
                Ok(Scalar::Other("null".into()))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Scalar, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Scalar::Other("an array".into()))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Scalar, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Scalar::Other("an object".into()))
            }
        }
        d.deserialize_any(V)
    }
}

/// `elem`: an array of elements, or a single one.
pub(super) fn one_or_many<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<ElemJson>, D::Error> {
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = Vec<ElemJson>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("set elements")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut elements = Vec::with_capacity(seq.size_hint().unwrap_or(0));
            while let Some(e) = seq.next_element::<ElemJson>()? {
                elements.push(e);
            }
            Ok(elements)
        }
        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
            ElemVisitor.visit_map(map).map(|e| vec![e])
        }
        fn visit_str<E: de::Error>(self, s: &str) -> Result<Self::Value, E> {
            ElemVisitor.visit_str(s).map(|e| vec![e])
        }
        fn visit_bool<E: de::Error>(self, b: bool) -> Result<Self::Value, E> {
            ElemVisitor.visit_bool(b).map(|e| vec![e])
        }
        fn visit_i64<E: de::Error>(self, n: i64) -> Result<Self::Value, E> {
            ElemVisitor.visit_i64(n).map(|e| vec![e])
        }
        fn visit_u64<E: de::Error>(self, n: u64) -> Result<Self::Value, E> {
            ElemVisitor.visit_u64(n).map(|e| vec![e])
        }
        fn visit_f64<E: de::Error>(self, n: f64) -> Result<Self::Value, E> {
            ElemVisitor.visit_f64(n).map(|e| vec![e])
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            ElemVisitor.visit_unit().map(|e| vec![e])
        }
    }
    d.deserialize_any(V)
}

fn quoted(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_default()
}
