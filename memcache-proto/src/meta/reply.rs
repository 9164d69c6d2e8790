//! Meta reply frames, as the decoder hands them out.

use bytes::{BufMut, Bytes};

use super::flags::put_u64;

/// The two-letter code that starts a meta reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum MetaStatus {
    /// `VA <size>`: a data block follows (`mg .. v`, `ma .. v`).
    Value,
    /// `HD`: success without a data block.
    Done,
    /// `EN`: `mg` or `me` missed.
    Miss,
    /// `NS`: not stored.
    NotStored,
    /// `EX`: the CAS did not match.
    Exists,
    /// `NF`: not found.
    NotFound,
    /// `MN`: the no-op's answer.
    NoOp,
    /// `ME <key> <k>=<v>*`: the debug dump of `me`.
    Debug,
}

impl MetaStatus {
    pub(crate) fn from_code(code: &[u8]) -> Option<MetaStatus> {
        Some(match code {
            b"VA" => MetaStatus::Value,
            b"HD" => MetaStatus::Done,
            b"EN" => MetaStatus::Miss,
            b"NS" => MetaStatus::NotStored,
            b"EX" => MetaStatus::Exists,
            b"NF" => MetaStatus::NotFound,
            b"MN" => MetaStatus::NoOp,
            b"ME" => MetaStatus::Debug,
            _ => return None,
        })
    }

    fn code(self) -> &'static [u8] {
        match self {
            MetaStatus::Value => b"VA",
            MetaStatus::Done => b"HD",
            MetaStatus::Miss => b"EN",
            MetaStatus::NotStored => b"NS",
            MetaStatus::Exists => b"EX",
            MetaStatus::NotFound => b"NF",
            MetaStatus::NoOp => b"MN",
            MetaStatus::Debug => b"ME",
        }
    }
}

/// One meta reply. The flag part of the line and the data block share the read buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetaReply {
    /// The code.
    pub status: MetaStatus,
    /// The rest of the line after the code (after the size for `VA`), leading space included
    /// and exactly as sent: `" c50 kmfoo Oabc"`, or empty. Read it with [`tokens`](Self::tokens).
    pub flags: Bytes,
    /// The data block of a `VA` reply.
    pub value: Option<Bytes>,
}

impl MetaReply {
    /// The returned flags as `(letter, token)`: `c50` is `(b'c', b"50")`, `W` is `(b'W', b"")`.
    pub fn tokens(&self) -> impl Iterator<Item = (u8, &[u8])> {
        self.flags.split(|&b| b == b' ').filter_map(|t| t.split_first().map(|(l, rest)| (*l, rest)))
    }

    /// The opaque token the server copied back, if any.
    pub fn opaque(&self) -> Option<&[u8]> {
        self.tokens().find(|(l, _)| *l == b'O').map(|(_, t)| t)
    }

    /// Appends the bytes memcached sends for this reply.
    pub fn encode(&self, buf: &mut impl BufMut) {
        buf.put_slice(self.status.code());
        if let Some(value) = &self.value {
            buf.put_u8(b' ');
            put_u64(buf, value.len() as u64);
        }
        buf.put_slice(&self.flags);
        buf.put_slice(b"\r\n");
        if let Some(value) = &self.value {
            buf.put_slice(value);
            buf.put_slice(b"\r\n");
        }
    }
}
