//! Bounds on what a peer may make the decoder hold.

/// Upper bounds the decoder enforces on everything the server sends, so that a broken or
/// hostile peer cannot make the client allocate without bound. Exceeding one is a
/// [`ProtoError`](crate::ProtoError) and poisons the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// Longest reply line accepted, terminator included. memcached's own lines are short
    /// (a `VALUE` header with a 250-byte key is under 300 bytes; `STAT` lines are under 1 KiB).
    pub max_line_len: usize,
    /// Largest value accepted. memcached's item size limit is 1 MiB by default and at most
    /// 1 GiB (`-I`); the default here is 1 MiB, what a default server can hold. Raise it (and
    /// [`max_reply_len`](Self::max_reply_len)) for a server started with a larger `-I`.
    pub max_value_len: usize,
    /// Most values in one retrieval reply (duplicate keys in a request each produce one).
    pub max_values: usize,
    /// Most bytes in one multi-line reply (a retrieval or `stats`), lines and data together.
    /// This is what one reply can make a connection hold; without it only
    /// `max_values x max_value_len` would. A `get_multi` is split into commands that cannot
    /// pass it (see [`keys_per_get`](Self::keys_per_get)).
    pub max_reply_len: usize,
}

impl Limits {
    /// The defaults: 8 KiB lines, 1 MiB values, 65,536 values and 256 MiB per reply.
    pub const DEFAULT: Limits = Limits {
        max_line_len: 8 * 1024,
        max_value_len: 1024 * 1024,
        max_values: 65_536,
        max_reply_len: 256 * 1024 * 1024,
    };

    /// How many keys one retrieval command may ask for so that its reply, even if every key
    /// hits with a value of the largest size, passes neither `max_values` nor `max_reply_len`:
    /// at least 1 (a single key's reply can always be asked for; its value is bounded by
    /// `max_value_len`).
    pub fn keys_per_get(&self) -> usize {
        // A value's worst case: its header line, its data, its `\r\n`; plus the `END` line.
        let per_value = self.max_line_len.saturating_add(self.max_value_len).saturating_add(2);
        let by_bytes = self.max_reply_len.saturating_sub(5) / per_value.max(1);
        by_bytes.min(self.max_values).max(1)
    }

    /// Sets [`max_line_len`](Self::max_line_len).
    pub fn with_max_line_len(mut self, n: usize) -> Self {
        self.max_line_len = n;
        self
    }

    /// Sets [`max_value_len`](Self::max_value_len).
    pub fn with_max_value_len(mut self, n: usize) -> Self {
        self.max_value_len = n;
        self
    }

    /// Sets [`max_values`](Self::max_values).
    pub fn with_max_values(mut self, n: usize) -> Self {
        self.max_values = n;
        self
    }

    /// Sets [`max_reply_len`](Self::max_reply_len).
    pub fn with_max_reply_len(mut self, n: usize) -> Self {
        self.max_reply_len = n;
        self
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self::DEFAULT
    }
}
