//! [`TypedItem`]: gomemcache's `Item.Object`, a value kept as `T` until it is stored.
//!
//! The typed views of every client (`client.typed(codec)`) are the raw calls plus the
//! conversions here, so the rules (flags checked first, CAS token carried, errors unchanged)
//! live once.

use std::collections::HashMap;

use super::Codec;
use crate::{Error, Item};

/// An item whose value is a `T`, turned into bytes by a [`Codec`] when stored.
///
/// Reads fill [`cas`](Self::cas), so a value read, changed and given back to
/// `compare_and_swap` is stored only if nobody changed it in between.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TypedItem<T> {
    /// The key: 1 to 250 bytes, no spaces or control characters.
    pub key: String,
    /// The value.
    pub value: T,
    /// Expiration in seconds, as [`Item::expiration`].
    pub expiration: i32,
    /// The CAS token, set by reads and required by `compare_and_swap`.
    pub cas: Option<u64>,
}

impl<T> TypedItem<T> {
    /// An item with no expiration and no CAS token.
    pub fn new(key: impl Into<String>, value: T) -> Self {
        TypedItem { key: key.into(), value, expiration: 0, cas: None }
    }

    /// Sets the expiration in seconds.
    pub fn with_expiration(mut self, expiration: i32) -> Self {
        self.expiration = expiration;
        self
    }

    /// Sets the CAS token.
    pub fn with_cas(mut self, cas: u64) -> Self {
        self.cas = Some(cas);
        self
    }

    /// The raw item to store: the encoded value and its flags, with this item's key,
    /// expiration and CAS token.
    pub fn encode<C: Codec<T> + ?Sized>(&self, codec: &C) -> Result<Item, Error> {
        let e = codec.encode(&self.value)?;
        Ok(Item {
            key: self.key.clone(),
            value: e.value,
            flags: e.flags,
            expiration: self.expiration,
            cas: self.cas,
        })
    }

    /// The typed item read as `item`, if `codec` accepts its flags and bytes.
    pub fn decode<C: Codec<T> + ?Sized>(item: Item, codec: &C) -> Result<Self, Error> {
        let value = codec.decode(item.value, item.flags)?;
        Ok(TypedItem { key: item.key, value, expiration: item.expiration, cas: item.cas })
    }
}

/// Decodes every item of a multi-get. One value the codec refuses fails the whole call with
/// [`Error::Codec`]: a typed caller never gets a map silently missing a key it holds. Keys
/// that different clients write are read with the raw `get_multi` and
/// [`Codec::decode_item`] per item.
pub fn decode_map<T, C: Codec<T> + ?Sized>(
    items: HashMap<String, Item>,
    codec: &C,
) -> Result<HashMap<String, TypedItem<T>>, Error> {
    items.into_iter().map(|(k, item)| Ok((k, TypedItem::decode(item, codec)?))).collect()
}

/// Hands the typed view's calls to the callback macro `$cb`, in the grammar of
/// [`client_calls!`](crate::client_calls), so every client's typed view (and the test
/// adapters) is expanded from this one list. Expand it inside
/// `impl<.., C: Codec<T>, T> View<.., C, T>` where the view has fields `client` (the raw
/// client) and `codec`: each call is the raw call plus [`TypedItem::encode`] before it or
/// [`TypedItem::decode`] after it, so the errors are the raw call's (`CacheMiss`,
/// `NotStored`, `CasConflict`, ...) plus [`Error::Codec`](crate::Error::Codec), which leaves
/// the connection in use.
#[doc(hidden)]
#[macro_export]
macro_rules! typed_calls {
    ($($cb:ident)::+ ; $this:ident $(. $aw:ident)?) => {
        $($cb)::+! { @this $this $(.$aw)?;
            /// Reads `key` and decodes it; [`Error::CacheMiss`](crate::Error::CacheMiss) if
            /// absent, [`Error::Codec`](crate::Error::Codec) if another client or codec stored
            /// it. The item carries its CAS token.
            fn get(key: &str) -> Result<$crate::codec::TypedItem<T>, $crate::Error> {
                let item = ($this.client.get(key)$(.$aw)?)?;
                $crate::codec::TypedItem::decode(item, &$this.codec)
            }

            /// Reads many keys at once and decodes every value; missing keys are absent from
            /// the map. One value this codec refuses fails the call with
            /// [`Error::Codec`](crate::Error::Codec) (see [`decode_map`](crate::codec::decode_map)).
            fn get_multi[S: AsRef<str> + Sync](keys: &[S])
                -> Result<std::collections::HashMap<String, $crate::codec::TypedItem<T>>, $crate::Error>
            {
                let items = ($this.client.get_multi(keys)$(.$aw)?)?;
                $crate::codec::decode_map(items, &$this.codec)
            }

            /// Encodes and stores `item` unconditionally. An encoding failure is
            /// [`Error::Codec`](crate::Error::Codec) before anything is sent.
            fn set(item: &$crate::codec::TypedItem<T>) -> Result<(), $crate::Error> {
                let raw = item.encode(&$this.codec)?;
                $this.client.set(&raw)$(.$aw)?
            }

            /// Encodes and stores `item` only if its key is absent;
            /// [`Error::NotStored`](crate::Error::NotStored) otherwise.
            fn add(item: &$crate::codec::TypedItem<T>) -> Result<(), $crate::Error> {
                let raw = item.encode(&$this.codec)?;
                $this.client.add(&raw)$(.$aw)?
            }

            /// Encodes and stores `item` only if its key is present;
            /// [`Error::NotStored`](crate::Error::NotStored) otherwise.
            fn replace(item: &$crate::codec::TypedItem<T>) -> Result<(), $crate::Error> {
                let raw = item.encode(&$this.codec)?;
                $this.client.replace(&raw)$(.$aw)?
            }

            /// Encodes and stores `item` only if it is unchanged since it was read (its `cas`
            /// token, filled by [`get`](Self::get)):
            /// [`Error::CasConflict`](crate::Error::CasConflict) if it changed,
            /// [`Error::NotStored`](crate::Error::NotStored) if it is gone.
            fn compare_and_swap(item: &$crate::codec::TypedItem<T>) -> Result<(), $crate::Error> {
                let raw = item.encode(&$this.codec)?;
                $this.client.compare_and_swap(&raw)$(.$aw)?
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::codec::{CodecError, Integer, Text, flags};

    #[test]
    fn encode_carries_key_expiration_and_cas() {
        let t = TypedItem::new("k", 5u32).with_expiration(60).with_cas(9);
        let item = t.encode(&Integer::default()).expect("encode");
        assert_eq!(item, Item::new("k", "5").with_flags(flags::INTEGER).with_expiration(60).with_cas(9));
        assert_eq!(TypedItem::decode(item, &Integer::default()).ok(), Some(t));
    }

    #[test]
    fn one_refused_value_fails_the_map() {
        let ok = Item::new("a", "x").with_flags(flags::TEXT);
        let raw = Item { key: "b".into(), value: Bytes::from_static(b"y"), ..Item::default() };
        let good = decode_map(HashMap::from([("a".to_string(), ok.clone())]), &Text::default());
        assert_eq!(good.expect("decodes")["a"].value, "x");
        let bad = decode_map(HashMap::from([("a".into(), ok), ("b".into(), raw)]), &Text::default());
        assert!(matches!(bad, Err(Error::Codec(CodecError::FlagsMismatch { flags: 0, .. }))), "{bad:?}");
    }
}
