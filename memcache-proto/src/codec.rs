//! Typed values: a [`Codec`] turns a value into bytes plus the flags that tag them, and back.
//!
//! memcached stores a 32-bit `flags` word next to every value and never looks at it. Clients
//! use it to record how the bytes were made, and a cache is often shared by services written
//! in different languages. A codec therefore checks the flags *before* it decodes: a value
//! whose flags are not the codec's is [`CodecError::FlagsMismatch`] ("stored by another client
//! or codec"), never a panic and never a value decoded from bytes that mean something else.
//! Codec errors touch no connection: the reply was read in full, so the connection is reused.
//!
//! # Flags
//!
//! The defaults coexist with pymemcache (and python-memcached and pylibmc, which share its
//! low bits): a Python service and a Rust service can share string, integer and
//! zlib-compressed keys. The formats Python does not have sit on bits that no popular client
//! writes. Every codec takes another bit with `with_flags`.
//!
//! | bit | value | written by | here |
//! |---|---|---|---|
//! | none | `0` | pymemcache `bytes`, gomemcache, any raw client | [`Raw`] |
//! | `1 << 0` | `0x1` | pymemcache / python-memcached pickle | never written (Python-only format) |
//! | `1 << 1` | `0x2` | pymemcache / python-memcached `int` | [`Integer`] |
//! | `1 << 2` | `0x4` | python-memcached `long` (Python 2) | read by [`Integer`] |
//! | `1 << 3` | `0x8` | pymemcache / python-memcached zlib | `Compressed::zlib` (feature `zlib`) |
//! | `1 << 4` | `0x10` | pymemcache `str` (UTF-8) | [`Text`] |
//! | `1 << 24` | `0x0100_0000` | nobody else | `Json` (feature `json`) |
//! | `1 << 25` | `0x0200_0000` | nobody else | `Postcard` (feature `postcard`) |
//! | `1 << 26` | `0x0400_0000` | nobody else | `Compressed::lz4` (feature `lz4`) |
//!
//! Why bits 24 to 26: spymemcached uses bits 0, 1 and 8 to 15, php-memcached its type in bits
//! 0 to 3 and its own flags in 4 to 15, Dalli bits 0 and 1. Bits 16 to 31 are left to the
//! application by all of them (php-memcached's "user flags"; used only if an application sets
//! them), so the only overlap left is with an application's own choice, which `with_flags`
//! resolves.
//!
//! # Example
//!
//! ```
//! use memcache_proto::codec::{Codec, CodecError, Integer, Text, flags};
//!
//! let encoded = Text::default().encode(&"héllo".to_string())?;
//! assert_eq!((&encoded.value[..], encoded.flags), ("héllo".as_bytes(), flags::TEXT));
//!
//! // A value pymemcache stored with `client.set("n", 42)`:
//! let n: i64 = Integer::default().decode(bytes::Bytes::from_static(b"42"), flags::INTEGER)?;
//! assert_eq!(n, 42);
//!
//! // The same bytes read as text: the flags say they are not text.
//! let err = Codec::<String>::decode(&Text::default(), bytes::Bytes::from_static(b"42"), 2);
//! assert!(matches!(err, Err(CodecError::FlagsMismatch { .. })));
//! # Ok::<(), CodecError>(())
//! ```

use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;

use bytes::Bytes;

use crate::Item;

#[cfg(any(feature = "zlib", feature = "lz4"))]
mod compressed;
#[cfg(any(feature = "json", feature = "postcard"))]
mod serde_codecs;
mod typed;

#[cfg(any(feature = "zlib", feature = "lz4"))]
#[cfg_attr(docsrs, doc(cfg(any(feature = "zlib", feature = "lz4"))))]
pub use compressed::Compressed;
#[cfg(feature = "json")]
#[cfg_attr(docsrs, doc(cfg(feature = "json")))]
pub use serde_codecs::Json;
#[cfg(feature = "postcard")]
#[cfg_attr(docsrs, doc(cfg(feature = "postcard")))]
pub use serde_codecs::Postcard;
pub use typed::{TypedItem, decode_map};

/// The default flag bits (see the [module docs](self) for who else uses which bit).
pub mod flags {
    /// Raw bytes: pymemcache's `FLAG_BYTES`, and what a client without codecs stores.
    pub const BYTES: u32 = 0;
    /// pymemcache's and python-memcached's pickle. Never written here; listed so that no
    /// codec is configured onto it.
    pub const PICKLE: u32 = 1 << 0;
    /// A decimal integer: pymemcache's `FLAG_INTEGER`.
    pub const INTEGER: u32 = 1 << 1;
    /// A decimal integer written by Python 2's python-memcached for a `long`.
    pub const LONG: u32 = 1 << 2;
    /// zlib-compressed: pymemcache's and python-memcached's `FLAG_COMPRESSED`.
    pub const ZLIB: u32 = 1 << 3;
    /// UTF-8 text: pymemcache's `FLAG_TEXT`.
    pub const TEXT: u32 = 1 << 4;
    /// JSON (no other popular client writes this bit).
    pub const JSON: u32 = 1 << 24;
    /// postcard (no other popular client writes this bit).
    pub const POSTCARD: u32 = 1 << 25;
    /// LZ4 block compression (no other popular client writes this bit).
    pub const LZ4: u32 = 1 << 26;
}

/// A value turned into bytes, with the flags that say how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoded {
    /// The bytes to store.
    pub value: Bytes,
    /// The flags to store with them.
    pub flags: u32,
}

/// Why a value could not be encoded or decoded. The connection is never affected.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// The stored flags are not this codec's: the value was stored by another client or codec
    /// (or raw). Nothing was decoded.
    #[error("value flags {flags:#x} are not the {codec} codec's: stored by another client or codec")]
    FlagsMismatch {
        /// The codec that refused the value.
        codec: &'static str,
        /// The flags the value was stored with.
        flags: u32,
    },
    /// The value could not be turned into bytes (for example a JSON map with non-string keys).
    #[error("cannot encode the value: {0}")]
    Encode(Arc<dyn StdError + Send + Sync>),
    /// The flags matched but the bytes are not a valid value of the expected type.
    #[error("cannot decode the value: {0}")]
    Decode(Arc<dyn StdError + Send + Sync>),
    /// A compressed value would decompress to more than the limit (a decompression bomb, or a
    /// value larger than the client accepts uncompressed).
    #[error("value decompresses to more than {limit} bytes")]
    TooLarge {
        /// The limit in force ([`Limits::max_value_len`](crate::Limits::max_value_len)).
        limit: usize,
    },
}

impl CodecError {
    /// An encoding failure caused by `e`.
    pub fn encode(e: impl StdError + Send + Sync + 'static) -> Self {
        CodecError::Encode(Arc::new(e))
    }

    /// A decoding failure caused by `e`.
    pub fn decode(e: impl StdError + Send + Sync + 'static) -> Self {
        CodecError::Decode(Arc::new(e))
    }

    /// A decoding failure described by `msg`.
    pub fn invalid(msg: impl Into<String>) -> Self {
        CodecError::Decode(Arc::new(Message(msg.into())))
    }
}

/// A plain error message, for failures that have no error type of their own.
#[derive(Debug)]
struct Message(String);

impl fmt::Display for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl StdError for Message {}

/// Turns values of type `T` into tagged bytes and back.
///
/// Implement [`accepts`](Self::accepts), [`encode`](Self::encode) and
/// [`decode_bytes`](Self::decode_bytes); call [`decode`](Self::decode), which checks the flags
/// before any byte is interpreted. A codec holds no connection and does no IO.
pub trait Codec<T> {
    /// A short name for error messages ("json", "text", ...).
    fn name(&self) -> &'static str;

    /// Whether a value stored with `flags` was written by this codec (and so may be decoded).
    fn accepts(&self, flags: u32) -> bool;

    /// Turns `value` into bytes and the flags that tag them.
    fn encode(&self, value: &T) -> Result<Encoded, CodecError>;

    /// Turns bytes whose flags [`accepts`](Self::accepts) approved back into a value. Use
    /// [`decode`](Self::decode) instead, which checks first.
    fn decode_bytes(&self, value: Bytes, flags: u32) -> Result<T, CodecError>;

    /// Decodes `value` if `flags` are this codec's, else [`CodecError::FlagsMismatch`].
    fn decode(&self, value: Bytes, flags: u32) -> Result<T, CodecError> {
        if !self.accepts(flags) {
            return Err(CodecError::FlagsMismatch { codec: self.name(), flags });
        }
        self.decode_bytes(value, flags)
    }

    /// Decodes an item read from the server (a zero-copy view of its value).
    fn decode_item(&self, item: &Item) -> Result<T, CodecError> {
        self.decode(item.value.clone(), item.flags)
    }
}

impl<T, C: Codec<T> + ?Sized> Codec<T> for &C {
    fn name(&self) -> &'static str {
        (**self).name()
    }
    fn accepts(&self, flags: u32) -> bool {
        (**self).accepts(flags)
    }
    fn encode(&self, value: &T) -> Result<Encoded, CodecError> {
        (**self).encode(value)
    }
    fn decode_bytes(&self, value: Bytes, flags: u32) -> Result<T, CodecError> {
        (**self).decode_bytes(value, flags)
    }
}

/// Raw bytes, flags `0` by default: what pymemcache stores for `bytes` and what a client
/// without codecs (gomemcache, this crate's raw calls) stores for everything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Raw {
    flags: u32,
}

impl Default for Raw {
    fn default() -> Self {
        Raw { flags: flags::BYTES }
    }
}

impl Raw {
    /// Tags values with `flags` instead of `0`, and reads only values so tagged.
    pub fn with_flags(flags: u32) -> Self {
        Raw { flags }
    }
}

impl Codec<Bytes> for Raw {
    fn name(&self) -> &'static str {
        "raw"
    }
    fn accepts(&self, flags: u32) -> bool {
        flags == self.flags
    }
    fn encode(&self, value: &Bytes) -> Result<Encoded, CodecError> {
        Ok(Encoded { value: value.clone(), flags: self.flags })
    }
    fn decode_bytes(&self, value: Bytes, _flags: u32) -> Result<Bytes, CodecError> {
        Ok(value)
    }
}

/// UTF-8 text, flags `1 << 4` by default: pymemcache's `str`. `Text::with_flags(0)` reads
/// strings stored raw by a client without codecs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Text {
    flags: u32,
}

impl Default for Text {
    fn default() -> Self {
        Text { flags: flags::TEXT }
    }
}

impl Text {
    /// Tags text with `flags` instead of `1 << 4`, and reads only values so tagged.
    pub fn with_flags(flags: u32) -> Self {
        Text { flags }
    }
}

impl Codec<String> for Text {
    fn name(&self) -> &'static str {
        "text"
    }
    fn accepts(&self, flags: u32) -> bool {
        flags == self.flags
    }
    fn encode(&self, value: &String) -> Result<Encoded, CodecError> {
        Ok(Encoded { value: Bytes::copy_from_slice(value.as_bytes()), flags: self.flags })
    }
    fn decode_bytes(&self, value: Bytes, _flags: u32) -> Result<String, CodecError> {
        String::from_utf8(value.to_vec()).map_err(CodecError::decode)
    }
}

/// A decimal integer, flags `1 << 1` by default: pymemcache's `int`, also read with Python
/// 2's `long` flag (`1 << 2`). Stored as ASCII digits, so memcached's `incr`/`decr` work on
/// it; the trailing spaces memcached leaves when `decr` shortens a number in place are
/// ignored, as Python's `int()` ignores them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Integer {
    flags: u32,
    read_long: bool,
}

impl Default for Integer {
    fn default() -> Self {
        Integer { flags: flags::INTEGER, read_long: true }
    }
}

impl Integer {
    /// Tags integers with `flags` instead of `1 << 1`, and reads only values so tagged.
    pub fn with_flags(flags: u32) -> Self {
        Integer { flags, read_long: false }
    }
}

macro_rules! integer_codec {
    ($($t:ty),*) => {$(
        impl Codec<$t> for Integer {
            fn name(&self) -> &'static str {
                "integer"
            }
            fn accepts(&self, flags: u32) -> bool {
                flags == self.flags || (self.read_long && flags == flags::LONG)
            }
            fn encode(&self, value: &$t) -> Result<Encoded, CodecError> {
                Ok(Encoded { value: Bytes::from(value.to_string()), flags: self.flags })
            }
            fn decode_bytes(&self, value: Bytes, _flags: u32) -> Result<$t, CodecError> {
                let text = std::str::from_utf8(&value).map_err(CodecError::decode)?;
                text.trim_ascii().parse::<$t>().map_err(CodecError::decode)
            }
        }
    )*};
}

integer_codec!(i8, i16, i32, i64, i128, isize, u8, u16, u32, u64, u128, usize);
