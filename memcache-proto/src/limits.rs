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
    /// 1 GiB (`-I`); the default here leaves room for large `-I` settings.
    pub max_value_len: usize,
    /// Most values in one retrieval reply (duplicate keys in a request each produce one).
    pub max_values: usize,
}

impl Limits {
    /// The defaults: 8 KiB lines, 128 MiB values, 65,536 values per reply.
    pub const DEFAULT: Limits =
        Limits { max_line_len: 8 * 1024, max_value_len: 128 * 1024 * 1024, max_values: 65_536 };

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
}

impl Default for Limits {
    fn default() -> Self {
        Self::DEFAULT
    }
}
