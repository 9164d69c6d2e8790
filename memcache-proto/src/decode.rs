//! The resumable, zero-copy reply decoder.
//!
//! [`Decoder::decode`] is handed the read buffer and the [`ReplyKind`] expected next. It
//! consumes a complete reply and returns it, or returns `Ok(None)` and remembers how far it
//! got, so that a reply arriving in many reads is never scanned twice:
//! - a line is searched for `\n` only in the bytes that arrived since the last search;
//! - once a `VALUE` header is read, the data block is waited for by length alone;
//! - the buffer grows with the bytes that arrive, never to a length the peer only announced:
//!   room for at most as much again as already arrived, or [`VALUE_CHUNK`], so a 25-byte
//!   header claiming 100 MB costs a chunk, not 100 MB, and a large value is grown to in a few
//!   doublings (which reuse the buffer's memory once it has reached the size of the values the
//!   connection sees);
//! - the bytes of one reply are counted against [`Limits::max_reply_len`], and an announced
//!   value that would pass it is refused before its data arrives;
//! - keys and data are split off the buffer as `Bytes`, sharing its memory.

use bytes::{Buf, Bytes, BytesMut};
use memchr::memchr;

use crate::response::{ReplyKind, Response, Stat, Value};
use crate::{Limits, ProtoError};

/// The most room reserved ahead of a value's bytes that have not arrived yet, when fewer than
/// this many have.
pub const VALUE_CHUNK: usize = 64 * 1024;

/// Incremental decoder for the replies of the classic text protocol.
#[derive(Debug, Default)]
pub struct Decoder {
    limits: Limits,
    /// Bytes at the front of the buffer already searched for `\n` in vain.
    scanned: usize,
    /// A `VALUE` header whose data block has not fully arrived.
    header: Option<Header>,
    values: Vec<Value>,
    stats: Vec<Stat>,
    /// Meta replies in progress (decoded in `meta::decode`).
    pub(crate) meta: crate::meta::decode::MetaState,
    /// Bytes of the reply being decoded consumed so far, against [`Limits::max_reply_len`].
    reply_len: usize,
    /// How many values the last retrieval reply held: the next one's list starts with room
    /// for as many, instead of regrowing (and moving) through every power of two on the way.
    last_values: usize,
}

#[derive(Debug)]
struct Header {
    key: Bytes,
    flags: u32,
    cas: Option<u64>,
    len: usize,
}

impl Decoder {
    /// A decoder enforcing `limits`.
    pub fn new(limits: Limits) -> Decoder {
        Decoder { limits, ..Decoder::default() }
    }

    /// The limits in force.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Decodes one reply of shape `kind` from the front of `buf`.
    ///
    /// Returns `Ok(None)` when `buf` does not yet hold the whole reply; call again with the
    /// same `kind` once more bytes are appended. Consumed bytes are removed from `buf`; the
    /// bytes of a partial reply may be consumed too (the decoder keeps what it parsed), so
    /// `buf` must not be changed except by appending.
    pub fn decode(&mut self, kind: ReplyKind, buf: &mut BytesMut) -> Result<Option<Response>, ProtoError> {
        match kind {
            ReplyKind::None => Ok(Some(Response::NoReply)),
            ReplyKind::Values => self.values(buf),
            ReplyKind::Stats => self.stats(buf),
            ReplyKind::Meta => self.meta(buf, false),
            ReplyKind::MetaBatch => self.meta(buf, true),
            _ => {
                let Some(nl) = self.find_line(buf)? else { return Ok(None) };
                let response = simple(kind, &buf[..nl - 1])?;
                buf.advance(nl + 1);
                Ok(Some(response))
            }
        }
    }

    /// Finds the end of the line at the front of `buf`: the index of its `\n`, which is
    /// preceded by `\r`.
    pub(crate) fn find_line(&mut self, buf: &[u8]) -> Result<Option<usize>, ProtoError> {
        let start = self.scanned.min(buf.len());
        let limit = self.limits.max_line_len;
        let Some(i) = memchr(b'\n', &buf[start..]) else {
            self.scanned = buf.len();
            return if buf.len() >= limit { Err(ProtoError::LineTooLong { limit }) } else { Ok(None) };
        };
        let nl = start + i;
        self.scanned = 0;
        if nl + 1 > limit {
            return Err(ProtoError::LineTooLong { limit });
        }
        if nl == 0 || buf[nl - 1] != b'\r' {
            return Err(ProtoError::unexpected(&buf[..nl]));
        }
        Ok(Some(nl))
    }

    fn values(&mut self, buf: &mut BytesMut) -> Result<Option<Response>, ProtoError> {
        loop {
            if let Some(header) = self.header.take()
                && !self.block(header, buf)?
            {
                return Ok(None);
            }
            let Some(nl) = self.find_line(buf)? else { return Ok(None) };
            self.count(nl + 1, 0)?;
            let line = &buf[..nl - 1];
            if line == b"END" {
                buf.advance(nl + 1);
                let values = std::mem::take(&mut self.values);
                self.last_values = values.len();
                return Ok(Some(self.end_reply(Response::Values(values))));
            }
            if let Some(rest) = line.strip_prefix(b"VALUE ") {
                let (key_len, flags, cas, len) = self.value_header(rest, line)?;
                // Refuse a value that would take the reply past its bound before it arrives.
                self.count(0, len.saturating_add(2))?;
                if self.whole_value(buf, nl, key_len, flags, cas, len)? {
                    continue;
                }
                let key = if buf.capacity() - (nl + 1) >= len.saturating_add(2) {
                    // The block fits where it will land: split the key off the buffer, no copy.
                    buf.advance(6);
                    let key = buf.split_to(key_len).freeze();
                    buf.advance(nl + 1 - 6 - key_len);
                    key
                } else {
                    // The buffer must grow for this block: a key sharing the buffer would make
                    // every growth a copy of what arrived; a key of its own lets it grow in place.
                    let key = Bytes::copy_from_slice(&buf[6..6 + key_len]);
                    buf.advance(nl + 1);
                    key
                };
                // The block usually arrived with its header: take it now.
                if !self.block(Header { key, flags, cas, len }, buf)? {
                    return Ok(None);
                }
                continue;
            }
            let response = error_line(line)?;
            buf.advance(nl + 1);
            self.values.clear();
            return Ok(Some(self.end_reply(response)));
        }
    }

    /// Takes a value whose header line (ending at `nl`) and data block have both arrived, the
    /// common case: the header is checked once, then the key and the data are split off and
    /// the rest stepped over. Returns `false`, consuming nothing, when the block is not all
    /// there yet.
    fn whole_value(
        &mut self,
        buf: &mut BytesMut,
        nl: usize,
        key_len: usize,
        flags: u32,
        cas: Option<u64>,
        len: usize,
    ) -> Result<bool, ProtoError> {
        let data_at = nl + 1;
        let Some(end) = data_at.checked_add(len).filter(|end| end.saturating_add(2) <= buf.len()) else {
            return Ok(false);
        };
        if &buf[end..end + 2] != b"\r\n" {
            return Err(ProtoError::BadValueTerminator);
        }
        if self.values.capacity() == 0 {
            self.values.reserve(self.last_values.max(4));
        }
        // Split the key and the data off in turn, stepping over the rest: each split is one
        // count on the shared buffer, the least a `Bytes` of it can cost.
        buf.advance(6);
        let key = buf.split_to(key_len).freeze();
        buf.advance(data_at - 6 - key_len);
        let data = buf.split_to(len).freeze();
        buf.advance(2);
        self.values.push(Value { key, flags, cas, data });
        Ok(true)
    }

    /// Takes `header`'s data block off the front of `buf` as a value, or, when it has not
    /// fully arrived, keeps `header`, makes room for the block and returns `false`.
    fn block(&mut self, header: Header, buf: &mut BytesMut) -> Result<bool, ProtoError> {
        // `len` is bounded by `max_value_len`; saturate in case that is `usize::MAX`.
        let need = header.len.saturating_add(2);
        if buf.len() < need {
            grow_for(buf, need);
            self.header = Some(header);
            return Ok(false);
        }
        if &buf[header.len..need] != b"\r\n" {
            return Err(ProtoError::BadValueTerminator);
        }
        let data = buf.split_to(header.len).freeze();
        buf.advance(2);
        if self.values.capacity() == 0 {
            self.values.reserve(self.last_values.max(4));
        }
        self.values.push(Value { key: header.key, flags: header.flags, cas: header.cas, data });
        Ok(true)
    }

    /// Counts `line` bytes and an announced `data` block against the reply's bound.
    pub(crate) fn count(&mut self, line: usize, data: usize) -> Result<(), ProtoError> {
        let limit = self.limits.max_reply_len;
        self.reply_len = self.reply_len.saturating_add(line).saturating_add(data);
        if self.reply_len > limit {
            return Err(ProtoError::ReplyTooLarge { limit });
        }
        Ok(())
    }

    /// A multi-line reply is complete: the next one starts its count from zero.
    pub(crate) fn end_reply(&mut self, response: Response) -> Response {
        self.reply_len = 0;
        response
    }

    /// Parses `<key> <flags> <bytes> [<cas>]` into the key's length, flags, CAS and length.
    fn value_header(&self, rest: &[u8], line: &[u8]) -> Result<(usize, u32, Option<u64>, usize), ProtoError> {
        let bad = || ProtoError::unexpected(line);
        if self.values.len() >= self.limits.max_values {
            return Err(ProtoError::TooManyValues { limit: self.limits.max_values });
        }
        let key_len = memchr(b' ', rest).filter(|&n| n > 0).ok_or_else(bad)?;
        let mut fields = Numbers(&rest[key_len..]);
        let flags = fields.next().and_then(|f| u32::try_from(f).ok()).ok_or_else(bad)?;
        let len = fields.next().ok_or_else(bad)?;
        let cas = if fields.0.is_empty() { None } else { Some(fields.next().ok_or_else(bad)?) };
        if !fields.0.is_empty() {
            return Err(bad());
        }
        let limit = self.limits.max_value_len;
        match usize::try_from(len) {
            Ok(n) if n <= limit => Ok((key_len, flags, cas, n)),
            _ => Err(ProtoError::ValueTooLarge { len, limit }),
        }
    }

    fn stats(&mut self, buf: &mut BytesMut) -> Result<Option<Response>, ProtoError> {
        loop {
            let Some(nl) = self.find_line(buf)? else { return Ok(None) };
            self.count(nl + 1, 0)?;
            let line = &buf[..nl - 1];
            let response = if line == b"END" {
                Some(Response::Stats(std::mem::take(&mut self.stats)))
            } else if line == b"RESET" && self.stats.is_empty() {
                Some(Response::Reset)
            } else if let Some(stat) = parse_stat(line) {
                if self.stats.len() >= self.limits.max_values {
                    return Err(ProtoError::TooManyValues { limit: self.limits.max_values });
                }
                self.stats.push(stat);
                None
            } else {
                self.stats.clear();
                Some(error_line(line)?)
            };
            buf.advance(nl + 1);
            if let Some(response) = response {
                return Ok(Some(self.end_reply(response)));
            }
        }
    }
}

/// Makes room in `buf` for more of a value block that ends `need` bytes from its front: at most
/// as much again as has arrived, or [`VALUE_CHUNK`], never the whole announced length at once.
pub(crate) fn grow_for(buf: &mut BytesMut, need: usize) {
    let missing = need - buf.len();
    let spare = buf.capacity() - buf.len();
    if spare < missing {
        buf.reserve(missing.min(buf.len().max(VALUE_CHUNK)));
    }
}

fn parse_stat(line: &[u8]) -> Option<Stat> {
    let (item, rest) = if let Some(rest) = line.strip_prefix(b"STAT ") {
        (false, rest)
    } else {
        (true, line.strip_prefix(b"ITEM ")?)
    };
    let (name, value) = match memchr(b' ', rest) {
        Some(sp) => (&rest[..sp], &rest[sp + 1..]),
        None => (rest, &b""[..]),
    };
    Some(Stat { item, name: Bytes::copy_from_slice(name), value: Bytes::copy_from_slice(value) })
}

/// A one-line reply.
fn simple(kind: ReplyKind, line: &[u8]) -> Result<Response, ProtoError> {
    let response = match (kind, line) {
        (ReplyKind::Store, b"STORED") => Response::Stored,
        (ReplyKind::Store, b"NOT_STORED") => Response::NotStored,
        (ReplyKind::Store, b"EXISTS") => Response::Exists,
        (ReplyKind::Store | ReplyKind::Delete | ReplyKind::Arith | ReplyKind::Touch, b"NOT_FOUND") => {
            Response::NotFound
        }
        (ReplyKind::Delete, b"DELETED") => Response::Deleted,
        (ReplyKind::Touch, b"TOUCHED") => Response::Touched,
        (ReplyKind::Ok, b"OK") => Response::Ok,
        (ReplyKind::Arith, [b'0'..=b'9', ..]) => {
            Response::Number(parse_counter(line).ok_or_else(|| ProtoError::unexpected(line))?)
        }
        (ReplyKind::Version, _) if line.starts_with(b"VERSION ") => {
            Response::Version(Bytes::copy_from_slice(&line[8..]))
        }
        _ => return error_line(line),
    };
    Ok(response)
}

/// `ERROR`, `CLIENT_ERROR <msg>` or `SERVER_ERROR <msg>`, which may stand in place of any
/// reply; anything else is a protocol error.
pub(crate) fn error_line(line: &[u8]) -> Result<Response, ProtoError> {
    if line == b"ERROR" || line.starts_with(b"ERROR ") {
        Ok(Response::Error)
    } else if let Some(msg) = line.strip_prefix(b"CLIENT_ERROR ") {
        Ok(Response::ClientError(Bytes::copy_from_slice(msg)))
    } else if let Some(msg) = line.strip_prefix(b"SERVER_ERROR ") {
        Ok(Response::ServerError(Bytes::copy_from_slice(msg)))
    } else {
        Err(ProtoError::unexpected(line))
    }
}

/// A counter: digits, possibly followed by the spaces memcached pads in-place decrements with.
fn parse_counter(line: &[u8]) -> Option<u64> {
    let end = line.iter().rposition(|&b| b != b' ').map_or(0, |i| i + 1);
    parse_u64(&line[..end])
}

/// The numbers after a `VALUE` line's key, each preceded by one space.
struct Numbers<'a>(&'a [u8]);

impl Numbers<'_> {
    /// The next ` <digits>` (1 to 20 digits, no overflow, as [`parse_u64`]), read in one
    /// pass: scanned and converted together; `None` if what follows is not one.
    #[inline]
    fn next(&mut self) -> Option<u64> {
        let rest = self.0.strip_prefix(b" ")?;
        let mut n = 0u64;
        let mut digits = 0;
        for &b in rest {
            let d = b.wrapping_sub(b'0');
            if d > 9 {
                break;
            }
            n = n.checked_mul(10)?.checked_add(u64::from(d))?;
            digits += 1;
        }
        if digits == 0 || digits > 20 {
            return None;
        }
        self.0 = rest.get(digits..)?;
        Some(n)
    }
}

/// Strict decimal: 1 to 20 digits, no sign, no overflow.
pub(crate) fn parse_u64(s: &[u8]) -> Option<u64> {
    if s.is_empty() || s.len() > 20 {
        return None;
    }
    if s.len() < 20 {
        // 19 digits cannot overflow a u64: no checked arithmetic per digit.
        return s.iter().try_fold(0u64, |n, &b| {
            let d = b.wrapping_sub(b'0');
            (d <= 9).then(|| n * 10 + u64::from(d))
        });
    }
    s.iter().try_fold(0u64, |n, &b| {
        let d = b.wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        n.checked_mul(10)?.checked_add(u64::from(d))
    })
}
