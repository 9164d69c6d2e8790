//! Turning fuzzer bytes into valid protocol values: reply kinds, small limits, keys, commands
//! and replies. Everything generated here is valid by construction (keys obey memcached's
//! rules, reply fields hold no line break), so the targets can demand exact round trips.

use arbitrary::{Arbitrary, Result, Unstructured};
use bytes::Bytes;
use memcache_proto::command::{ArithVerb, StatsArg, StoreVerb};
use memcache_proto::meta::{MetaReply, MetaStatus};
use memcache_proto::response::{Stat, Value};
use memcache_proto::{Command, Key, Limits, ReplyKind, Response};

/// Every reply shape, in the order [`kind`] maps bytes to them.
pub const KINDS: [ReplyKind; 11] = [
    ReplyKind::None,
    ReplyKind::Values,
    ReplyKind::Store,
    ReplyKind::Delete,
    ReplyKind::Arith,
    ReplyKind::Touch,
    ReplyKind::Ok,
    ReplyKind::Version,
    ReplyKind::Stats,
    ReplyKind::Meta,
    ReplyKind::MetaBatch,
];

/// The reply kind a byte selects.
pub fn kind(b: u8) -> ReplyKind {
    KINDS[usize::from(b) % KINDS.len()]
}

/// The byte that selects `kind` (inverse of [`kind`]).
pub fn kind_byte(kind: ReplyKind) -> u8 {
    KINDS.iter().position(|&k| k == kind).and_then(|i| u8::try_from(i).ok()).unwrap_or(0)
}

/// Small limits from three bytes, so that the limit paths are reached and any reservation
/// beyond them is noticed: lines of 1 to 2,041 bytes, values of 0 to 16,320 bytes, 0 to 255
/// values per reply. `0xff` in every byte gives limits large enough for the seed replies.
pub fn limits(line: u8, value: u8, values: u8) -> Limits {
    Limits::DEFAULT
        .with_max_line_len(1 + usize::from(line) * 8)
        .with_max_value_len(usize::from(value) * 64)
        .with_max_values(usize::from(values))
}

/// Whether `response` is a reply of shape `kind` (error lines fit every kind but `None`).
pub fn fits(kind: ReplyKind, response: &Response) -> bool {
    use Response as R;
    if matches!(response, R::Error | R::ClientError(_) | R::ServerError(_)) {
        return kind != ReplyKind::None;
    }
    match kind {
        ReplyKind::None => matches!(response, R::NoReply),
        ReplyKind::Values => matches!(response, R::Values(_)),
        ReplyKind::Store => matches!(response, R::Stored | R::NotStored | R::Exists | R::NotFound),
        ReplyKind::Delete => matches!(response, R::Deleted | R::NotFound),
        ReplyKind::Arith => matches!(response, R::Number(_) | R::NotFound),
        ReplyKind::Touch => matches!(response, R::Touched | R::NotFound),
        ReplyKind::Ok => matches!(response, R::Ok),
        ReplyKind::Version => matches!(response, R::Version(_)),
        ReplyKind::Stats => matches!(response, R::Stats(_) | R::Reset),
        ReplyKind::Meta => matches!(response, R::Meta(_)),
        ReplyKind::MetaBatch => matches!(response, R::MetaBatch(_)),
        _ => false,
    }
}

/// Maps any byte onto the 222 bytes a key may hold (`0x21..=0x7e`, `0x80..=0xff`).
fn key_byte(b: u8) -> u8 {
    let i = b % 222;
    if i < 94 { 0x21 + i } else { 0x80 + (i - 94) }
}

/// A valid key: usually short, sometimes up to the 250-byte maximum.
pub fn key(u: &mut Unstructured<'_>) -> Result<Key> {
    let len = if u.ratio(1u8, 16)? { u.int_in_range(1..=250usize)? } else { u.int_in_range(1..=12usize)? };
    let mut bytes = Vec::with_capacity(len);
    for _ in 0..len {
        bytes.push(key_byte(u.arbitrary()?));
    }
    Ok(Key::new(bytes).expect("generated keys obey memcached's rules"))
}

/// Bytes without `\n` (or also without ` ` when `no_space`), for single-line fields.
fn line_bytes(u: &mut Unstructured<'_>, max: usize, no_space: bool) -> Result<Bytes> {
    let len = u.int_in_range(0..=max)?;
    let mut out = Vec::with_capacity(len);
    for _ in 0..len {
        let b: u8 = u.arbitrary()?;
        out.push(if b == b'\n' || (no_space && b == b' ') { b'_' } else { b });
    }
    Ok(out.into())
}

/// A data block: any bytes (line breaks included), now and then a large one that crosses the
/// connection's zero-copy threshold (16 KiB).
fn data(u: &mut Unstructured<'_>) -> Result<Bytes> {
    if u.ratio(1u8, 32)? {
        let len = u.int_in_range(16_000..=17_000usize)?;
        return Ok(vec![u.arbitrary::<u8>()?; len].into());
    }
    let len = u.int_in_range(0..=48usize)?;
    Ok(u.bytes(len.min(u.len()))?.to_vec().into())
}

fn i32_(u: &mut Unstructured<'_>) -> Result<i32> {
    if u.ratio(1u8, 4)? { u.choose(&[0, -1, 1, i32::MIN, i32::MAX]).copied() } else { u.arbitrary() }
}

fn u32_(u: &mut Unstructured<'_>) -> Result<u32> {
    if u.ratio(1u8, 4)? { u.choose(&[0, 1, u32::MAX]).copied() } else { u.arbitrary() }
}

fn u64_(u: &mut Unstructured<'_>) -> Result<u64> {
    if u.ratio(1u8, 4)? { u.choose(&[0, 1, u64::MAX]).copied() } else { u.arbitrary() }
}

fn opt<T>(u: &mut Unstructured<'_>, f: impl FnOnce(&mut Unstructured<'_>) -> Result<T>) -> Result<Option<T>> {
    if u.arbitrary()? { f(u).map(Some) } else { Ok(None) }
}

/// Which command [`command`] builds.
#[derive(Debug, Clone, Copy, Arbitrary)]
enum Verb {
    Get,
    Store,
    Delete,
    Arith,
    Touch,
    FlushAll,
    Version,
    Stats,
    Verbosity,
    Quit,
}

/// A valid command of any kind.
pub fn command(u: &mut Unstructured<'_>) -> Result<Command> {
    Ok(match u.arbitrary::<Verb>()? {
        Verb::Get => {
            let n = if u.ratio(1u8, 8)? { u.int_in_range(1..=16usize)? } else { u.int_in_range(1..=3usize)? };
            let keys = (0..n).map(|_| key(u)).collect::<Result<_>>()?;
            Command::Get { keys, cas: u.arbitrary()?, touch: opt(u, i32_)? }
        }
        Verb::Store => {
            let verb = match u.int_in_range(0..=5u8)? {
                0 => StoreVerb::Set,
                1 => StoreVerb::Add,
                2 => StoreVerb::Replace,
                3 => StoreVerb::Append,
                4 => StoreVerb::Prepend,
                _ => StoreVerb::Cas(u64_(u)?),
            };
            let (key, flags, exptime) = (key(u)?, u32_(u)?, i32_(u)?);
            Command::Store { verb, key, flags, exptime, value: data(u)?, noreply: u.arbitrary()? }
        }
        Verb::Delete => Command::Delete { key: key(u)?, hold: opt(u, u32_)?, noreply: u.arbitrary()? },
        Verb::Arith => {
            let verb = if u.arbitrary()? { ArithVerb::Incr } else { ArithVerb::Decr };
            Command::Arith { verb, key: key(u)?, delta: u64_(u)?, noreply: u.arbitrary()? }
        }
        Verb::Touch => Command::Touch { key: key(u)?, exptime: i32_(u)?, noreply: u.arbitrary()? },
        Verb::FlushAll => Command::FlushAll { delay: opt(u, i32_)?, noreply: u.arbitrary()? },
        Verb::Version => Command::Version,
        Verb::Stats => Command::Stats { arg: opt(u, stats_arg)? },
        Verb::Verbosity => Command::Verbosity { level: u32_(u)?, noreply: u.arbitrary()? },
        Verb::Quit => Command::Quit,
    })
}

/// A `stats` argument: 1 to 24 printable ASCII bytes or spaces.
fn stats_arg(u: &mut Unstructured<'_>) -> Result<StatsArg> {
    let len = u.int_in_range(1..=24usize)?;
    let mut s = String::with_capacity(len);
    for _ in 0..len {
        s.push(char::from(0x20 + u.arbitrary::<u8>()? % 95));
    }
    Ok(StatsArg::new(&s).expect("printable stats arguments are accepted"))
}

/// A valid reply of shape `kind`, as memcached could send it (error lines included).
pub fn response(u: &mut Unstructured<'_>, kind: ReplyKind) -> Result<Response> {
    if kind == ReplyKind::None {
        return Ok(Response::NoReply);
    }
    if kind == ReplyKind::MetaBatch {
        let n = u.int_in_range(0..=6usize)?;
        let frames = (0..n).map(|_| response(u, ReplyKind::Meta)).collect::<Result<Vec<_>>>()?;
        // `MN` ends the batch, so it is never one of its frames.
        let mn = |f: &Response| matches!(f, Response::Meta(r) if r.status == MetaStatus::NoOp);
        return Ok(Response::MetaBatch(frames.into_iter().filter(|f| !mn(f)).collect()));
    }
    if u.ratio(1u8, 8)? {
        return Ok(match u.int_in_range(0..=2u8)? {
            0 => Response::Error,
            1 => Response::ClientError(line_bytes(u, 40, false)?),
            _ => Response::ServerError(line_bytes(u, 40, false)?),
        });
    }
    let not_found = u.arbitrary::<bool>()?;
    Ok(match kind {
        ReplyKind::Values => {
            let n = u.int_in_range(0..=4usize)?;
            let mut values = Vec::with_capacity(n);
            for _ in 0..n {
                let key = key(u)?.to_bytes();
                let (flags, cas) = (u32_(u)?, opt(u, u64_)?);
                values.push(Value { key, flags, cas, data: data(u)? });
            }
            Response::Values(values)
        }
        ReplyKind::Store => {
            u.choose(&[Response::Stored, Response::NotStored, Response::Exists, Response::NotFound])?.clone()
        }
        ReplyKind::Delete if not_found => Response::NotFound,
        ReplyKind::Delete => Response::Deleted,
        ReplyKind::Arith if not_found => Response::NotFound,
        ReplyKind::Arith => Response::Number(u64_(u)?),
        ReplyKind::Touch if not_found => Response::NotFound,
        ReplyKind::Touch => Response::Touched,
        ReplyKind::Version => Response::Version(line_bytes(u, 24, false)?),
        ReplyKind::Stats if u.ratio(1u8, 8)? => Response::Reset,
        ReplyKind::Meta => Response::Meta(meta_reply(u)?),
        ReplyKind::Stats => {
            let n = u.int_in_range(0..=6usize)?;
            let mut stats = Vec::with_capacity(n);
            for _ in 0..n {
                let item = u.ratio(1u8, 4)?;
                stats.push(Stat { item, name: line_bytes(u, 16, true)?, value: line_bytes(u, 24, false)? });
            }
            Response::Stats(stats)
        }
        _ => Response::Ok,
    })
}

/// Every meta reply code.
pub const META_STATUSES: [MetaStatus; 8] = [
    MetaStatus::Value,
    MetaStatus::Done,
    MetaStatus::Miss,
    MetaStatus::NotStored,
    MetaStatus::Exists,
    MetaStatus::NotFound,
    MetaStatus::NoOp,
    MetaStatus::Debug,
];

/// A meta reply as memcached could send it: any code, flags as space-led tokens (raw bytes
/// without line breaks), a data block for `VA`.
pub fn meta_reply(u: &mut Unstructured<'_>) -> Result<MetaReply> {
    let status = *u.choose(&META_STATUSES)?;
    let n = u.int_in_range(0..=4usize)?;
    let mut flags = Vec::new();
    for _ in 0..n {
        flags.push(b' ');
        flags.extend_from_slice(&line_bytes(u, 12, true)?);
    }
    let value = if status == MetaStatus::Value { Some(data(u)?) } else { None };
    Ok(MetaReply { status, flags: flags.into(), value })
}
