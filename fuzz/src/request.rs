//! A strict request parser written from memcached's protocol text, independent of
//! memcache-proto's encoder, for the `roundtrip` and `connection` targets.
//!
//! It accepts only the canonical form (single spaces, numbers without sign or leading zeros
//! unless negative or zero, `noreply` last), so for anything it accepts, encoding the parsed
//! commands must give back exactly the bytes it read.

use bytes::Bytes;
use memcache_proto::command::{ArithVerb, StatsArg, StoreVerb};
use memcache_proto::{Command, Key};

/// Why a request is not a canonical sequence of classic commands.
pub type ParseError = String;

/// Parses a whole request stream (any number of commands, each complete).
pub fn parse(mut buf: &[u8]) -> Result<Vec<Command>, ParseError> {
    let mut commands = Vec::new();
    while !buf.is_empty() {
        let nl = buf.iter().position(|&b| b == b'\n').ok_or("unterminated line")?;
        if nl == 0 || buf[nl - 1] != b'\r' {
            return Err("line not ended by \\r\\n".into());
        }
        let line = &buf[..nl - 1];
        buf = &buf[nl + 1..];
        let command = if line == b"stats" || line.starts_with(b"stats ") {
            Command::Stats { arg: line.get(6..).map(stats_arg).transpose()? }
        } else {
            let (command, block_len) = parse_line(line)?;
            match block_len {
                None => command,
                Some(len) => {
                    let block = buf.get(..len.saturating_add(2)).ok_or("short data block")?;
                    if &block[len..] != b"\r\n" {
                        return Err("data block not ended by \\r\\n".into());
                    }
                    buf = &buf[len + 2..];
                    with_value(command, Bytes::copy_from_slice(&block[..len]))
                }
            }
        };
        commands.push(command);
    }
    Ok(commands)
}

/// Puts the data block into a storage command parsed from its line.
fn with_value(command: Command, block: Bytes) -> Command {
    match command {
        Command::Store { verb, key, flags, exptime, noreply, .. } => {
            Command::Store { verb, key, flags, exptime, value: block, noreply }
        }
        other => other,
    }
}

fn stats_arg(arg: &[u8]) -> Result<StatsArg, ParseError> {
    if arg.is_empty() || arg.len() > 1024 || arg.iter().any(|&b| !(0x20..0x7f).contains(&b)) {
        return Err("bad stats argument".into());
    }
    let text = std::str::from_utf8(arg).map_err(|e| e.to_string())?;
    Ok(StatsArg::new(text).expect("memcache-proto accepts every printable stats argument"))
}

/// Parses one command line; for a storage command also returns the data block's length.
fn parse_line(line: &[u8]) -> Result<(Command, Option<usize>), ParseError> {
    let tokens: Vec<&[u8]> = line.split(|&b| b == b' ').collect();
    if tokens.iter().any(|t| t.is_empty()) {
        return Err("empty token".into());
    }
    let (verb, args) = (tokens[0], &tokens[1..]);
    let command = match verb {
        b"get" | b"gets" | b"gat" | b"gats" => {
            let cas = verb.ends_with(b"s");
            let (touch, keys) = match verb.starts_with(b"gat") {
                true => {
                    let (t, keys) = args.split_first().ok_or("no exptime")?;
                    (Some(signed(t)?), keys)
                }
                false => (None, args),
            };
            if keys.is_empty() {
                return Err("no keys".into());
            }
            let keys = keys.iter().map(|k| key(k)).collect::<Result<_, _>>()?;
            Command::Get { keys, cas, touch }
        }
        b"set" | b"add" | b"replace" | b"append" | b"prepend" | b"cas" => {
            let is_cas = verb == b"cas";
            let (args, noreply) = noreply(args, if is_cas { 5 } else { 4 })?;
            let verb = match verb {
                b"set" => StoreVerb::Set,
                b"add" => StoreVerb::Add,
                b"replace" => StoreVerb::Replace,
                b"append" => StoreVerb::Append,
                b"prepend" => StoreVerb::Prepend,
                _ => StoreVerb::Cas(unsigned(args[4], u64::MAX)?),
            };
            let len = usize::try_from(unsigned(args[3], u64::MAX)?).map_err(|e| e.to_string())?;
            let flags = u32::try_from(unsigned(args[1], u64::from(u32::MAX))?).map_err(|e| e.to_string())?;
            let command = Command::Store {
                verb,
                key: key(args[0])?,
                flags,
                exptime: signed(args[2])?,
                value: Bytes::new(),
                noreply,
            };
            return Ok((command, Some(len)));
        }
        b"delete" => {
            let (args, noreply) = noreply_range(args, 1, 2)?;
            let hold = args.get(1).map(|h| u32_(h)).transpose()?;
            Command::Delete { key: key(args[0])?, hold, noreply }
        }
        b"incr" | b"decr" => {
            let (args, noreply) = noreply(args, 2)?;
            let verb = if verb == b"incr" { ArithVerb::Incr } else { ArithVerb::Decr };
            Command::Arith { verb, key: key(args[0])?, delta: unsigned(args[1], u64::MAX)?, noreply }
        }
        b"touch" => {
            let (args, noreply) = noreply(args, 2)?;
            Command::Touch { key: key(args[0])?, exptime: signed(args[1])?, noreply }
        }
        b"flush_all" => {
            let (args, noreply) = noreply_range(args, 0, 1)?;
            Command::FlushAll { delay: args.first().map(|d| signed(d)).transpose()?, noreply }
        }
        b"verbosity" => {
            let (args, noreply) = noreply(args, 1)?;
            Command::Verbosity { level: u32_(args[0])?, noreply }
        }
        b"version" if args.is_empty() => Command::Version,
        b"quit" if args.is_empty() => Command::Quit,
        _ => return Err(format!("not a canonical classic command: {:?}", String::from_utf8_lossy(verb))),
    };
    Ok((command, None))
}

/// Exactly `n` arguments, then an optional `noreply`.
fn noreply<'a>(args: &'a [&'a [u8]], n: usize) -> Result<(&'a [&'a [u8]], bool), ParseError> {
    noreply_range(args, n, n)
}

/// `min..=max` arguments, then an optional `noreply`. A last argument `noreply` is the flag
/// only when the arguments before it are enough: `delete noreply` deletes the key `noreply`,
/// as memcached reads it.
fn noreply_range<'a>(
    args: &'a [&'a [u8]],
    min: usize,
    max: usize,
) -> Result<(&'a [&'a [u8]], bool), ParseError> {
    let (args, flag) = match args.split_last() {
        Some((&last, init)) if last == b"noreply" && init.len() >= min => (init, true),
        _ => (args, false),
    };
    if (min..=max).contains(&args.len()) {
        Ok((args, flag))
    } else {
        Err(format!("{} arguments", args.len()))
    }
}

/// memcached's key rule, restated: 1 to 250 bytes, none `<= 0x20` nor `0x7f`.
fn key(tok: &[u8]) -> Result<Key, ParseError> {
    if tok.is_empty() || tok.len() > 250 || tok.iter().any(|&b| b <= 0x20 || b == 0x7f) {
        return Err("bad key".into());
    }
    Ok(Key::copy_from(tok).expect("memcache-proto accepts every key the protocol allows"))
}

/// Canonical unsigned decimal no larger than `max`: `0`, or digits without a leading zero.
fn unsigned(tok: &[u8], max: u64) -> Result<u64, ParseError> {
    let bad = || format!("bad number {:?}", String::from_utf8_lossy(tok));
    let canonical = !tok.is_empty() && tok.iter().all(u8::is_ascii_digit) && (tok == b"0" || tok[0] != b'0');
    if !canonical {
        return Err(bad());
    }
    let n = tok
        .iter()
        .try_fold(0u64, |n, &d| n.checked_mul(10)?.checked_add(u64::from(d - b'0')))
        .ok_or_else(bad)?;
    if n <= max { Ok(n) } else { Err(bad()) }
}

fn u32_(tok: &[u8]) -> Result<u32, ParseError> {
    u32::try_from(unsigned(tok, u64::from(u32::MAX))?).map_err(|e| e.to_string())
}

/// Canonical `i32`: an unsigned number, or `-` and a non-zero one.
fn signed(tok: &[u8]) -> Result<i32, ParseError> {
    match tok.strip_prefix(b"-") {
        Some(abs) => {
            let n = unsigned(abs, u64::from(i32::MIN.unsigned_abs()))?;
            if n == 0 {
                return Err("negative zero".into());
            }
            i32::try_from(-i64::try_from(n).map_err(|e| e.to_string())?).map_err(|e| e.to_string())
        }
        None => i32::try_from(unsigned(tok, i32::MAX as u64)?).map_err(|e| e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(s: &str) -> Key {
        Key::copy_from(s.as_bytes()).expect("valid")
    }

    #[test]
    fn canonical_forms() {
        let got =
            parse(b"gats -5 a b\r\ndelete noreply\r\ndelete x 0 noreply\r\nstats  a\r\n").expect("parses");
        assert_eq!(
            got,
            vec![
                Command::Get { keys: vec![k("a"), k("b")].into(), cas: true, touch: Some(-5) },
                Command::Delete { key: k("noreply"), hold: None, noreply: false },
                Command::Delete { key: k("x"), hold: Some(0), noreply: true },
                Command::Stats { arg: Some(StatsArg::new(" a").expect("ok")) },
            ]
        );
        let set = parse(b"cas k 1 -2147483648 3 7 noreply\r\na\nb\r\n").expect("parses");
        assert_eq!(
            set,
            vec![Command::Store {
                verb: StoreVerb::Cas(7),
                key: k("k"),
                flags: 1,
                exptime: i32::MIN,
                value: Bytes::from_static(b"a\nb"),
                noreply: true,
            }]
        );
        for bad in [
            &b"get\r\n"[..],
            b"get  a\r\n",
            b"touch a 01\r\n",
            b"touch a -0\r\n",
            b"incr a 18446744073709551616\r\n",
            b"set a 0 0 1\r\nab\r\n",
            b"version x\r\n",
            b"get a\n",
        ] {
            assert!(parse(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
    }
}
