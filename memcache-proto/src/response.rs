//! Replies of memcached's text protocol, as frames.

use bytes::{BufMut, Bytes};

use crate::meta::MetaReply;

/// The shape of reply a request gets. The text protocol cannot be parsed without it (a line
/// `NOT_FOUND` ends a `delete` reply, a number ends an `incr` reply, `VALUE` lines need `END`),
/// so the decoder is always told which one to expect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ReplyKind {
    /// No reply at all (`noreply`, `quit`).
    None,
    /// `VALUE` blocks up to `END` (`get`, `gets`, `gat`, `gats`).
    Values,
    /// `STORED`, `NOT_STORED`, `EXISTS` or `NOT_FOUND`.
    Store,
    /// `DELETED` or `NOT_FOUND`.
    Delete,
    /// A decimal number or `NOT_FOUND` (`incr`, `decr`).
    Arith,
    /// `TOUCHED` or `NOT_FOUND`.
    Touch,
    /// `OK` (`flush_all`, `verbosity`).
    Ok,
    /// `VERSION <version>`.
    Version,
    /// `STAT` (or `ITEM`) lines up to `END`, or `RESET`.
    Stats,
    /// One meta reply (`VA`, `HD`, `EN`, `NS`, `EX`, `NF`, `MN`, `ME`), which says itself
    /// whether a data block follows.
    Meta,
    /// The meta replies of a quiet batch, up to the `MN` that ends it.
    MetaBatch,
}

/// One value of a retrieval reply. `key` and `data` share the read buffer: no copy is made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Value {
    /// The key as the server sent it.
    pub key: Bytes,
    /// The item's flags.
    pub flags: u32,
    /// The CAS token, present for `gets` and `gats`.
    pub cas: Option<u64>,
    /// The data block.
    pub data: Bytes,
}

/// One line of a `stats` reply: `STAT <name> <value>` (or `ITEM <name> <rest>` for
/// `stats cachedump`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stat {
    /// `true` for an `ITEM` line, `false` for a `STAT` line.
    pub item: bool,
    /// The statistic's name.
    pub name: Bytes,
    /// The rest of the line after the name (may contain spaces, may be empty).
    pub value: Bytes,
}

/// A complete reply to one request.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Response {
    /// The values found, in the server's order, ended by `END` (empty: all missed).
    Values(Vec<Value>),
    /// `STORED`
    Stored,
    /// `NOT_STORED`
    NotStored,
    /// `EXISTS`
    Exists,
    /// `NOT_FOUND`
    NotFound,
    /// `DELETED`
    Deleted,
    /// `TOUCHED`
    Touched,
    /// `OK`
    Ok,
    /// `RESET` (answer to `stats reset`).
    Reset,
    /// The new value of an `incr`/`decr` counter.
    Number(u64),
    /// `VERSION <version>`.
    Version(Bytes),
    /// `STAT` lines, ended by `END`.
    Stats(Vec<Stat>),
    /// `ERROR`: the server did not recognise the command.
    Error,
    /// `CLIENT_ERROR <message>`.
    ClientError(Bytes),
    /// `SERVER_ERROR <message>`.
    ServerError(Bytes),
    /// The request asked for no reply; this marks its place in the pipeline.
    NoReply,
    /// One meta reply.
    Meta(MetaReply),
    /// The replies of a quiet meta batch in the server's order: [`Response::Meta`] frames and
    /// error lines (which carry no opaque). The `MN` that ended the batch is not included.
    MetaBatch(Vec<Response>),
}

impl Response {
    /// Appends the bytes memcached sends for this reply. The decoder reads them back to an
    /// equal `Response`; fault-injecting test servers use this to speak the protocol.
    pub fn encode(&self, buf: &mut impl BufMut) {
        let word: &[u8] = match self {
            Response::Values(values) => {
                for v in values {
                    encode_value(v, buf);
                }
                b"END"
            }
            Response::Stats(stats) => {
                for s in stats {
                    buf.put_slice(if s.item { b"ITEM " } else { b"STAT " });
                    buf.put_slice(&s.name);
                    buf.put_u8(b' ');
                    buf.put_slice(&s.value);
                    buf.put_slice(b"\r\n");
                }
                b"END"
            }
            Response::Number(n) => {
                buf.put_slice(n.to_string().as_bytes());
                b""
            }
            Response::Version(v) => {
                buf.put_slice(b"VERSION ");
                buf.put_slice(v);
                b""
            }
            Response::ClientError(m) => return put_message(buf, b"CLIENT_ERROR", m),
            Response::ServerError(m) => return put_message(buf, b"SERVER_ERROR", m),
            Response::NoReply => return,
            Response::Meta(reply) => return reply.encode(buf),
            Response::MetaBatch(frames) => {
                for f in frames {
                    f.encode(buf);
                }
                b"MN"
            }
            Response::Stored => b"STORED",
            Response::NotStored => b"NOT_STORED",
            Response::Exists => b"EXISTS",
            Response::NotFound => b"NOT_FOUND",
            Response::Deleted => b"DELETED",
            Response::Touched => b"TOUCHED",
            Response::Ok => b"OK",
            Response::Reset => b"RESET",
            Response::Error => b"ERROR",
        };
        buf.put_slice(word);
        buf.put_slice(b"\r\n");
    }
}

fn encode_value(v: &Value, buf: &mut impl BufMut) {
    buf.put_slice(b"VALUE ");
    buf.put_slice(&v.key);
    let mut head = format!(" {} {}", v.flags, v.data.len());
    if let Some(cas) = v.cas {
        head.push_str(&format!(" {cas}"));
    }
    buf.put_slice(head.as_bytes());
    buf.put_slice(b"\r\n");
    buf.put_slice(&v.data);
    buf.put_slice(b"\r\n");
}

fn put_message(buf: &mut impl BufMut, word: &[u8], message: &[u8]) {
    buf.put_slice(word);
    buf.put_u8(b' ');
    buf.put_slice(message);
    buf.put_slice(b"\r\n");
}
