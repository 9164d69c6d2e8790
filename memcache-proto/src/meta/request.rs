//! Meta requests and their typed builders: one method sets one wire flag.
//!
//! Flags go on the wire in the order the methods were called, which is also the order in which
//! memcached reflects them. Getting a value (`v`) is the default for [`MetaGet`] and
//! [`MetaArith`]; `.meta_only()` drops it and `.value()` moves it to that point of the line.

use bytes::{BufMut, Bytes};

use super::flags::{FlagList, Opaque, Token, put_u64};
use super::key::MetaKey;
use super::version::{self, ServerVersion};
use crate::{Error, Key};

/// The two-letter meta command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum MetaVerb {
    /// `mg`
    Get,
    /// `ms`
    Set,
    /// `md`
    Delete,
    /// `ma`
    Arith,
    /// `me`: a human-readable dump of an item's metadata.
    Debug,
}

impl MetaVerb {
    fn code(self) -> &'static [u8] {
        match self {
            MetaVerb::Get => b"mg",
            MetaVerb::Set => b"ms",
            MetaVerb::Delete => b"md",
            MetaVerb::Arith => b"ma",
            MetaVerb::Debug => b"me",
        }
    }
}

/// One meta request, ready to encode: verb, key, value (for `ms`) and flags. Build it with
/// [`MetaGet`], [`MetaSet`], [`MetaDelete`] or [`MetaArith`] (all convert into it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetaRequest {
    pub(crate) verb: MetaVerb,
    pub(crate) key: MetaKey,
    pub(crate) value: Option<Bytes>,
    pub(crate) flags: FlagList,
}

/// Flag letters that ask the server to send something back on success.
const RETURN_FLAGS: &[u8] = b"cfhklstv";

impl MetaRequest {
    /// `me <key>`: memcached's debug dump of an item (`ME <key> exp=.. la=.. ...`).
    pub fn debug(key: impl AsRef<[u8]>) -> Result<MetaRequest, Error> {
        Ok(MetaRequest::with_key(MetaVerb::Debug, MetaKey::new(key)?))
    }

    fn with_key(verb: MetaVerb, key: MetaKey) -> MetaRequest {
        MetaRequest { verb, key, value: None, flags: FlagList::default() }
    }

    /// The command.
    pub fn verb(&self) -> MetaVerb {
        self.verb
    }

    /// The key.
    pub fn key(&self) -> &MetaKey {
        &self.key
    }

    /// The token that picks the server: the key as sent.
    pub fn wire_key(&self) -> &Key {
        self.key.wire()
    }

    /// Whether flag `letter` is set.
    pub fn has_flag(&self, letter: u8) -> bool {
        self.flags.has(letter)
    }

    /// The opaque token the caller set, if any.
    pub fn opaque(&self) -> Option<Opaque> {
        match self.flags.get(b'O') {
            Some(Token::Opaque(o)) => Some(o),
            _ => None,
        }
    }

    /// Whether the request may carry `q` in a batch without losing anything the caller asked
    /// for. `q` suppresses `EN` for `mg` (a hit is still answered, with `HD` when no value was
    /// asked for), and `HD` for the others, which would drop the CAS, value or TTL a caller
    /// asked `ms`/`md`/`ma` to return (`ma .. v q` loses its value): those stay loud.
    pub fn quiet_in_batch(&self) -> bool {
        match self.verb {
            MetaVerb::Get => true,
            MetaVerb::Set | MetaVerb::Delete | MetaVerb::Arith => {
                !self.flags.iter().any(|f| RETURN_FLAGS.contains(&f.letter))
            }
            MetaVerb::Debug => false,
        }
    }

    /// Whether sending the request twice has the effect of sending it once (see
    /// [`retry`](crate::retry)): `me`, and `mg` unless it may create a placeholder (`N`), win
    /// a recache (`R`, a second request would see the first one's win as `Z`) or set a CAS
    /// (`E`). `mg .. T` sets an expiration relative to its arrival, like `touch`. Writes are
    /// never resent.
    pub fn is_resend_safe(&self) -> bool {
        match self.verb {
            MetaVerb::Get => !self.flags.iter().any(|f| b"NRE".contains(&f.letter)),
            MetaVerb::Debug => true,
            MetaVerb::Set | MetaVerb::Delete | MetaVerb::Arith => false,
        }
    }

    /// [`Error::Unsupported`] if a flag is newer than `server`.
    pub fn check_version(&self, server: ServerVersion) -> Result<(), Error> {
        version::check(self.required_version(), server)
    }

    /// The newest flag this request uses beyond the first stable meta protocol, and the
    /// release it needs; `None` when any meta-capable server understands the request.
    pub fn required_version(&self) -> Option<(&'static str, ServerVersion)> {
        version::required(self.verb, self.flags.iter().map(|f| &f.letter))
    }

    /// Appends the request. In a batch, `batch` gives the opaque number that replaces any
    /// opaque the caller set, and whether to add `q`.
    pub(crate) fn encode_head(&self, buf: &mut impl BufMut, batch: Option<(u32, bool)>) -> Option<&Bytes> {
        buf.put_slice(self.verb.code());
        buf.put_u8(b' ');
        buf.put_slice(self.key.wire().as_bytes());
        if let Some(value) = &self.value {
            buf.put_u8(b' ');
            put_u64(buf, value.len() as u64);
        }
        if self.key.is_binary() {
            buf.put_slice(b" b");
        }
        match batch {
            None => self.flags.encode(buf, &[]),
            Some((opaque, quiet)) => {
                self.flags.encode(buf, b"Oq");
                if quiet {
                    buf.put_slice(b" q");
                }
                buf.put_slice(b" O");
                put_u64(buf, u64::from(opaque));
            }
        }
        buf.put_slice(b"\r\n");
        self.value.as_ref()
    }

    /// Appends the whole request, data block included.
    pub fn encode(&self, buf: &mut impl BufMut) {
        self.encode_with(buf, None);
    }

    pub(crate) fn encode_with(&self, buf: &mut impl BufMut, batch: Option<(u32, bool)>) {
        if let Some(value) = self.encode_head(buf, batch) {
            buf.put_slice(value);
            buf.put_slice(b"\r\n");
        }
    }
}

/// Setters that set one flag each, declared as `name(arg: Type) => letter` (the argument
/// becomes the flag's token) or `name => letter` (a flag without a token), so that each
/// builder method is one line of declaration and its doc.
macro_rules! flag_methods {
    ($t:ident { $($(#[$doc:meta])* $name:ident $(($arg:ident: $ty:ty))? => $letter:literal;)* }) => {
        impl $t {
            $(
                $(#[$doc])*
                pub fn $name(mut self $(, $arg: $ty)?) -> Self {
                    self.0.flags.set($letter, flag_methods!(@token $($arg)?));
                    self
                }
            )*
        }
    };
    (@token) => { Token::None };
    (@token $arg:ident) => { Token::from($arg) };
}

/// What every builder has: key echo, opaque, base64 keys, a chosen CAS, and the conversion
/// into a [`MetaRequest`].
macro_rules! builder_common {
    ($t:ident) => {
        flag_methods!($t {
            /// `k`: the server echoes the key (a binary key in base64, decoded back here).
            return_key => b'k';
            /// `O<token>`: the server echoes the token. A batch replaces it with its own.
            opaque(token: Opaque) => b'O';
            /// `E<cas>`: the item's new CAS is `cas` instead of the server's next one
            /// (memcached 1.6.20 or newer; refused before sending on an older server).
            new_cas(cas: u64) => b'E';
        });

        impl $t {
            /// `b`: sends even a text key in base64 (a binary key always is). The key then
            /// also picks its server by its base64 form.
            pub fn base64_key(mut self) -> Result<Self, Error> {
                self.0.key = MetaKey::binary(&self.0.key.to_raw())?;
                Ok(self)
            }

            /// The request as built.
            pub fn request(&self) -> &MetaRequest {
                &self.0
            }
        }

        impl From<$t> for MetaRequest {
            fn from(b: $t) -> MetaRequest {
                b.0
            }
        }
    };
}

/// `value` and `meta_only` of the builders that return a value by default (`mg`, `ma`).
macro_rules! value_methods {
    ($t:ident, $(#[$meta_only:meta])*) => {
        impl $t {
            /// `v` at this point of the line (it is first by default).
            pub fn value(mut self) -> Self {
                self.0.flags.set_last(b'v', Token::None);
                self
            }

            $(#[$meta_only])*
            pub fn meta_only(mut self) -> Self {
                self.0.flags.remove(b'v');
                self
            }
        }
    };
}

/// `mg`: read an item and whatever metadata is asked for. By default the value (`v`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetaGet(MetaRequest);

impl MetaGet {
    /// `mg <key> v`. Keys that are not valid text go out in base64 (see [`MetaKey`]).
    pub fn new(key: impl AsRef<[u8]>) -> Result<MetaGet, Error> {
        let mut r = MetaRequest::with_key(MetaVerb::Get, MetaKey::new(key)?);
        r.flags.set(b'v', Token::None);
        Ok(MetaGet(r))
    }

    /// `h l s`: whether the item was read before, seconds since its last access, and its size.
    pub fn access_info(self) -> Self {
        self.hit_before().last_access().size()
    }
}

flag_methods!(MetaGet {
    /// `c`: return the item's CAS token.
    cas => b'c';
    /// `f`: return the client flags.
    flags => b'f';
    /// `t`: return the remaining TTL in seconds (`-1`: never expires).
    ttl => b't';
    /// `u`: do not bump the item in the LRU, nor mark it read.
    no_bump => b'u';
    /// `h`: return whether the item had been read before (as it was before this request).
    hit_before => b'h';
    /// `l`: return the seconds since the item was last read (before this request).
    last_access => b'l';
    /// `s`: return the item's size in bytes.
    size => b's';
    /// `T<exptime>`: updates the item's expiration, as `touch` does.
    touch(exptime: i32) => b'T';
    /// `N<ttl>`: on a miss, creates an empty placeholder living `vivify_ttl` seconds and
    /// answers with `W` (this caller won the lease, it should fill the item); later callers
    /// see `Z` until the item is stored.
    lease(vivify_ttl: i32) => b'N';
    /// `R<ttl>`: when the item has less than `ttl` seconds left, one caller gets `W` and
    /// should refresh it early, while the others keep reading it.
    recache_below(ttl: u32) => b'R';
    /// `C<cas>`: leaves the value out when the item's CAS is still `cas` (memcached 1.6.40
    /// or newer; 1.6.18 ignores the flag, so it is refused before sending to older servers).
    if_changed(cas: u64) => b'C';
});
value_methods!(MetaGet,
    /// Drops `v`: the reply is `HD` with the asked metadata, no data block.
);
builder_common!(MetaGet);

/// How `ms` stores (`M<mode>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SetMode {
    /// `MS`: store unconditionally (the default, sent only when asked for).
    Set,
    /// `ME`: store only if the key is absent.
    Add,
    /// `MR`: store only if the key is present.
    Replace,
    /// `MA`: add the data after the existing value.
    Append,
    /// `MP`: add the data before the existing value.
    Prepend,
}

/// `ms`: store a value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetaSet(MetaRequest);

impl MetaSet {
    /// `ms <key> <len>` followed by the data block.
    pub fn new(key: impl AsRef<[u8]>, value: impl Into<Bytes>) -> Result<MetaSet, Error> {
        let mut r = MetaRequest::with_key(MetaVerb::Set, MetaKey::new(key)?);
        r.value = Some(value.into());
        Ok(MetaSet(r))
    }

    /// `M<mode>`: add, replace, append or prepend instead of set.
    pub fn mode(mut self, mode: SetMode) -> Self {
        let c = match mode {
            SetMode::Set => b'S',
            SetMode::Add => b'E',
            SetMode::Replace => b'R',
            SetMode::Append => b'A',
            SetMode::Prepend => b'P',
        };
        self.0.flags.set(b'M', Token::Char(c));
        self
    }
}

flag_methods!(MetaSet {
    /// `F<flags>`: the client flags stored with the value.
    flags(flags: u32) => b'F';
    /// `T<exptime>`: the expiration.
    exptime(exptime: i32) => b'T';
    /// `C<cas>`: store only if the item's CAS is still `cas` (`EX` if not, `NF` if gone).
    cas(cas: u64) => b'C';
    /// `I`: with [`cas`](Self::cas), a CAS older than the item's is accepted but the item is
    /// marked stale (readers see `X`, one of them wins a recache).
    invalidate => b'I';
    /// `c`: return the new CAS token of the stored item.
    return_cas => b'c';
    /// `s`: return the stored item's size, e.g. after an append (memcached 1.6.20 or newer;
    /// 1.6.18 ignores it, so it is refused before sending to older servers).
    return_size => b's';
    /// `N<ttl>`: in append or prepend mode, create the item on a miss (memcached 1.6.20 or
    /// newer).
    vivify_on_miss(ttl: i32) => b'N';
});
builder_common!(MetaSet);

/// `md`: delete an item, or mark it stale.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetaDelete(MetaRequest);

impl MetaDelete {
    /// `md <key>`.
    pub fn new(key: impl AsRef<[u8]>) -> Result<MetaDelete, Error> {
        Ok(MetaDelete(MetaRequest::with_key(MetaVerb::Delete, MetaKey::new(key)?)))
    }

    /// `I T<ttl>`: instead of deleting, mark the item stale and let it live `ttl` more
    /// seconds. Readers get the old value with `X`; the first one also gets `W` and should
    /// recache it (stale-while-revalidate).
    pub fn mark_stale(mut self, ttl: i32) -> Self {
        self.0.flags.set(b'I', Token::None);
        self.0.flags.set(b'T', Token::from(ttl));
        self
    }
}

flag_methods!(MetaDelete {
    /// `C<cas>`: delete only if the item's CAS is still `cas`.
    cas(cas: u64) => b'C';
    /// `x`: remove the value but keep the item (memcached 1.6.27 or newer).
    remove_value => b'x';
});
builder_common!(MetaDelete);

/// `ma`: increment or decrement a counter. By default returns the new value (`v`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetaArith(MetaRequest);

impl MetaArith {
    /// `ma <key> v`: add 1.
    pub fn new(key: impl AsRef<[u8]>) -> Result<MetaArith, Error> {
        let mut r = MetaRequest::with_key(MetaVerb::Arith, MetaKey::new(key)?);
        r.flags.set(b'v', Token::None);
        Ok(MetaArith(r))
    }

    /// `MD`: decrement (clamping at 0) instead of increment.
    pub fn decr(mut self) -> Self {
        self.0.flags.set(b'M', Token::Char(b'D'));
        self
    }

    /// `MI`: increment (the default, sent only when asked for).
    pub fn incr(mut self) -> Self {
        self.0.flags.set(b'M', Token::Char(b'I'));
        self
    }

    /// `N<ttl> J<initial>`: on a miss, create the counter with `initial`, living `ttl`.
    pub fn autovivify(mut self, initial: u64, ttl: i32) -> Self {
        self.0.flags.set(b'N', Token::from(ttl));
        self.0.flags.set(b'J', Token::from(initial));
        self
    }
}

flag_methods!(MetaArith {
    /// `D<delta>`: the amount (1 by default).
    delta(delta: u64) => b'D';
    /// `T<exptime>`: update the expiration on success.
    exptime(exptime: i32) => b'T';
    /// `C<cas>`: apply only if the item's CAS is still `cas`.
    cas(cas: u64) => b'C';
    /// `c`: return the counter's new CAS token.
    return_cas => b'c';
    /// `t`: return the remaining TTL.
    ttl => b't';
});
value_methods!(MetaArith,
    /// Drops `v`: the reply is `HD` without the new value (and may be quiet in a batch).
);
builder_common!(MetaArith);
