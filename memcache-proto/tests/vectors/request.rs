//! A strict request parser, written from the protocol text, not from the crate's encoder.

use std::cell::Cell;

use bytes::Bytes;
use memcache_proto::command::{ArithVerb, StatsArg, StoreVerb};
use memcache_proto::{Command, Key};

use crate::meaning::text;

/// Memcached's key rules, restated: 1 to 250 bytes, none `<= 0x20` nor `0x7f`.
fn key(tok: &[u8]) -> Result<Key, String> {
    if tok.is_empty() || tok.len() > 250 || tok.iter().any(|&b| b <= 0x20 || b == 0x7f) {
        return Err(format!("bad key {:?} ({} bytes)", text(&tok[..tok.len().min(16)]), tok.len()));
    }
    Ok(Key::copy_from(tok).expect("a key valid per the protocol must be accepted by Key"))
}

thread_local! {
    /// Set when the request being parsed spells a number in a non-canonical way (leading
    /// zeros, `-0`): it parses, but an encoder cannot be expected to reproduce it.
    static NON_CANONICAL: Cell<bool> = const { Cell::new(false) };
}

/// Unsigned decimal (leading zeros allowed, as the server's strtoul does), no overflow.
fn unsigned(tok: &[u8], max: u64) -> Result<u64, String> {
    let bad = || format!("bad number {:?}", String::from_utf8_lossy(tok));
    if tok.is_empty() || !tok.iter().all(u8::is_ascii_digit) {
        return Err(bad());
    }
    if tok.len() > 1 && tok[0] == b'0' {
        NON_CANONICAL.set(true);
    }
    let mut n: u64 = 0;
    for &d in tok {
        n = n.checked_mul(10).and_then(|n| n.checked_add(u64::from(d - b'0'))).ok_or_else(bad)?;
    }
    if n > max { Err(bad()) } else { Ok(n) }
}

fn u32_tok(tok: &[u8]) -> Result<u32, String> {
    unsigned(tok, u64::from(u32::MAX)).map(|n| u32::try_from(n).expect("bounded"))
}

fn i32_tok(tok: &[u8]) -> Result<i32, String> {
    match tok.strip_prefix(b"-") {
        Some(abs) => {
            let n = unsigned(abs, u64::from(i32::MAX.unsigned_abs()) + 1)?;
            if n == 0 {
                NON_CANONICAL.set(true);
            }
            Ok(i32::try_from(-i64::try_from(n).expect("small")).expect("bounded"))
        }
        None => unsigned(tok, i32::MAX as u64).map(|n| i32::try_from(n).expect("bounded")),
    }
}

/// Splits `rest` into an optional trailing `noreply`.
fn noreply<'a>(rest: &'a [&'a [u8]]) -> (&'a [&'a [u8]], bool) {
    match rest.split_last() {
        Some((&last, init)) if last == b"noreply" => (init, true),
        _ => (rest, false),
    }
}

fn arity(tokens: &[&[u8]], allowed: std::ops::RangeInclusive<usize>) -> Result<(), String> {
    if allowed.contains(&tokens.len()) { Ok(()) } else { Err(format!("{} arguments", tokens.len())) }
}

/// Parses a whole request into classic commands, or says why it is not one; also says whether
/// every number in it is spelled canonically (then the encoder must reproduce it exactly).
pub(crate) fn parse(req: &[u8]) -> Result<(Vec<Command>, bool), String> {
    NON_CANONICAL.set(false);
    let commands = parse_request(req)?;
    Ok((commands, !NON_CANONICAL.get()))
}

pub(crate) fn parse_request(req: &[u8]) -> Result<Vec<Command>, String> {
    let mut commands = Vec::new();
    let mut pos = 0;
    while pos < req.len() {
        let nl = req[pos..].iter().position(|&b| b == b'\n').ok_or("unterminated line")? + pos;
        if nl == pos || req[nl - 1] != b'\r' {
            return Err("line not ended by \\r\\n".into());
        }
        let line = &req[pos..nl - 1];
        pos = nl + 1;
        let tokens: Vec<&[u8]> = line.split(|&b| b == b' ').collect();
        if tokens.iter().any(|t| t.is_empty()) {
            return Err("empty token (extra space)".into());
        }
        let (verb, args) = (tokens[0], &tokens[1..]);
        let command = match verb {
            b"get" | b"gets" | b"gat" | b"gats" => {
                let cas = verb == b"gets" || verb == b"gats";
                let (touch, keys) = if verb.starts_with(b"gat") {
                    let (t, keys) = args.split_first().ok_or("no exptime")?;
                    (Some(i32_tok(t)?), keys)
                } else {
                    (None, args)
                };
                if keys.is_empty() {
                    return Err("no keys".into());
                }
                let keys = keys.iter().map(|k| key(k)).collect::<Result<_, _>>()?;
                Command::Get { keys, cas, touch }
            }
            b"set" | b"add" | b"replace" | b"append" | b"prepend" | b"cas" => {
                let (args, noreply) = noreply(args);
                let is_cas = verb == b"cas";
                arity(args, if is_cas { 5..=5 } else { 4..=4 })?;
                let len = usize::try_from(unsigned(args[3], u64::from(u32::MAX))?).expect("fits");
                let verb = match verb {
                    b"set" => StoreVerb::Set,
                    b"add" => StoreVerb::Add,
                    b"replace" => StoreVerb::Replace,
                    b"append" => StoreVerb::Append,
                    b"prepend" => StoreVerb::Prepend,
                    _ => StoreVerb::Cas(unsigned(args[4], u64::MAX)?),
                };
                let block = req.get(pos..pos + len + 2).ok_or("short data block")?;
                if &block[len..] != b"\r\n" {
                    return Err("bad data chunk".into());
                }
                pos += len + 2;
                Command::Store {
                    verb,
                    key: key(args[0])?,
                    flags: u32_tok(args[1])?,
                    exptime: i32_tok(args[2])?,
                    value: Bytes::copy_from_slice(&block[..len]),
                    noreply,
                }
            }
            b"delete" => {
                let (args, noreply) = noreply(args);
                arity(args, 1..=2)?;
                let hold = args.get(1).map(|h| u32_tok(h)).transpose()?;
                Command::Delete { key: key(args[0])?, hold, noreply }
            }
            b"incr" | b"decr" => {
                let (args, noreply) = noreply(args);
                arity(args, 2..=2)?;
                let verb = if verb == b"incr" { ArithVerb::Incr } else { ArithVerb::Decr };
                Command::Arith { verb, key: key(args[0])?, delta: unsigned(args[1], u64::MAX)?, noreply }
            }
            b"touch" => {
                let (args, noreply) = noreply(args);
                arity(args, 2..=2)?;
                Command::Touch { key: key(args[0])?, exptime: i32_tok(args[1])?, noreply }
            }
            b"flush_all" => {
                let (args, noreply) = noreply(args);
                arity(args, 0..=1)?;
                Command::FlushAll { delay: args.first().map(|d| i32_tok(d)).transpose()?, noreply }
            }
            b"verbosity" => {
                let (args, noreply) = noreply(args);
                arity(args, 1..=1)?;
                Command::Verbosity { level: u32_tok(args[0])?, noreply }
            }
            b"version" => {
                arity(args, 0..=0)?;
                Command::Version
            }
            b"quit" => {
                arity(args, 0..=0)?;
                Command::Quit
            }
            b"stats" => {
                let arg = if args.is_empty() {
                    None
                } else {
                    if args.iter().flat_map(|t| t.iter()).any(|&b| !(0x21..0x7f).contains(&b)) {
                        return Err("bad stats argument".into());
                    }
                    let rest = std::str::from_utf8(&line[6..]).expect("ascii");
                    Some(StatsArg::new(rest).expect("a printable stats argument is accepted"))
                };
                Command::Stats { arg }
            }
            _ => return Err(format!("not a classic command: {:?}", String::from_utf8_lossy(verb))),
        };
        commands.push(command);
    }
    if commands.is_empty() {
        return Err("empty request".into());
    }
    Ok(commands)
}
