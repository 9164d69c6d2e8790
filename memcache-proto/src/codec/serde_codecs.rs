//! Codecs for any serde type: JSON (readable by every language) and postcard (compact).

use bytes::Bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{Codec, CodecError, Encoded, flags};

/// JSON via serde_json, flags `1 << 24` by default. Any `Serialize + DeserializeOwned` type.
#[cfg(feature = "json")]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Json {
    flags: u32,
}

#[cfg(feature = "json")]
impl Default for Json {
    fn default() -> Self {
        Json { flags: flags::JSON }
    }
}

#[cfg(feature = "json")]
impl Json {
    /// Tags JSON with `flags` instead of `1 << 24`, and reads only values so tagged.
    pub fn with_flags(flags: u32) -> Self {
        Json { flags }
    }
}

#[cfg(feature = "json")]
impl<T: Serialize + DeserializeOwned> Codec<T> for Json {
    fn name(&self) -> &'static str {
        "json"
    }
    fn accepts(&self, flags: u32) -> bool {
        flags == self.flags
    }
    fn encode(&self, value: &T) -> Result<Encoded, CodecError> {
        let bytes = serde_json::to_vec(value).map_err(CodecError::encode)?;
        Ok(Encoded { value: Bytes::from(bytes), flags: self.flags })
    }
    fn decode_bytes(&self, value: Bytes, _flags: u32) -> Result<T, CodecError> {
        serde_json::from_slice(&value).map_err(CodecError::decode)
    }
}

/// postcard, flags `1 << 25` by default: a compact binary format with a stable, documented
/// wire specification (unlike bincode, whose latest release is a tombstone). Not
/// self-describing: reader and writer must agree on the type.
#[cfg(feature = "postcard")]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Postcard {
    flags: u32,
}

#[cfg(feature = "postcard")]
impl Default for Postcard {
    fn default() -> Self {
        Postcard { flags: flags::POSTCARD }
    }
}

#[cfg(feature = "postcard")]
impl Postcard {
    /// Tags postcard values with `flags` instead of `1 << 25`, and reads only values so tagged.
    pub fn with_flags(flags: u32) -> Self {
        Postcard { flags }
    }
}

#[cfg(feature = "postcard")]
impl<T: Serialize + DeserializeOwned> Codec<T> for Postcard {
    fn name(&self) -> &'static str {
        "postcard"
    }
    fn accepts(&self, flags: u32) -> bool {
        flags == self.flags
    }
    fn encode(&self, value: &T) -> Result<Encoded, CodecError> {
        let bytes = postcard::to_stdvec(value).map_err(CodecError::encode)?;
        Ok(Encoded { value: Bytes::from(bytes), flags: self.flags })
    }
    /// Refuses trailing bytes: postcard would ignore them, and they mean the value was
    /// written as another type.
    fn decode_bytes(&self, value: Bytes, _flags: u32) -> Result<T, CodecError> {
        match postcard::take_from_bytes(&value) {
            Ok((v, [])) => Ok(v),
            Ok((_, rest)) => {
                Err(CodecError::invalid(format!("{} bytes left over after the postcard value", rest.len())))
            }
            Err(e) => Err(CodecError::decode(e)),
        }
    }
}
