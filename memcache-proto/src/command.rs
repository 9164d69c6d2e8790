//! Commands of memcached's text protocol and their encoding.
//!
//! A [`Command`] holds validated [`Key`]s, so encoding cannot fail: it only appends bytes.

use bytes::{BufMut, Bytes};

use crate::meta::MetaRequest;
use crate::response::ReplyKind;
use crate::{Error, Key, Keys};

/// Where a storage command puts its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreVerb {
    /// `set`: store unconditionally.
    Set,
    /// `add`: store only if the key is absent.
    Add,
    /// `replace`: store only if the key is present.
    Replace,
    /// `append`: add the data after the existing value (flags and expiration are ignored).
    Append,
    /// `prepend`: add the data before the existing value.
    Prepend,
    /// `cas <unique>`: store only if the item's CAS token is still `unique`.
    Cas(u64),
}

/// Which way `incr`/`decr` moves a counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArithVerb {
    /// `incr`: add, wrapping at 2^64.
    Incr,
    /// `decr`: subtract, clamping at 0.
    Decr,
}

/// The argument of `stats <arg>`: printable ASCII and spaces, no line breaks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatsArg(Bytes);

impl StatsArg {
    /// Validates a `stats` argument such as `settings`, `items` or `cachedump 1 10`.
    pub fn new(arg: &str) -> Result<StatsArg, Error> {
        let ok = !arg.is_empty() && arg.len() <= 1024 && arg.bytes().all(|b| (b' '..0x7f).contains(&b));
        if !ok {
            return Err(Error::MalformedKey(format!("bad stats argument {arg:?}")));
        }
        Ok(StatsArg(Bytes::copy_from_slice(arg.as_bytes())))
    }

    /// The argument's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

/// One request of the classic text protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Command {
    /// `get`, `gets` (`cas`), `gat`, `gats` (`touch: Some(exptime)`): retrieve values.
    Get {
        /// Keys to read; duplicates are answered once each.
        keys: Keys,
        /// Ask for CAS tokens (`gets`/`gats`).
        cas: bool,
        /// Also update the expiration (`gat`/`gats`).
        touch: Option<i32>,
    },
    /// `set`, `add`, `replace`, `append`, `prepend`, `cas`.
    Store {
        /// Which storage command.
        verb: StoreVerb,
        /// The key.
        key: Key,
        /// Opaque flags.
        flags: u32,
        /// Expiration time.
        exptime: i32,
        /// The data block.
        value: Bytes,
        /// Ask the server not to answer.
        noreply: bool,
    },
    /// `delete <key> [<hold>]`. memcached 1.6 accepts only a hold of 0.
    Delete {
        /// The key.
        key: Key,
        /// The legacy hold time in seconds, sent when present.
        hold: Option<u32>,
        /// Ask the server not to answer.
        noreply: bool,
    },
    /// `incr` / `decr`.
    Arith {
        /// Which direction.
        verb: ArithVerb,
        /// The key.
        key: Key,
        /// The amount.
        delta: u64,
        /// Ask the server not to answer.
        noreply: bool,
    },
    /// `touch <key> <exptime>`.
    Touch {
        /// The key.
        key: Key,
        /// The new expiration.
        exptime: i32,
        /// Ask the server not to answer.
        noreply: bool,
    },
    /// `flush_all [<delay>]`.
    FlushAll {
        /// Seconds until the flush takes effect.
        delay: Option<i32>,
        /// Ask the server not to answer.
        noreply: bool,
    },
    /// `version`.
    Version,
    /// `stats [<arg>]`.
    Stats {
        /// The statistics group, e.g. `settings`.
        arg: Option<StatsArg>,
    },
    /// `verbosity <level>`.
    Verbosity {
        /// The level.
        level: u32,
        /// Ask the server not to answer.
        noreply: bool,
    },
    /// `quit`: the server closes the connection without answering.
    Quit,
    /// One meta request (`mg`, `ms`, `md`, `ma`, `me`), answered by one meta reply.
    Meta(MetaRequest),
    /// A quiet batch of meta requests: each sent with its index as opaque (and `q` where
    /// nothing asked for is lost), then `mn`. Answered by the replies up to `MN`.
    MetaBatch(Vec<MetaRequest>),
}

/// Values at least this long are handed to the transport as their own `Bytes` instead of
/// being copied into the send buffer.
pub(crate) const ZERO_COPY_VALUE: usize = 16 * 1024;

impl Command {
    /// The shape of the reply this command gets, or [`ReplyKind::None`] when it gets none.
    pub fn reply_kind(&self) -> ReplyKind {
        match self {
            Command::Get { .. } => ReplyKind::Values,
            Command::Store { noreply: false, .. } => ReplyKind::Store,
            Command::Delete { noreply: false, .. } => ReplyKind::Delete,
            Command::Arith { noreply: false, .. } => ReplyKind::Arith,
            Command::Touch { noreply: false, .. } => ReplyKind::Touch,
            Command::FlushAll { noreply: false, .. } | Command::Verbosity { noreply: false, .. } => {
                ReplyKind::Ok
            }
            Command::Version => ReplyKind::Version,
            Command::Stats { .. } => ReplyKind::Stats,
            Command::Meta(_) => ReplyKind::Meta,
            Command::MetaBatch(_) => ReplyKind::MetaBatch,
            _ => ReplyKind::None,
        }
    }

    /// The command's name on the wire (`gets`, `set`, `incr`, ...), for logs and metrics.
    pub fn name(&self) -> &'static str {
        match self {
            Command::Get { cas: false, touch: None, .. } => "get",
            Command::Get { cas: true, touch: None, .. } => "gets",
            Command::Get { cas: false, touch: Some(_), .. } => "gat",
            Command::Get { cas: true, touch: Some(_), .. } => "gats",
            Command::Store { verb, .. } => std::str::from_utf8(verb.name()).unwrap_or("store"),
            Command::Delete { .. } => "delete",
            Command::Arith { verb: ArithVerb::Incr, .. } => "incr",
            Command::Arith { verb: ArithVerb::Decr, .. } => "decr",
            Command::Touch { .. } => "touch",
            Command::FlushAll { .. } => "flush_all",
            Command::Version => "version",
            Command::Stats { .. } => "stats",
            Command::Verbosity { .. } => "verbosity",
            Command::Quit => "quit",
            #[allow(unreachable_patterns)]
            _ => "other",
        }
    }

    /// How many keys the command carries.
    pub fn key_count(&self) -> usize {
        match self {
            Command::Get { keys, .. } => keys.len(),
            Command::Store { .. }
            | Command::Delete { .. }
            | Command::Arith { .. }
            | Command::Touch { .. } => 1,
            _ => 0,
        }
    }

    /// The length of the command's data block (zero for commands without one).
    pub fn value_len(&self) -> usize {
        match self {
            Command::Store { value, .. } => value.len(),
            _ => 0,
        }
    }

    /// Appends the whole command, data block included, to `buf`.
    pub fn encode(&self, buf: &mut impl BufMut) {
        if let Some(value) = self.encode_head(buf) {
            buf.put_slice(value);
            buf.put_slice(b"\r\n");
        }
    }

    /// Appends the command line; returns the data block that must follow it (then `\r\n`).
    pub(crate) fn encode_head(&self, buf: &mut impl BufMut) -> Option<&Bytes> {
        match self {
            Command::Get { keys, cas, touch } => {
                buf.put_slice(match (cas, touch) {
                    (false, None) => b"get",
                    (true, None) => b"gets",
                    (false, Some(_)) => b"gat",
                    (true, Some(_)) => b"gats",
                });
                if let Some(t) = touch {
                    put_sp_i64(buf, i64::from(*t));
                }
                keys.put_wire(buf);
            }
            Command::Store { verb, key, flags, exptime, value, noreply } => {
                buf.put_slice(verb.name());
                put_key(buf, key);
                put_sp_u64(buf, u64::from(*flags));
                put_sp_i64(buf, i64::from(*exptime));
                put_sp_u64(buf, value.len() as u64);
                if let StoreVerb::Cas(unique) = verb {
                    put_sp_u64(buf, *unique);
                }
                put_end(buf, *noreply);
                return Some(value);
            }
            Command::Delete { key, hold, noreply } => {
                buf.put_slice(b"delete");
                put_key(buf, key);
                if let Some(h) = hold {
                    put_sp_u64(buf, u64::from(*h));
                }
                put_end(buf, *noreply);
                return None;
            }
            Command::Arith { verb, key, delta, noreply } => {
                buf.put_slice(match verb {
                    ArithVerb::Incr => b"incr",
                    ArithVerb::Decr => b"decr",
                });
                put_key(buf, key);
                put_sp_u64(buf, *delta);
                put_end(buf, *noreply);
                return None;
            }
            Command::Touch { key, exptime, noreply } => {
                buf.put_slice(b"touch");
                put_key(buf, key);
                put_sp_i64(buf, i64::from(*exptime));
                put_end(buf, *noreply);
                return None;
            }
            Command::FlushAll { delay, noreply } => {
                buf.put_slice(b"flush_all");
                if let Some(d) = delay {
                    put_sp_i64(buf, i64::from(*d));
                }
                put_end(buf, *noreply);
                return None;
            }
            Command::Version => buf.put_slice(b"version"),
            Command::Stats { arg } => {
                buf.put_slice(b"stats");
                if let Some(arg) = arg {
                    buf.put_u8(b' ');
                    buf.put_slice(arg.as_bytes());
                }
            }
            Command::Verbosity { level, noreply } => {
                buf.put_slice(b"verbosity");
                put_sp_u64(buf, u64::from(*level));
                put_end(buf, *noreply);
                return None;
            }
            Command::Quit => buf.put_slice(b"quit"),
            Command::Meta(request) => return request.encode_head(buf, None),
            Command::MetaBatch(requests) => {
                // Values are copied into the batch: it goes out as one write.
                crate::meta::encode_batch(requests, buf);
                return None;
            }
        }
        buf.put_slice(b"\r\n");
        None
    }
}

impl StoreVerb {
    pub(crate) fn name(self) -> &'static [u8] {
        match self {
            StoreVerb::Set => b"set",
            StoreVerb::Add => b"add",
            StoreVerb::Replace => b"replace",
            StoreVerb::Append => b"append",
            StoreVerb::Prepend => b"prepend",
            StoreVerb::Cas(_) => b"cas",
        }
    }
}

fn put_key(buf: &mut impl BufMut, key: &Key) {
    buf.put_u8(b' ');
    buf.put_slice(key.as_bytes());
}

fn put_end(buf: &mut impl BufMut, noreply: bool) {
    buf.put_slice(if noreply { b" noreply\r\n" } else { b"\r\n" });
}

/// Appends a space and the decimal digits of `n`, without allocating.
pub(crate) fn put_sp_u64(buf: &mut impl BufMut, mut n: u64) {
    let mut digits = [0u8; 21];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    i -= 1;
    digits[i] = b' ';
    buf.put_slice(&digits[i..]);
}

pub(crate) fn put_sp_i64(buf: &mut impl BufMut, n: i64) {
    if n < 0 {
        buf.put_slice(b" -");
        let mut tmp = [0u8; 21];
        let mut w = &mut tmp[..];
        put_sp_u64(&mut w, n.unsigned_abs());
        let left = w.len();
        buf.put_slice(&tmp[1..tmp.len() - left]);
    } else {
        put_sp_u64(buf, n as u64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(c: Command) -> String {
        let mut v = Vec::new();
        c.encode(&mut v);
        String::from_utf8(v).expect("ascii")
    }

    fn key(k: &str) -> Key {
        Key::copy_from(k.as_bytes()).expect("valid")
    }

    #[test]
    fn numbers() {
        let cmd = |exptime| Command::Touch { key: key("k"), exptime, noreply: false };
        assert_eq!(enc(cmd(0)), "touch k 0\r\n");
        assert_eq!(enc(cmd(-1)), "touch k -1\r\n");
        assert_eq!(enc(cmd(i32::MIN)), "touch k -2147483648\r\n");
        assert_eq!(enc(cmd(i32::MAX)), "touch k 2147483647\r\n");
        let incr = Command::Arith { verb: ArithVerb::Incr, key: key("n"), delta: u64::MAX, noreply: true };
        assert_eq!(enc(incr), "incr n 18446744073709551615 noreply\r\n");
    }

    #[test]
    fn store_and_get() {
        let c = Command::Store {
            verb: StoreVerb::Cas(16),
            key: key("foo"),
            flags: 7,
            exptime: 0,
            value: Bytes::from_static(b"qux"),
            noreply: false,
        };
        assert_eq!(enc(c), "cas foo 7 0 3 16\r\nqux\r\n");
        let g = Command::Get { keys: vec![key("a"), key("b")].into(), cas: true, touch: Some(10) };
        assert_eq!(enc(g), "gats 10 a b\r\n");
    }
}
