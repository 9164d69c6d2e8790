//! The item a user stores and reads back.

use bytes::Bytes;

/// An item stored in or read from memcached, as in gomemcache.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Item {
    /// The key: 1 to 250 bytes, no spaces or control characters.
    pub key: String,
    /// The value. Values read from the server share the connection's read buffer (no copy).
    pub value: Bytes,
    /// Opaque flags stored alongside the value.
    pub flags: u32,
    /// Expiration in seconds: 0 never expires, up to 30 days is relative, above that a Unix
    /// timestamp; negative is already expired.
    pub expiration: i32,
    /// The CAS token, set by reads (`get` uses `gets`) and required by `compare_and_swap`.
    pub cas: Option<u64>,
}

impl Item {
    /// An item with no flags, no expiration and no CAS token.
    pub fn new(key: impl Into<String>, value: impl Into<Bytes>) -> Item {
        Item { key: key.into(), value: value.into(), ..Item::default() }
    }

    /// Sets the flags.
    pub fn with_flags(mut self, flags: u32) -> Item {
        self.flags = flags;
        self
    }

    /// Sets the expiration in seconds.
    pub fn with_expiration(mut self, expiration: i32) -> Item {
        self.expiration = expiration;
        self
    }

    /// Sets the CAS token.
    pub fn with_cas(mut self, cas: u64) -> Item {
        self.cas = Some(cas);
        self
    }
}
