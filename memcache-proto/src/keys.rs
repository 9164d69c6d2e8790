//! The keys of one retrieval command, held as they go on the wire.

use std::fmt;
use std::ops::Range;

use bytes::BufMut;

use crate::key::check;
use crate::{Error, Key};

/// The keys of one `get`: a single key is held inline, so the common one-key read makes no
/// allocation for its command; several are packed into one buffer, each preceded by the space
/// that separates it on the wire.
///
/// Packed, a `get_multi` of many keys costs an append per key (no fixed-size [`Key`] of 251
/// bytes made, copied and moved for each), its command line is one copy of that buffer, and a
/// reply's keys are matched and turned into `String`s from it, validated as UTF-8 once for all.
#[derive(Clone)]
pub struct Keys(Repr);

// Inline on purpose: boxing the single key would bring back the allocation this type exists
// to avoid.
#[allow(clippy::large_enum_variant)]
#[derive(Clone)]
enum Repr {
    One(Key),
    Packed(Packed),
}

/// Several keys: ` k1 k2 k3` in `wire`, and where each ends.
#[derive(Clone, Debug, Default)]
struct Packed {
    wire: Vec<u8>,
    ends: Vec<usize>,
}

impl Packed {
    /// Appends a key that passed [`check`].
    fn push_valid(&mut self, key: &[u8]) {
        self.wire.push(b' ');
        self.wire.extend_from_slice(key);
        self.ends.push(self.wire.len());
    }

    /// Where key `i` lies in `wire`: after the end of the one before it and its space.
    fn span(&self, i: usize) -> Option<Range<usize>> {
        let end = *self.ends.get(i)?;
        let start = if i == 0 { 1 } else { self.ends[i - 1] + 1 };
        Some(start..end)
    }
}

/// No key at all.
pub(crate) static NO_KEYS: Keys = Keys(Repr::Packed(Packed { wire: Vec::new(), ends: Vec::new() }));

impl Keys {
    /// Just `key`.
    pub fn one(key: Key) -> Keys {
        Keys(Repr::One(key))
    }

    /// How many keys (duplicates counted).
    pub fn len(&self) -> usize {
        match &self.0 {
            Repr::One(_) => 1,
            Repr::Packed(p) => p.ends.len(),
        }
    }

    /// Whether there is no key (only a `Keys` collected from nothing).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The bytes of key `i`.
    pub fn get(&self, i: usize) -> Option<&[u8]> {
        self.run().get(self.span(i)?)
    }

    /// The keys' bytes, in order.
    pub fn iter(&self) -> Iter<'_> {
        Iter { keys: self, next: 0 }
    }

    /// The key, when there is exactly one held inline (what a single-key read makes).
    pub fn single(&self) -> Option<&Key> {
        match &self.0 {
            Repr::One(key) => Some(key),
            Repr::Packed(_) => None,
        }
    }

    /// Every key in one run of bytes; [`span`](Self::span) says where each one is.
    pub(crate) fn run(&self) -> &[u8] {
        match &self.0 {
            Repr::One(key) => key.as_bytes(),
            Repr::Packed(p) => &p.wire,
        }
    }

    /// Where key `i` is in [`run`](Self::run).
    pub(crate) fn span(&self, i: usize) -> Option<Range<usize>> {
        match &self.0 {
            Repr::One(key) => (i == 0).then_some(0..key.as_bytes().len()),
            Repr::Packed(p) => p.span(i),
        }
    }

    /// Appends every key with a space before each, as a retrieval command line needs them.
    pub(crate) fn put_wire(&self, buf: &mut impl BufMut) {
        match &self.0 {
            Repr::One(key) => {
                buf.put_u8(b' ');
                buf.put_slice(key.as_bytes());
            }
            Repr::Packed(p) => buf.put_slice(&p.wire),
        }
    }

    /// The keys split into runs of at most `n` (at least 1), in order.
    pub(crate) fn chunks(&self, n: usize) -> Vec<Keys> {
        let mut chunks = Vec::with_capacity(self.len().div_ceil(n.max(1)));
        let mut chunk = KeysBuilder::default();
        for key in self {
            if chunk.len() == n.max(1) {
                chunks.push(std::mem::take(&mut chunk).build());
            }
            chunk.0.push_valid(key);
        }
        if !chunk.is_empty() {
            chunks.push(chunk.build());
        }
        chunks
    }
}

/// Collects keys into a [`Keys`], validating each as it is appended.
#[derive(Debug, Default)]
pub struct KeysBuilder(Packed);

impl KeysBuilder {
    /// Room for `keys` keys of `bytes` bytes in all, so a known batch never regrows.
    pub fn with_capacity(keys: usize, bytes: usize) -> KeysBuilder {
        KeysBuilder(Packed { wire: Vec::with_capacity(bytes + keys), ends: Vec::with_capacity(keys) })
    }

    /// Validates `key` and appends it; on an error nothing is appended.
    pub fn push(&mut self, key: &[u8]) -> Result<(), Error> {
        check(key)?;
        self.0.push_valid(key);
        Ok(())
    }

    /// Appends a key the caller validated with [`check`].
    pub(crate) fn push_valid(&mut self, key: &[u8]) {
        self.0.push_valid(key);
    }

    /// Keys appended so far.
    pub fn len(&self) -> usize {
        self.0.ends.len()
    }

    /// Whether no key was appended.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The keys. A single key is held inline, like [`Keys::one`]'s, so it is the same
    /// command whichever way it was made (the async driver merges single-key reads).
    pub fn build(self) -> Keys {
        if let ([_], Some(span)) = (&self.0.ends[..], self.0.span(0))
            && let Some(key) = self.0.wire.get(span).and_then(|k| Key::copy_from(k).ok())
        {
            return Keys::one(key);
        }
        Keys(Repr::Packed(self.0))
    }
}

/// The keys' bytes, in order (see [`Keys::iter`]).
#[derive(Clone, Debug)]
pub struct Iter<'a> {
    keys: &'a Keys,
    next: usize,
}

impl<'a> Iterator for Iter<'a> {
    type Item = &'a [u8];
    fn next(&mut self) -> Option<&'a [u8]> {
        let key = self.keys.get(self.next)?;
        self.next += 1;
        Some(key)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.keys.len().saturating_sub(self.next);
        (left, Some(left))
    }
}

impl ExactSizeIterator for Iter<'_> {}

impl<'a> IntoIterator for &'a Keys {
    type Item = &'a [u8];
    type IntoIter = Iter<'a>;
    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

impl From<Key> for Keys {
    fn from(key: Key) -> Keys {
        Keys::one(key)
    }
}

impl From<Vec<Key>> for Keys {
    fn from(keys: Vec<Key>) -> Keys {
        keys.into_iter().collect()
    }
}

impl FromIterator<Key> for Keys {
    fn from_iter<I: IntoIterator<Item = Key>>(iter: I) -> Keys {
        let mut keys = KeysBuilder::default();
        for key in iter {
            keys.push_valid(key.as_bytes());
        }
        keys.build()
    }
}

/// Equal when they hold the same keys in the same order, however they are held.
impl PartialEq for Keys {
    fn eq(&self, other: &Keys) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl Eq for Keys {}

impl fmt::Debug for Keys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter().map(String::from_utf8_lossy)).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(k: &str) -> Key {
        Key::copy_from(k.as_bytes()).expect("valid")
    }

    fn wire(keys: &Keys) -> Vec<u8> {
        let mut v = Vec::new();
        keys.put_wire(&mut v);
        v
    }

    #[test]
    fn packed_keys_read_back_in_order() {
        let keys = Keys::from(vec![key("a"), key("bc"), key("a")]);
        assert_eq!(keys.len(), 3);
        assert_eq!(keys.iter().collect::<Vec<_>>(), [&b"a"[..], b"bc", b"a"]);
        assert_eq!(keys.get(1), Some(&b"bc"[..]));
        assert_eq!(keys.get(3), None);
        assert_eq!(wire(&keys), b" a bc a");
        assert!(keys.single().is_none());
    }

    #[test]
    fn one_key_is_held_inline_however_it_is_made() {
        let built: Keys = vec![key("k")].into();
        assert_eq!(built.single(), Some(&key("k")));
        assert_eq!(built, Keys::one(key("k")));
        assert_eq!(wire(&built), b" k");
        assert_eq!(built.get(0), Some(&b"k"[..]));
        assert_eq!(built.get(1), None);
    }

    #[test]
    fn the_builder_refuses_a_bad_key_and_keeps_the_good_ones() {
        let mut b = KeysBuilder::with_capacity(2, 4);
        assert!(b.push(b"ok").is_ok());
        assert!(b.push(b"not ok").is_err());
        assert!(b.push(b"").is_err());
        assert!(b.push(b"ok2").is_ok());
        assert_eq!(b.build().iter().collect::<Vec<_>>(), [&b"ok"[..], b"ok2"]);
    }

    #[test]
    fn chunks_keep_order_and_bounds() {
        let keys: Keys = (0..7).map(|i| key(&format!("k{i}"))).collect();
        let chunks = keys.chunks(3);
        assert_eq!(chunks.iter().map(Keys::len).collect::<Vec<_>>(), [3, 3, 1]);
        let again: Vec<&[u8]> = chunks.iter().flat_map(Keys::iter).collect();
        assert_eq!(again, keys.iter().collect::<Vec<_>>());
        assert!(chunks[2].single().is_some(), "a chunk of one is a single-key read");
    }

    #[test]
    fn no_keys() {
        let keys: Keys = std::iter::empty().collect();
        assert!(keys.is_empty());
        assert_eq!(wire(&keys), b"");
    }
}
