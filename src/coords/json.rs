//! A JSON object read with its keys in order and duplicates kept, so that
//! a key written twice is reported instead of the last one silently
//! winning.

use std::collections::HashSet;

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};

/// The entries of a JSON object, in file order.
pub(super) struct Entries(pub(super) Vec<(String, serde_json::Value)>);

impl Entries {
    /// The first key that appears more than once.
    pub(super) fn duplicate(&self) -> Option<&str> {
        let mut seen = HashSet::new();
        self.0
            .iter()
            .map(|(k, _)| k.as_str())
            .find(|k| !seen.insert(*k))
    }
}

impl<'de> Deserialize<'de> for Entries {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Object;
        impl<'de> Visitor<'de> for Object {
            type Value = Entries;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Entries, A::Error> {
                let mut out = Vec::new();
                while let Some(entry) = map.next_entry::<String, serde_json::Value>()? {
                    out.push(entry);
                }
                Ok(Entries(out))
            }
        }
        d.deserialize_map(Object)
    }
}
