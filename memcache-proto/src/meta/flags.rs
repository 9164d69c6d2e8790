//! The flags of a meta request, in the order the caller added them.

use bytes::BufMut;

use crate::Error;
use crate::command::{put_sp_i64, put_sp_u64};

/// An opaque token (`O`): memcached copies it back into the reply, which is how a pipelined
/// reply is matched to its request. Up to 31 bytes of key characters: memcached refuses a
/// token longer than 32 bytes with its `O` (recorded: `opaque token too long`).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Opaque {
    len: u8,
    bytes: [u8; Opaque::MAX_LEN],
}

impl Opaque {
    /// Longest token memcached accepts, without the `O`.
    pub const MAX_LEN: usize = 31;

    /// Validates a token: at most 31 bytes, none a space or control byte.
    pub fn new(token: impl AsRef<[u8]>) -> Result<Opaque, Error> {
        let token = token.as_ref();
        if token.len() > Opaque::MAX_LEN || token.iter().any(|&b| b <= b' ' || b == 0x7f) {
            return Err(Error::MalformedKey(format!(
                "opaque token {:?}: at most 31 bytes, no spaces or control bytes",
                String::from_utf8_lossy(token)
            )));
        }
        let mut bytes = [0; Opaque::MAX_LEN];
        bytes[..token.len()].copy_from_slice(token);
        Ok(Opaque { len: token.len() as u8, bytes })
    }

    /// The token's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

impl std::fmt::Debug for Opaque {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Opaque({:?})", String::from_utf8_lossy(self.as_bytes()))
    }
}

/// The argument a flag carries on the wire, written right after its letter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Token {
    None,
    Unsigned(u64),
    Signed(i64),
    Char(u8),
    Opaque(Opaque),
}

/// A flag argument as the builders take it: unsigned numbers (CAS, delta, client flags, TTLs
/// that can't be negative) and signed ones (expirations, where `-1` means "expired now").
impl From<u64> for Token {
    fn from(n: u64) -> Token {
        Token::Unsigned(n)
    }
}

impl From<u32> for Token {
    fn from(n: u32) -> Token {
        Token::Unsigned(u64::from(n))
    }
}

impl From<i32> for Token {
    fn from(n: i32) -> Token {
        Token::Signed(i64::from(n))
    }
}

impl From<Opaque> for Token {
    fn from(o: Opaque) -> Token {
        Token::Opaque(o)
    }
}

/// One flag: its letter and its token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Flag {
    pub(crate) letter: u8,
    pub(crate) token: Token,
}

/// Flags in the order they were set. memcached returns the flags it reflects in request
/// order, and the recorded requests are reproduced byte for byte, so order is kept; setting a
/// flag again replaces its token in place (memcached refuses a flag given twice).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct FlagList(Vec<Flag>);

impl FlagList {
    pub(crate) fn set(&mut self, letter: u8, token: Token) {
        match self.0.iter_mut().find(|f| f.letter == letter) {
            Some(f) => f.token = token,
            None => self.0.push(Flag { letter, token }),
        }
    }

    /// Sets the flag at the end, moving it there if it was already set.
    pub(crate) fn set_last(&mut self, letter: u8, token: Token) {
        self.remove(letter);
        self.0.push(Flag { letter, token });
    }

    pub(crate) fn remove(&mut self, letter: u8) {
        self.0.retain(|f| f.letter != letter);
    }

    pub(crate) fn has(&self, letter: u8) -> bool {
        self.0.iter().any(|f| f.letter == letter)
    }

    pub(crate) fn get(&self, letter: u8) -> Option<Token> {
        self.0.iter().find(|f| f.letter == letter).map(|f| f.token)
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &Flag> {
        self.0.iter()
    }

    /// Appends ` <letter><token>` for every flag, skipping the letters in `skip`.
    pub(crate) fn encode(&self, buf: &mut impl BufMut, skip: &[u8]) {
        for f in self.0.iter().filter(|f| !skip.contains(&f.letter)) {
            buf.put_u8(b' ');
            buf.put_u8(f.letter);
            put_token(buf, f.token);
        }
    }
}

fn put_token(buf: &mut impl BufMut, token: Token) {
    match token {
        Token::None => {}
        Token::Unsigned(n) => put_u64(buf, n),
        Token::Signed(n) => put_i64(buf, n),
        Token::Char(c) => buf.put_u8(c),
        Token::Opaque(o) => buf.put_slice(o.as_bytes()),
    }
}

/// Digits of `n` with no leading space (the command encoder's helpers write one).
pub(crate) fn put_u64(buf: &mut impl BufMut, n: u64) {
    let mut tmp = [0u8; 24];
    let mut w = &mut tmp[..];
    put_sp_u64(&mut w, n);
    let left = w.len();
    buf.put_slice(&tmp[1..tmp.len() - left]);
}

fn put_i64(buf: &mut impl BufMut, n: i64) {
    let mut tmp = [0u8; 24];
    let mut w = &mut tmp[..];
    put_sp_i64(&mut w, n);
    let left = w.len();
    buf.put_slice(&tmp[1..tmp.len() - left]);
}
