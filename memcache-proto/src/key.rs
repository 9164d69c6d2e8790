//! Key validation: the one place memcached's key rules are written down.

use bytes::Bytes;
use std::fmt;

use crate::Error;

/// Longest key memcached accepts, in bytes.
pub const MAX_KEY_LEN: usize = 250;

/// A key that memcached accepts: 1 to 250 bytes, none of them a space, a control character
/// (`<= 0x20`) or DEL (`0x7f`).
///
/// Commands hold `Key`s, so a command that exists can always be encoded: validation happens
/// once, when the key is made, before any byte reaches a socket.
///
/// The bytes are stored inline (a key is at most 250 bytes), so making, cloning and dropping
/// a key never touches the heap: one allocation less per call on the hot path.
#[derive(Clone)]
pub struct Key {
    len: u8,
    bytes: [u8; MAX_KEY_LEN],
}

impl Key {
    /// Validates `key` and copies it.
    pub fn new(key: impl AsRef<[u8]>) -> Result<Key, Error> {
        Key::copy_from(key.as_ref())
    }

    /// Validates and copies a borrowed key.
    pub fn copy_from(key: &[u8]) -> Result<Key, Error> {
        check(key)?;
        let mut bytes = [0; MAX_KEY_LEN];
        bytes[..key.len()].copy_from_slice(key);
        Ok(Key { len: key.len() as u8, bytes })
    }

    /// The key's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }

    /// The key's bytes as `Bytes` (a copy).
    pub fn to_bytes(&self) -> Bytes {
        Bytes::copy_from_slice(self.as_bytes())
    }
}

impl PartialEq for Key {
    fn eq(&self, other: &Key) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for Key {}

impl std::hash::Hash for Key {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_bytes().hash(state);
    }
}

impl PartialOrd for Key {
    fn partial_cmp(&self, other: &Key) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Key {
    fn cmp(&self, other: &Key) -> std::cmp::Ordering {
        self.as_bytes().cmp(other.as_bytes())
    }
}

/// Checks `key` against memcached's rules without keeping it.
pub fn check(key: &[u8]) -> Result<(), Error> {
    if key.is_empty() || key.len() > MAX_KEY_LEN || forbidden(key) {
        return Err(Error::MalformedKey(describe(key)));
    }
    Ok(())
}

/// Whether `key` holds a space, a control character or DEL. Eight bytes per step, no early
/// exit: a valid key (the common case) is scanned whole anyway, and `get_multi` checks every
/// key of every call.
fn forbidden(key: &[u8]) -> bool {
    let mut words = key.chunks_exact(8);
    let mut bad = false;
    for word in &mut words {
        let mut w = [0; 8];
        w.copy_from_slice(word);
        bad |= forbidden_in(u64::from_le_bytes(w));
    }
    // The tail: the last eight bytes again (overlapping) when there are as many, so the copy
    // has a fixed size; a shorter key byte by byte.
    let tail = words.remainder();
    match key.get(key.len().wrapping_sub(8)..) {
        Some(last) if !tail.is_empty() => {
            let mut w = [0; 8];
            w.copy_from_slice(last);
            bad | forbidden_in(u64::from_le_bytes(w))
        }
        _ => bad | tail.iter().fold(false, |bad, &b| bad | (b <= b' ') | (b == 0x7f)),
    }
}

/// Whether one of the eight bytes of `w` is below `0x21` or is `0x7f`. The classic tests for a
/// byte below `n` (here `0x21`) and for a zero byte (`w ^ 0x7f..`): a borrow only crosses into
/// a byte from one below it that was itself flagged, so "any" is exact.
fn forbidden_in(w: u64) -> bool {
    const ONES: u64 = u64::from_le_bytes([0x01; 8]);
    const HIGH: u64 = u64::from_le_bytes([0x80; 8]);
    let below = w.wrapping_sub(ONES * 0x21) & !w & HIGH;
    let del = w ^ (ONES * 0x7f);
    let is_del = del.wrapping_sub(ONES) & !del & HIGH;
    below | is_del != 0
}

fn describe(key: &[u8]) -> String {
    if key.is_empty() {
        return "empty key".into();
    }
    if key.len() > MAX_KEY_LEN {
        return format!("key of {} bytes (limit {MAX_KEY_LEN})", key.len());
    }
    let shown = &key[..key.len().min(64)];
    format!("{:?} holds a space or control character", String::from_utf8_lossy(shown))
}

impl AsRef<[u8]> for Key {
    fn as_ref(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Key({:?})", String::from_utf8_lossy(self.as_bytes()))
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&String::from_utf8_lossy(self.as_bytes()))
    }
}

impl TryFrom<&str> for Key {
    type Error = Error;
    fn try_from(s: &str) -> Result<Key, Error> {
        Key::copy_from(s.as_bytes())
    }
}

impl TryFrom<String> for Key {
    type Error = Error;
    fn try_from(s: String) -> Result<Key, Error> {
        Key::copy_from(s.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules() {
        assert!(Key::copy_from(b"a").is_ok());
        assert!(Key::copy_from(&[b'k'; 250]).is_ok());
        assert!(Key::copy_from(&[b'k'; 251]).is_err());
        assert!(Key::copy_from(b"").is_err());
        for bad in [b' ', b'\n', b'\r', 0, 0x7f, b'\t', 0x1f] {
            assert!(Key::copy_from(&[b'a', bad, b'b']).is_err(), "{bad:#x}");
        }
        assert!(Key::copy_from("ключ".as_bytes()).is_ok());
    }

    #[test]
    fn every_byte_in_every_place_of_a_word_and_a_tail() {
        for len in [1, 7, 8, 9, 16, 23] {
            for at in 0..len {
                for b in 0..=255u8 {
                    let mut key = vec![b'k'; len];
                    key[at] = b;
                    let naive = key.iter().any(|&b| b <= b' ' || b == 0x7f);
                    assert_eq!(forbidden(&key), naive, "byte {b:#x} at {at} of {len}");
                }
            }
        }
    }
}
