//! What a meta reply means: outcome enums, where a miss is an outcome and not an error.

use bytes::Bytes;

use super::key;
use super::reply::{MetaReply, MetaStatus};
use super::request::{MetaRequest, MetaVerb};
use crate::{Error, ProtoError};

/// Whether this reader holds the right to recache an item (the `N` and `R` leases, and the
/// item marked stale by `md .. I`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Lease {
    /// No lease involved.
    #[default]
    None,
    /// `W`: this caller won; it should compute the value and store it.
    Won,
    /// `Z`: another caller already won and is recaching the item.
    Held,
}

/// An item read with `mg`. The metadata fields are `Some` when the request asked for them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct MetaItem {
    /// The key's raw bytes (a binary key decoded from base64).
    pub key: Bytes,
    /// The value (empty when `.meta_only()` was used, and for a lease placeholder).
    pub value: Bytes,
    /// `f`: the client flags.
    pub flags: Option<u32>,
    /// `c`: the CAS token.
    pub cas: Option<u64>,
    /// `t`: seconds left to live, `-1` for never.
    pub ttl: Option<i64>,
    /// `s`: the item's size in bytes.
    pub size: Option<u64>,
    /// `l`: seconds since the item was last read, before this request.
    pub last_access: Option<u64>,
    /// `h`: whether the item had been read before this request.
    pub hit_before: Option<bool>,
    /// `X`: the item was marked stale (by `md .. I` or an invalidating `ms`): serve it while
    /// someone recaches it, if stale data is acceptable.
    pub stale: bool,
    /// `W` / `Z`: who recaches it.
    pub lease: Lease,
}

/// The outcome of `mg`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum GetOutcome {
    /// The item, with what was asked about it.
    Hit(MetaItem),
    /// `EN`, or no answer to a quiet `mg` in a batch.
    Miss,
}

/// The outcome of `ms`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SetOutcome {
    /// `HD`: stored; the new CAS when `.return_cas()` asked for it.
    Stored {
        /// The stored item's CAS token.
        cas: Option<u64>,
    },
    /// `NS`: the mode's condition failed (add of a present key, replace/append of an absent
    /// one).
    NotStored,
    /// `EX`: the CAS did not match.
    Exists,
    /// `NF`: a CAS was given and the item is gone.
    NotFound,
}

/// The outcome of `md`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DeleteOutcome {
    /// `HD`: deleted (or marked stale).
    Deleted,
    /// `NF`: there was no such item.
    NotFound,
    /// `EX`: the CAS did not match.
    Exists,
}

/// The outcome of `ma`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ArithOutcome {
    /// `HD` or `VA`: applied; the fields are `Some` when asked for.
    Updated {
        /// `v`: the counter's new value.
        value: Option<u64>,
        /// `c`: its new CAS token.
        cas: Option<u64>,
        /// `t`: its remaining TTL.
        ttl: Option<i64>,
    },
    /// `NF`: no such counter (and no autovivify).
    NotFound,
    /// `NS`: autovivify failed.
    NotStored,
    /// `EX`: the CAS did not match.
    Exists,
}

/// The outcome of any meta request, as a batch returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum MetaOutcome {
    /// Of a [`MetaGet`](super::MetaGet).
    Get(GetOutcome),
    /// Of a [`MetaSet`](super::MetaSet).
    Set(SetOutcome),
    /// Of a [`MetaDelete`](super::MetaDelete).
    Delete(DeleteOutcome),
    /// Of a [`MetaArith`](super::MetaArith).
    Arith(ArithOutcome),
    /// `me`: the dump after the key (`exp=.. la=.. cas=..`), `None` on a miss.
    Debug(Option<Bytes>),
}

/// What the flags of a reply say.
#[derive(Debug, Default)]
pub(crate) struct Returned {
    key: Option<Bytes>,
    opaque: Option<Bytes>,
    flags: Option<u32>,
    cas: Option<u64>,
    ttl: Option<i64>,
    size: Option<u64>,
    last_access: Option<u64>,
    hit_before: Option<bool>,
    stale: bool,
    lease: Lease,
}

pub(crate) fn desync(what: &str) -> Error {
    Error::Protocol(ProtoError::UnexpectedLine { line: format!("meta reply {what}") })
}

fn number<T: TryFrom<u64>>(letter: u8, token: &[u8]) -> Result<T, Error> {
    crate::decode::parse_u64(token)
        .and_then(|n| T::try_from(n).ok())
        .ok_or_else(|| desync(&format!("with a bad {} token", char::from(letter))))
}

fn returned(reply: &MetaReply) -> Result<Returned, Error> {
    let mut r = Returned::default();
    let mut base64 = false;
    for (letter, token) in reply.tokens() {
        match letter {
            b'b' => base64 = true,
            b'k' => r.key = Some(reply.flags.slice_ref(token)),
            b'O' => r.opaque = Some(reply.flags.slice_ref(token)),
            b'f' => r.flags = Some(number(letter, token)?),
            b'c' => r.cas = Some(number(letter, token)?),
            b's' => r.size = Some(number(letter, token)?),
            b'l' => r.last_access = Some(number(letter, token)?),
            b'h' => r.hit_before = Some(number::<u8>(letter, token)? != 0),
            b't' => {
                r.ttl = Some(match token.strip_prefix(b"-") {
                    Some(abs) => -number::<i64>(letter, abs)?,
                    None => number(letter, token)?,
                })
            }
            b'X' => r.stale = true,
            b'W' => r.lease = Lease::Won,
            b'Z' if r.lease == Lease::None => r.lease = Lease::Held,
            // Flags this client did not ask for, or that a newer server adds: ignored.
            _ => {}
        }
    }
    if let (true, Some(k)) = (base64, &r.key) {
        r.key = Some(key::decode(k).map(Bytes::from).ok_or_else(|| desync("with a bad base64 key"))?);
    }
    Ok(r)
}

/// Reads a reply's flags and checks the echoed key and opaque against the request (in a batch
/// the opaque was matched already and is not checked again).
pub(crate) fn checked(reply: &MetaReply, request: &MetaRequest, batch: bool) -> Result<Returned, Error> {
    let r = returned(reply)?;
    if r.key.as_ref().is_some_and(|echoed| echoed != &request.key().to_raw()) {
        return Err(desync("for another key"));
    }
    if !batch && r.opaque.as_deref() != request.opaque().as_ref().map(|o| o.as_bytes()) {
        return Err(desync("with another opaque token"));
    }
    Ok(r)
}

fn unexpected(reply: &MetaReply, request: &MetaRequest) -> Error {
    desync(&format!("{:?} to {:?}", reply.status, request.verb()))
}

impl MetaItem {
    fn from_returned(r: Returned, value: Option<Bytes>, request: &MetaRequest) -> MetaItem {
        let key = r.key.unwrap_or_else(|| request.key().to_raw());
        MetaItem {
            key,
            value: value.unwrap_or_default(),
            flags: r.flags,
            cas: r.cas,
            ttl: r.ttl,
            size: r.size,
            last_access: r.last_access,
            hit_before: r.hit_before,
            stale: r.stale,
            lease: r.lease,
        }
    }
}

/// An outcome read from a meta reply.
pub trait MetaOutput: Sized {
    /// Interprets `reply`, the answer to `request`; `batch` when it came in a quiet batch (its
    /// opaque then was already matched).
    fn from_reply(reply: MetaReply, request: &MetaRequest, batch: bool) -> Result<Self, Error>;
}

impl MetaOutput for GetOutcome {
    fn from_reply(reply: MetaReply, request: &MetaRequest, batch: bool) -> Result<Self, Error> {
        let r = checked(&reply, request, batch)?;
        match reply.status {
            MetaStatus::Value | MetaStatus::Done => {
                Ok(GetOutcome::Hit(MetaItem::from_returned(r, reply.value, request)))
            }
            MetaStatus::Miss => Ok(GetOutcome::Miss),
            _ => Err(unexpected(&reply, request)),
        }
    }
}

impl MetaOutput for SetOutcome {
    fn from_reply(reply: MetaReply, request: &MetaRequest, batch: bool) -> Result<Self, Error> {
        let r = checked(&reply, request, batch)?;
        match reply.status {
            MetaStatus::Done => Ok(SetOutcome::Stored { cas: r.cas }),
            MetaStatus::NotStored => Ok(SetOutcome::NotStored),
            MetaStatus::Exists => Ok(SetOutcome::Exists),
            MetaStatus::NotFound => Ok(SetOutcome::NotFound),
            _ => Err(unexpected(&reply, request)),
        }
    }
}

impl MetaOutput for DeleteOutcome {
    fn from_reply(reply: MetaReply, request: &MetaRequest, batch: bool) -> Result<Self, Error> {
        checked(&reply, request, batch)?;
        match reply.status {
            MetaStatus::Done => Ok(DeleteOutcome::Deleted),
            MetaStatus::NotFound => Ok(DeleteOutcome::NotFound),
            MetaStatus::Exists => Ok(DeleteOutcome::Exists),
            _ => Err(unexpected(&reply, request)),
        }
    }
}

impl MetaOutput for ArithOutcome {
    fn from_reply(reply: MetaReply, request: &MetaRequest, batch: bool) -> Result<Self, Error> {
        let r = checked(&reply, request, batch)?;
        match reply.status {
            MetaStatus::Value | MetaStatus::Done => {
                // memcached may pad a shrinking counter with spaces; the number is what counts.
                let value = match &reply.value {
                    Some(v) => Some(number(b'v', v.trim_ascii_end())?),
                    None => None,
                };
                Ok(ArithOutcome::Updated { value, cas: r.cas, ttl: r.ttl })
            }
            MetaStatus::NotFound => Ok(ArithOutcome::NotFound),
            MetaStatus::NotStored => Ok(ArithOutcome::NotStored),
            MetaStatus::Exists => Ok(ArithOutcome::Exists),
            _ => Err(unexpected(&reply, request)),
        }
    }
}

impl MetaOutput for MetaOutcome {
    fn from_reply(reply: MetaReply, request: &MetaRequest, batch: bool) -> Result<Self, Error> {
        Ok(match request.verb() {
            MetaVerb::Get => MetaOutcome::Get(GetOutcome::from_reply(reply, request, batch)?),
            MetaVerb::Set => MetaOutcome::Set(SetOutcome::from_reply(reply, request, batch)?),
            MetaVerb::Delete => MetaOutcome::Delete(DeleteOutcome::from_reply(reply, request, batch)?),
            MetaVerb::Arith => MetaOutcome::Arith(ArithOutcome::from_reply(reply, request, batch)?),
            MetaVerb::Debug if reply.status == MetaStatus::Miss => MetaOutcome::Debug(None),
            MetaVerb::Debug if reply.status == MetaStatus::Debug => {
                // `ME <key> <k>=<v>*`: keep what follows the key.
                let rest = reply.flags.trim_ascii_start();
                let at = rest.iter().position(|&b| b == b' ').map_or(rest.len(), |i| i + 1);
                MetaOutcome::Debug(Some(reply.flags.slice_ref(&rest[at..])))
            }
            _ => return Err(unexpected(&reply, request)),
        })
    }
}

impl MetaOutcome {
    /// The outcome of a quiet request the server did not answer: `q` hides only the reply
    /// that means success (`EN` for `mg`, `HD` for the others).
    pub(crate) fn quiet(request: &MetaRequest) -> Option<MetaOutcome> {
        Some(match request.verb() {
            MetaVerb::Get => MetaOutcome::Get(GetOutcome::Miss),
            MetaVerb::Set => MetaOutcome::Set(SetOutcome::Stored { cas: None }),
            MetaVerb::Delete => MetaOutcome::Delete(DeleteOutcome::Deleted),
            MetaVerb::Arith => {
                MetaOutcome::Arith(ArithOutcome::Updated { value: None, cas: None, ttl: None })
            }
            _ => return None,
        })
    }
}

/// What [`get_or_lease`](super::Leased) answers.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Leased {
    /// The item is there. It may be stale (`item.stale`) while another caller recaches it
    /// (`item.lease == Lease::Held`): serve it or not, as the data allows.
    Hit(MetaItem),
    /// This caller won the lease: compute the value and store it with
    /// `MetaSet::new(key, value).cas(cas)`, which fails (`Exists`) if someone else got there
    /// first. `cas` is 0 when the server could not create the placeholder (out of memory):
    /// store without a CAS then.
    Fill {
        /// The placeholder's (or stale item's) CAS token.
        cas: u64,
    },
    /// Another caller holds the lease and the item has no value yet: back off and retry.
    Busy,
}

impl MetaOutput for Leased {
    fn from_reply(reply: MetaReply, request: &MetaRequest, batch: bool) -> Result<Self, Error> {
        Ok(match GetOutcome::from_reply(reply, request, batch)? {
            GetOutcome::Miss => Leased::Fill { cas: 0 },
            GetOutcome::Hit(item) => match item.lease {
                Lease::Won => Leased::Fill { cas: item.cas.unwrap_or(0) },
                Lease::Held if !item.stale => Leased::Busy,
                _ => Leased::Hit(item),
            },
        })
    }
}
