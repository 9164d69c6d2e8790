//! Matching the values of a multi-key reply to the keys that were requested, in any order.
//!
//! memcached answers `get k1 k2 ...` in request order, skipping misses. A proxy in front of
//! several servers need not: twemproxy splits the keys across its servers and, when some are
//! misses, joins the answers in another order; memcached's protocol promises no order across
//! servers. So a value is matched by its key: it answers the first requested position holding
//! that key that no earlier value answered. A key that was not requested (or comes more times
//! than it was requested) means the stream is out of sync.
//!
//! The in-order reply stays a single forward scan with no allocation for up to
//! [`INLINE_KEYS`] keys (beyond that, one for a bit set); only the first value that comes out
//! of order pays for an index.

use crate::{Key, Keys};

/// How many requested keys the matcher tracks without allocating.
pub(crate) const INLINE_KEYS: usize = 128;

/// What a multi-key request asked for, seen as its keys by position.
pub(crate) trait Requested {
    /// How many keys.
    fn count(&self) -> usize;
    /// The bytes of the key at `position` (empty past the end, which no reply key equals).
    fn key_at(&self, position: usize) -> &[u8];
}

impl Requested for Keys {
    fn count(&self) -> usize {
        self.len()
    }
    #[inline]
    fn key_at(&self, position: usize) -> &[u8] {
        self.get(position).unwrap_or_default()
    }
}

/// The driver's gathered single-key reads: `(slot, key)`.
impl<T> Requested for [(T, Key)] {
    fn count(&self) -> usize {
        self.len()
    }
    fn key_at(&self, position: usize) -> &[u8] {
        self.get(position).map(|(_, k)| k.as_bytes()).unwrap_or_default()
    }
}

/// Finds, for each value of a reply, the requested position it answers.
pub(crate) struct KeyMatcher<'a, R: ?Sized> {
    requested: &'a R,
    /// Every position at or after the cursor is unanswered; a forward match moves the cursor
    /// past itself.
    cursor: usize,
    /// Positions before the cursor that the forward scan skipped and no value answered yet:
    /// misses, or values still to come out of order. An in-order reply without misses never
    /// skips, so it never touches this set.
    open: Bits,
    /// Positions ordered by key, built when the first value comes out of order.
    by_key: Option<Vec<usize>>,
}

impl<'a, R: Requested + ?Sized> KeyMatcher<'a, R> {
    pub(crate) fn new(requested: &'a R) -> Self {
        KeyMatcher { requested, cursor: 0, open: Bits::new(requested.count()), by_key: None }
    }

    /// The position `key` answers, now marked answered; `None` if `key` was not requested or
    /// every position holding it is answered already (a desync). Inlined: it runs once per
    /// value of every multi-key reply, and in order it is one comparison.
    #[inline]
    pub(crate) fn take(&mut self, key: &[u8]) -> Option<usize> {
        let requested = self.requested;
        if let Some(position) = (self.cursor..requested.count()).find(|&p| requested.key_at(p) == key) {
            (self.cursor..position).for_each(|p| self.open.set(p));
            self.cursor = position + 1;
            return Some(position);
        }
        let position = self.behind(key)?;
        self.open.clear(position);
        Some(position)
    }

    /// An open position before the cursor holding `key`.
    fn behind(&mut self, key: &[u8]) -> Option<usize> {
        let requested = self.requested;
        let by_key = self.by_key.get_or_insert_with(|| {
            let mut order: Vec<usize> = (0..requested.count()).collect();
            // Stable: equal keys stay in request order, so duplicates are answered first to last.
            order.sort_by(|&a, &b| requested.key_at(a).cmp(requested.key_at(b)));
            order
        });
        let first = by_key.partition_point(|&p| requested.key_at(p) < key);
        let same = by_key.get(first..)?.iter().take_while(|&&p| requested.key_at(p) == key);
        same.copied().find(|&p| self.open.get(p))
    }
}

/// A fixed-size set of positions, inline up to [`INLINE_KEYS`].
enum Bits {
    Inline([u64; INLINE_KEYS / 64]),
    Heap(Vec<u64>),
}

impl Bits {
    fn new(len: usize) -> Bits {
        if len <= INLINE_KEYS {
            Bits::Inline([0; INLINE_KEYS / 64])
        } else {
            Bits::Heap(vec![0; len.div_ceil(64)])
        }
    }

    fn words(&self) -> &[u64] {
        match self {
            Bits::Inline(w) => w,
            Bits::Heap(w) => w,
        }
    }

    fn get(&self, i: usize) -> bool {
        self.words().get(i / 64).is_some_and(|w| w & (1 << (i % 64)) != 0)
    }

    fn set(&mut self, i: usize) {
        if let Some(w) = self.words_mut().get_mut(i / 64) {
            *w |= 1 << (i % 64);
        }
    }

    fn clear(&mut self, i: usize) {
        if let Some(w) = self.words_mut().get_mut(i / 64) {
            *w &= !(1 << (i % 64));
        }
    }

    fn words_mut(&mut self) -> &mut [u64] {
        match self {
            Bits::Inline(w) => w,
            Bits::Heap(w) => w,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(names: &[&str]) -> Keys {
        names.iter().map(|k| Key::copy_from(k.as_bytes()).expect("valid key")).collect()
    }

    fn positions(requested: &[&str], reply: &[&str]) -> Option<Vec<usize>> {
        let requested = keys(requested);
        let mut matcher = KeyMatcher::new(&requested);
        reply.iter().map(|k| matcher.take(k.as_bytes())).collect()
    }

    #[test]
    fn in_order_with_misses_is_a_forward_scan() {
        assert_eq!(positions(&["a", "b", "c", "d"], &["a", "c", "d"]), Some(vec![0, 2, 3]));
    }

    #[test]
    fn any_order_matches_by_key() {
        assert_eq!(positions(&["a", "b", "c", "d"], &["d", "c", "b", "a"]), Some(vec![3, 2, 1, 0]));
        assert_eq!(positions(&["a", "b", "c", "d"], &["c", "a", "d"]), Some(vec![2, 0, 3]));
    }

    #[test]
    fn a_duplicate_is_answered_as_often_as_it_was_requested() {
        assert_eq!(positions(&["a", "b", "a"], &["a", "b", "a"]), Some(vec![0, 1, 2]));
        // Equal keys are interchangeable: which copy answers which position does not matter.
        assert_eq!(positions(&["a", "b", "a"], &["b", "a", "a"]), Some(vec![1, 2, 0]));
        assert_eq!(positions(&["a", "b", "a"], &["a", "a", "b"]), Some(vec![0, 2, 1]));
        assert_eq!(positions(&["a", "b"], &["b", "a", "a"]), None);
        assert_eq!(positions(&["a", "b"], &["a", "a"]), None);
    }

    #[test]
    fn a_key_not_requested_is_a_desync() {
        assert_eq!(positions(&["a", "b"], &["b", "zzz"]), None);
        assert_eq!(positions(&[], &["a"]), None);
    }

    #[test]
    fn many_keys_in_reverse_use_the_heap_set() {
        let names: Vec<String> = (0..INLINE_KEYS * 3 + 5).map(|i| format!("k{i}")).collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let reversed: Vec<&str> = names.iter().rev().copied().collect();
        let expected: Vec<usize> = (0..names.len()).rev().collect();
        assert_eq!(positions(&names, &reversed), Some(expected));
        let mut twice = reversed.clone();
        twice.push(names[7]);
        assert_eq!(positions(&names, &twice), None);
    }
}
