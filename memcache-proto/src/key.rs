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
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key(Bytes);

impl Key {
    /// Validates `key`, keeping the bytes without a copy when given `Bytes`.
    pub fn new(key: impl Into<Bytes>) -> Result<Key, Error> {
        let key = key.into();
        check(&key)?;
        Ok(Key(key))
    }

    /// Validates and copies a borrowed key.
    pub fn copy_from(key: &[u8]) -> Result<Key, Error> {
        check(key)?;
        Ok(Key(Bytes::copy_from_slice(key)))
    }

    /// The key's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The key's bytes as a cheaply cloned `Bytes`.
    pub fn to_bytes(&self) -> Bytes {
        self.0.clone()
    }
}

/// Checks `key` against memcached's rules without keeping it.
pub fn check(key: &[u8]) -> Result<(), Error> {
    if key.is_empty() || key.len() > MAX_KEY_LEN || key.iter().any(|&b| b <= b' ' || b == 0x7f) {
        return Err(Error::MalformedKey(describe(key)));
    }
    Ok(())
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
        &self.0
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Key({:?})", String::from_utf8_lossy(&self.0))
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&String::from_utf8_lossy(&self.0))
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
        Key::new(s)
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
}
