//! Meta keys: text keys as they are, binary keys in base64 with the `b` flag.

use std::fmt;

use bytes::Bytes;

use crate::{Error, Key, MAX_KEY_LEN};

/// Longest binary key: its base64 form (4 characters per 3 bytes, padded) must fit in
/// memcached's 250-byte key limit.
pub const MAX_BINARY_KEY_LEN: usize = MAX_KEY_LEN / 4 * 3;

/// The key of a meta request, as it goes on the wire.
///
/// A key that memcached accepts as text (1 to 250 bytes, no space or control byte) is sent as
/// it is. Any other key of 1 to [`MAX_BINARY_KEY_LEN`] bytes is sent in base64 with the `b`
/// flag, which tells memcached to decode it: this is how the meta protocol stores keys the
/// classic protocol cannot express. memcached echoes such keys in base64 (with `b`), and the
/// reply decoding turns them back into the raw bytes.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct MetaKey {
    wire: Key,
    binary: bool,
}

impl MetaKey {
    /// A key from any bytes: text when memcached accepts it as text, base64 otherwise.
    pub fn new(key: impl AsRef<[u8]>) -> Result<MetaKey, Error> {
        let key = key.as_ref();
        match Key::copy_from(key) {
            Ok(wire) => Ok(MetaKey { wire, binary: false }),
            Err(_) if !key.is_empty() && key.len() <= MAX_BINARY_KEY_LEN => MetaKey::binary(key),
            Err(e) => Err(match e {
                Error::MalformedKey(_) if key.len() > MAX_BINARY_KEY_LEN => Error::MalformedKey(format!(
                    "binary key of {} bytes (limit {MAX_BINARY_KEY_LEN}, 250 once in base64)",
                    key.len()
                )),
                e => e,
            }),
        }
    }

    /// A key sent in base64 with `b` even if it is valid text, so that a key space of binary
    /// keys stays uniform. At most [`MAX_BINARY_KEY_LEN`] bytes.
    pub fn binary(key: &[u8]) -> Result<MetaKey, Error> {
        if key.is_empty() || key.len() > MAX_BINARY_KEY_LEN {
            return Err(Error::MalformedKey(format!(
                "binary key of {} bytes (1 to {MAX_BINARY_KEY_LEN})",
                key.len()
            )));
        }
        let wire = Key::copy_from(&encode(key))?;
        Ok(MetaKey { wire, binary: true })
    }

    /// The token sent on the wire (base64 for a binary key). It also picks the server.
    pub fn wire(&self) -> &Key {
        &self.wire
    }

    /// Whether the key goes out in base64 with `b`.
    pub fn is_binary(&self) -> bool {
        self.binary
    }

    /// The key's own bytes (decoded from base64 for a binary key).
    pub fn to_raw(&self) -> Bytes {
        if self.binary {
            decode(self.wire.as_bytes()).map(Bytes::from).unwrap_or_else(|| self.wire.to_bytes())
        } else {
            self.wire.to_bytes()
        }
    }
}

impl fmt::Debug for MetaKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.binary {
            write!(f, "MetaKey(b64 {})", self.wire)
        } else {
            write!(f, "MetaKey({})", self.wire)
        }
    }
}

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding, the form memcached's `b` flag decodes.
pub(crate) fn encode(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len().div_ceil(3) * 4);
    for chunk in raw.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]);
            } else {
                out.push(b'=');
            }
        }
    }
    out
}

fn sextet(c: u8) -> Option<u32> {
    let v = match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => return None,
    };
    Some(u32::from(v))
}

/// Decodes padded standard base64; `None` for anything else (the peer sent it, so no panics).
pub(crate) fn decode(text: &[u8]) -> Option<Vec<u8>> {
    if text.is_empty() || text.len() % 4 != 0 {
        return None;
    }
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    let quads = text.len() / 4;
    for (q, chunk) in text.chunks(4).enumerate() {
        let pad = chunk.iter().rev().take_while(|&&c| c == b'=').count();
        if pad > 2 || (pad > 0 && q + 1 != quads) {
            return None;
        }
        let mut n = 0u32;
        for &c in &chunk[..4 - pad] {
            n = n << 6 | sextet(c)?;
        }
        n <<= 6 * pad as u32;
        let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&bytes[..3 - pad]);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trips() {
        assert_eq!(encode(b"foobar"), b"Zm9vYmFy");
        assert_eq!(encode(b"cntr"), b"Y250cg==");
        assert_eq!(encode(b"nope"), b"bm9wZQ==");
        assert_eq!(decode(b"bm9wZQ==").as_deref(), Some(&b"nope"[..]));
        for len in 0..40 {
            let raw: Vec<u8> = (0..len).map(|i| (i * 37 + 11) as u8).collect();
            let text = encode(&raw);
            if len > 0 {
                assert_eq!(decode(&text), Some(raw));
            }
        }
        for bad in [&b"!!!!"[..], b"abc", b"a===", b"ab=c", b"YQ==YQ==", b""] {
            assert_eq!(decode(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn keys_pick_their_form() {
        let text = MetaKey::new("foo").expect("text");
        assert!(!text.is_binary());
        assert_eq!(text.wire().as_bytes(), b"foo");
        let bin = MetaKey::new(b"a b\0").expect("binary");
        assert!(bin.is_binary());
        assert_eq!(&bin.to_raw()[..], b"a b\0");
        assert!(MetaKey::new(vec![0u8; MAX_BINARY_KEY_LEN]).is_ok());
        assert!(MetaKey::new(vec![0u8; MAX_BINARY_KEY_LEN + 1]).is_err());
        assert!(MetaKey::new(vec![b'k'; 250]).is_ok(), "a long text key stays text");
        assert!(MetaKey::new(b"").is_err());
        assert_eq!(MetaKey::binary(b"foobar").expect("forced").wire().as_bytes(), b"Zm9vYmFy");
        assert_eq!(MAX_BINARY_KEY_LEN, 186);
    }
}
