//! The positioned tree: every node of a YAML document with where its value
//! stands, and every mapping key with where the key stands. Scalars keep
//! their kind, not their text: the tree answers "where" and "what shape",
//! the typed read answers "what".

use std::fmt;
use std::marker::PhantomData;

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_saphyr::{Location, Spanned};

/// How a tree reads its mapping keys into text.
pub trait KeyText: DeserializeOwned {
    fn into_text(self) -> String;
}

/// Keys read as strings, as serde reads a struct's field names: `yes:` is
/// the key "yes", `1.50:` the key "1.50"; a key that is no scalar fails the
/// read.
impl KeyText for String {
    fn into_text(self) -> String {
        self
    }
}

/// Keys of any scalar type read as their value's text, as Go's YAML decoder
/// keys a rule file's mappings: `1: x` has the key "1", `true: x` the key
/// "true" (as has `yes: x`, a YAML 1.1 boolean), a null key the key "".
/// Numbers are written as Rust prints them (`1.50:` is "1.5").
#[derive(Debug)]
pub struct AnyScalarKey(pub String);

impl KeyText for AnyScalarKey {
    fn into_text(self) -> String {
        self.0
    }
}

impl<'de> Deserialize<'de> for AnyScalarKey {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl serde::de::Visitor<'_> for KeyVisitor {
            type Value = AnyScalarKey;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a scalar mapping key")
            }
            fn visit_str<E>(self, v: &str) -> Result<AnyScalarKey, E> {
                Ok(AnyScalarKey(v.to_string()))
            }
            fn visit_bool<E>(self, v: bool) -> Result<AnyScalarKey, E> {
                Ok(AnyScalarKey(v.to_string()))
            }
            fn visit_i64<E>(self, v: i64) -> Result<AnyScalarKey, E> {
                Ok(AnyScalarKey(v.to_string()))
            }
            fn visit_u64<E>(self, v: u64) -> Result<AnyScalarKey, E> {
                Ok(AnyScalarKey(v.to_string()))
            }
            fn visit_f64<E>(self, v: f64) -> Result<AnyScalarKey, E> {
                Ok(AnyScalarKey(v.to_string()))
            }
            fn visit_unit<E>(self) -> Result<AnyScalarKey, E> {
                Ok(AnyScalarKey(String::new()))
            }
        }
        d.deserialize_any(KeyVisitor)
    }
}

/// A YAML node and the position of its value (for a block mapping or
/// sequence, that of its first entry). `K` is how its mappings' keys were
/// read ([`KeyText`]).
#[derive(Debug)]
pub struct Node<K = String> {
    pub location: Location,
    pub kind: NodeKind<K>,
    keys: PhantomData<fn() -> K>,
}

/// What a [`Node`] is.
#[derive(Debug)]
pub enum NodeKind<K = String> {
    /// Entries in file order, each key with its own position.
    Map(Vec<(Spanned<String>, Node<K>)>),
    Seq(Vec<Node<K>>),
    /// An integer scalar.
    Int,
    /// Any other scalar but null: a string, boolean or float.
    Scalar,
    /// Null, written or empty (`key:`).
    Null,
}

impl<K> Node<K> {
    /// The entries of a mapping; none for any other node.
    pub fn entries(&self) -> &[(Spanned<String>, Node<K>)] {
        match &self.kind {
            NodeKind::Map(entries) => entries,
            _ => &[],
        }
    }

    /// The keys of this mapping that are not in `known`, in file order.
    pub fn unknown_keys<'a>(
        &'a self,
        known: &'a [&str],
    ) -> impl Iterator<Item = &'a Spanned<String>> + 'a {
        self.entries()
            .iter()
            .map(|(key, _)| key)
            .filter(|key| !known.contains(&key.value.as_str()))
    }
}

impl<'de, K: KeyText> Deserialize<'de> for Node<K> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let spanned = Spanned::<NodeKind<K>>::deserialize(d)?;
        Ok(Node {
            location: spanned.referenced,
            kind: spanned.value,
            keys: PhantomData,
        })
    }
}

impl<'de, K: KeyText> Deserialize<'de> for NodeKind<K> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct AnyVisitor<K>(PhantomData<fn() -> K>);
        impl<'de, K: KeyText> serde::de::Visitor<'de> for AnyVisitor<K> {
            type Value = NodeKind<K>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any YAML value")
            }
            fn visit_bool<E>(self, _: bool) -> Result<NodeKind<K>, E> {
                Ok(NodeKind::Scalar)
            }
            fn visit_i64<E>(self, _: i64) -> Result<NodeKind<K>, E> {
                Ok(NodeKind::Int)
            }
            fn visit_u64<E>(self, _: u64) -> Result<NodeKind<K>, E> {
                Ok(NodeKind::Int)
            }
            fn visit_i128<E>(self, _: i128) -> Result<NodeKind<K>, E> {
                Ok(NodeKind::Int)
            }
            fn visit_u128<E>(self, _: u128) -> Result<NodeKind<K>, E> {
                Ok(NodeKind::Int)
            }
            fn visit_f64<E>(self, _: f64) -> Result<NodeKind<K>, E> {
                Ok(NodeKind::Scalar)
            }
            fn visit_str<E>(self, _: &str) -> Result<NodeKind<K>, E> {
                Ok(NodeKind::Scalar)
            }
            fn visit_bytes<E>(self, _: &[u8]) -> Result<NodeKind<K>, E> {
                Ok(NodeKind::Scalar)
            }
            fn visit_unit<E>(self) -> Result<NodeKind<K>, E> {
                Ok(NodeKind::Null)
            }
            fn visit_none<E>(self) -> Result<NodeKind<K>, E> {
                Ok(NodeKind::Null)
            }
            fn visit_some<D: serde::Deserializer<'de>>(
                self,
                d: D,
            ) -> Result<NodeKind<K>, D::Error> {
                NodeKind::deserialize(d)
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<NodeKind<K>, A::Error> {
                let mut items = Vec::new();
                while let Some(n) = seq.next_element::<Node<K>>()? {
                    items.push(n);
                }
                Ok(NodeKind::Seq(items))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<NodeKind<K>, A::Error> {
                let mut entries = Vec::new();
                while let Some(key) = map.next_key::<Spanned<K>>()? {
                    let value = map.next_value::<Node<K>>()?;
                    let key = Spanned {
                        value: key.value.into_text(),
                        referenced: key.referenced,
                        defined: key.defined,
                    };
                    entries.push((key, value));
                }
                Ok(NodeKind::Map(entries))
            }
        }
        d.deserialize_any(AnyVisitor(PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree<K: KeyText>(text: &str) -> Node<K> {
        match serde_saphyr::from_str(text) {
            Ok(tree) => tree,
            Err(e) => panic!("{text:?}: {e}"),
        }
    }

    fn at(loc: Location) -> (u64, u64) {
        (loc.line(), loc.column())
    }

    #[test]
    fn nodes_and_keys_carry_their_positions() {
        let t: Node = tree("a: 1\nb:\n  - x\n  - {c: 2.5}\nd:\n");
        let entries = t.entries();
        assert_eq!(entries.len(), 3);
        let (a, one) = &entries[0];
        assert_eq!((a.value.as_str(), at(a.referenced)), ("a", (1, 1)));
        assert!(matches!(one.kind, NodeKind::Int));
        assert_eq!(at(one.location), (1, 4));
        let NodeKind::Seq(items) = &entries[1].1.kind else {
            panic!("{t:?}");
        };
        assert_eq!(at(items[0].location), (3, 5));
        assert!(matches!(items[0].kind, NodeKind::Scalar));
        let (c, float) = &items[1].entries()[0];
        assert_eq!((c.value.as_str(), at(c.referenced)), ("c", (4, 6)));
        assert!(matches!(float.kind, NodeKind::Scalar));
        assert!(matches!(entries[2].1.kind, NodeKind::Null));
    }

    #[test]
    fn string_keys_are_the_text_and_any_scalar_keys_the_value() {
        let text = "yes: 1\n1.50: 2\n";
        let as_text: Vec<String> = tree::<String>(text)
            .entries()
            .iter()
            .map(|(k, _)| k.value.clone())
            .collect();
        assert_eq!(as_text, ["yes", "1.50"]);
        let as_value: Vec<String> = tree::<AnyScalarKey>(text)
            .entries()
            .iter()
            .map(|(k, _)| k.value.clone())
            .collect();
        assert_eq!(as_value, ["true", "1.5"]);
    }

    #[test]
    fn unknown_keys_are_listed_in_file_order() {
        let t: Node = tree("b: 1\nzz: 2\na: 3\nyy: 4\n");
        let unknown: Vec<_> = t
            .unknown_keys(&["a", "b"])
            .map(|k| (k.value.as_str(), at(k.referenced)))
            .collect();
        assert_eq!(unknown, [("zz", (2, 1)), ("yy", (4, 1))]);
    }

    #[test]
    fn a_scalar_document_has_no_entries() {
        let t: Node = tree("just text\n");
        assert!(matches!(t.kind, NodeKind::Scalar));
        assert!(t.entries().is_empty());
    }
}
