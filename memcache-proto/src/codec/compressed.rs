//! `Compressed<C>`: compression around any codec, tagged with one flag bit of its own.

use bytes::Bytes;

use super::{Codec, CodecError, Encoded, flags};
use crate::Limits;

/// pymemcache's `min_compress_len`: below this, compressing costs more than it saves.
pub const DEFAULT_THRESHOLD: usize = 400;

/// The compression algorithm of a [`Compressed`] codec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
enum Algorithm {
    /// zlib format (RFC 1950), as Python's `zlib.compress` writes it.
    #[cfg(feature = "zlib")]
    Zlib,
    /// LZ4 block format with the uncompressed length prepended (4 bytes, little endian).
    #[cfg(feature = "lz4")]
    Lz4,
}

/// Wraps a codec `C` and compresses what it encodes when that is worth it: only values of at
/// least [`threshold`](Self::with_threshold) bytes (default 400, pymemcache's), and only when
/// the compressed form is smaller. Compressed values carry the inner codec's flags plus one
/// bit of their own, so values below the threshold read as plain `C` values and a reader
/// without this wrapper refuses compressed ones instead of mis-decoding them.
///
/// Decompression is bounded by [`Limits::max_value_len`] (the default limits unless
/// [`with_limits`](Self::with_limits) says otherwise): a small value that would inflate
/// beyond it (a decompression bomb) is [`CodecError::TooLarge`], and at most that many bytes
/// are ever allocated.
///
/// `Compressed::zlib(Text::default())` reads and writes exactly what pymemcache's
/// `CompressedSerde` does for strings (pymemcache compresses strictly above its 400 bytes,
/// this wrapper at 400 and above; each reads the other's values either way).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Compressed<C> {
    inner: C,
    algorithm: Algorithm,
    flag: u32,
    threshold: usize,
    max_len: usize,
}

impl<C> Compressed<C> {
    fn new(inner: C, algorithm: Algorithm, flag: u32) -> Self {
        let max_len = Limits::DEFAULT.max_value_len;
        Compressed { inner, algorithm, flag, threshold: DEFAULT_THRESHOLD, max_len }
    }

    /// zlib compression tagged `1 << 3`, pymemcache's and python-memcached's bit.
    #[cfg(feature = "zlib")]
    pub fn zlib(inner: C) -> Self {
        Self::new(inner, Algorithm::Zlib, flags::ZLIB)
    }

    /// LZ4 compression tagged `1 << 26`: faster than zlib, compresses less, and no Python
    /// client reads it (use zlib for keys a Python service reads).
    #[cfg(feature = "lz4")]
    pub fn lz4(inner: C) -> Self {
        Self::new(inner, Algorithm::Lz4, flags::LZ4)
    }

    /// Compresses values of at least `bytes` bytes (default 400).
    pub fn with_threshold(mut self, bytes: usize) -> Self {
        self.threshold = bytes;
        self
    }

    /// Tags compressed values with `flag` instead of the algorithm's default bit. It must not
    /// overlap the inner codec's flags.
    pub fn with_flag(mut self, flag: u32) -> Self {
        self.flag = flag;
        self
    }

    /// Bounds decompressed values by `limits.max_value_len` (pass the client's limits).
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.max_len = limits.max_value_len;
        self
    }

    /// The wrapped codec.
    pub fn inner(&self) -> &C {
        &self.inner
    }

    fn compress(&self, data: &[u8]) -> Result<Vec<u8>, CodecError> {
        match self.algorithm {
            #[cfg(feature = "zlib")]
            Algorithm::Zlib => zlib::compress(data),
            #[cfg(feature = "lz4")]
            Algorithm::Lz4 => Ok(lz4_flex::block::compress_prepend_size(data)),
        }
    }

    fn decompress(&self, data: &[u8]) -> Result<Vec<u8>, CodecError> {
        match self.algorithm {
            #[cfg(feature = "zlib")]
            Algorithm::Zlib => zlib::decompress(data, self.max_len),
            #[cfg(feature = "lz4")]
            Algorithm::Lz4 => lz4::decompress(data, self.max_len),
        }
    }
}

impl<T, C: Codec<T>> Codec<T> for Compressed<C> {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    /// The inner codec's flags, with or without this wrapper's bit.
    fn accepts(&self, flags: u32) -> bool {
        self.inner.accepts(flags & !self.flag)
    }

    fn encode(&self, value: &T) -> Result<Encoded, CodecError> {
        let plain = self.inner.encode(value)?;
        if plain.flags & self.flag != 0 {
            return Err(CodecError::invalid(format!(
                "the {} codec's flags {:#x} overlap the compression bit {:#x}",
                self.inner.name(),
                plain.flags,
                self.flag
            )));
        }
        if plain.value.len() < self.threshold {
            return Ok(plain);
        }
        let packed = self.compress(&plain.value)?;
        if packed.len() >= plain.value.len() {
            return Ok(plain);
        }
        Ok(Encoded { value: Bytes::from(packed), flags: plain.flags | self.flag })
    }

    fn decode_bytes(&self, value: Bytes, flags: u32) -> Result<T, CodecError> {
        if flags & self.flag == 0 {
            return self.inner.decode_bytes(value, flags);
        }
        let plain = self.decompress(&value)?;
        self.inner.decode_bytes(Bytes::from(plain), flags & !self.flag)
    }
}

#[cfg(feature = "zlib")]
mod zlib {
    use std::io::{Read, Write};

    use flate2::Compression;
    use flate2::read::ZlibDecoder;
    use flate2::write::ZlibEncoder;

    use super::CodecError;

    /// zlib at the default level (6), as Python's `zlib.compress` does.
    pub(super) fn compress(data: &[u8]) -> Result<Vec<u8>, CodecError> {
        let mut enc = ZlibEncoder::new(Vec::with_capacity(data.len() / 2), Compression::default());
        enc.write_all(data).map_err(CodecError::encode)?;
        enc.finish().map_err(CodecError::encode)
    }

    /// Inflates at most `max_len + 1` bytes: one byte past the limit proves the value too
    /// large without inflating the rest.
    pub(super) fn decompress(data: &[u8], max_len: usize) -> Result<Vec<u8>, CodecError> {
        let cap = u64::try_from(max_len).unwrap_or(u64::MAX).saturating_add(1);
        let mut out = Vec::with_capacity(data.len().saturating_mul(4).min(max_len));
        ZlibDecoder::new(data).take(cap).read_to_end(&mut out).map_err(CodecError::decode)?;
        if out.len() > max_len {
            return Err(CodecError::TooLarge { limit: max_len });
        }
        Ok(out)
    }
}

#[cfg(feature = "lz4")]
mod lz4 {
    use super::CodecError;

    /// LZ4 cannot expand input by more than 255 times (a length byte adds at most 255 to a
    /// match), plus a few bytes of framing: a prefix announcing more is a lie, refused before
    /// any allocation.
    const MAX_RATIO: usize = 255;

    pub(super) fn decompress(data: &[u8], max_len: usize) -> Result<Vec<u8>, CodecError> {
        let (len, body) = lz4_flex::block::uncompressed_size(data).map_err(CodecError::decode)?;
        if len > max_len {
            return Err(CodecError::TooLarge { limit: max_len });
        }
        if len > body.len().saturating_mul(MAX_RATIO).saturating_add(16) {
            return Err(CodecError::invalid(format!(
                "LZ4 prefix announces {len} bytes from {} compressed bytes",
                body.len()
            )));
        }
        let mut out = vec![0; len];
        let n = lz4_flex::block::decompress_into(body, &mut out).map_err(CodecError::decode)?;
        if n != len {
            return Err(CodecError::invalid(format!("LZ4 value announced {len} bytes, held {n}")));
        }
        Ok(out)
    }
}
