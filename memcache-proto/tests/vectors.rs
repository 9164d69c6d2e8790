//! Replays the request/response pairs recorded from a real memcached 1.6.18
//! (`tests/data/memcached-1.6.18*.jsonl`, schema in the vectors' README).
//!
//! For every case whose request is a sequence of well-formed classic commands:
//! - a strict parser written here (independent of the crate's encoder) turns the request into
//!   `Command`s, and `Command::encode` must reproduce the request byte for byte;
//! - the response is fed to a `Connection` whole, one byte at a time, and split in two at every
//!   offset (a sample of offsets for the large cases); every way must give the same frames,
//!   leave nothing over, re-encode to the exact response bytes, and mean what the server said.

use std::cell::Cell;
use std::collections::{BTreeMap, BTreeSet};
use std::panic::{AssertUnwindSafe, catch_unwind};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use bytes::{Bytes, BytesMut};
use memcache_proto::command::{ArithVerb, StatsArg, StoreVerb};
use memcache_proto::response::{Stat, Value};
use memcache_proto::{Command, Completed, Connection, Key, RequestId, Response};
use serde_json::Value as Json;

const FILES: [&str; 2] = ["memcached-1.6.18.jsonl", "memcached-1.6.18-large.jsonl"];

/// Groups made of classic commands: every case of theirs whose request parses must be checked.
const CLASSIC_GROUPS: [&str; 8] =
    ["admin", "storage", "retrieval", "delete", "arith", "touch", "stats", "keys"];

/// Cases that must be checked (a parser that got stricter by mistake would drop them).
const MUST_CHECK: [&str; 30] = [
    "flush_all",
    "version",
    "verbosity_set",
    "verbosity_noreply",
    "set_stored",
    "set_noreply",
    "set_value_containing_crlf_end",
    "set_binary_value_all_bytes",
    "cas_matching_stored",
    "cas_noreply_stored",
    "get_hit",
    "get_miss",
    "gets_multi",
    "get_multi_mixed",
    "get_duplicate_keys",
    "get_value_containing_crlf_end",
    "get_binary_value_all_bytes",
    "gats_multi",
    "incr_hit",
    "decr_hit",
    "get_after_decr_shrink",
    "delete_hit",
    "delete_miss",
    "delete_legacy_time_rejected",
    "stats",
    "stats_cachedump",
    "stats_reset",
    "pipeline_noreply_mix",
    "quit_after_get",
    "get_value_max",
];

/// Skipped cases of the classic groups that the server nevertheless accepted: memcached is
/// more lenient than the protocol (and than a client that validates keys), so these are not
/// well-formed requests even though no error came back.
const LENIENT_SERVER: [&str; 12] = [
    "version_extra_token_ignored",
    "set_flags_u32_overflow",
    "set_unknown_7th_token_ignored",
    "get_extra_spaces",
    "get_leading_spaces",
    "get_lf_only_terminator",
    "gat_no_keys",
    "key_control_char_set",
    "key_control_char_get",
    "key_tab_inside_set",
    "key_tab_inside_get",
    "key_nul_truncates_line",
];

struct Case {
    name: String,
    group: String,
    framing: String,
    request: Vec<u8>,
    response: Vec<u8>,
}

fn load() -> Vec<Case> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data");
    let mut cases = Vec::new();
    for file in FILES {
        let text = std::fs::read_to_string(format!("{dir}/{file}")).expect("vector file");
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let v: Json = serde_json::from_str(line).expect("json");
            let s = |f: &str| v[f].as_str().unwrap_or_else(|| panic!("{f} in {line:.80}")).to_owned();
            cases.push(Case {
                name: s("name"),
                group: s("group"),
                framing: s("framing"),
                request: payload(&v, "request"),
                response: payload(&v, "response"),
            });
        }
    }
    cases
}

/// `<field>_b64`, or `<field>_parts` expanded (base64 literals and byte runs).
fn payload(v: &Json, field: &str) -> Vec<u8> {
    if let Some(b64) = v[format!("{field}_b64")].as_str() {
        return B64.decode(b64).expect("base64");
    }
    let parts = v[format!("{field}_parts")].as_array().expect("b64 or parts");
    let mut out = Vec::new();
    for p in parts {
        if let Some(b64) = p["b64"].as_str() {
            out.extend(B64.decode(b64).expect("base64 part"));
        } else {
            let byte = u8::try_from(p["byte"].as_u64().expect("byte")).expect("byte value");
            let count = usize::try_from(p["count"].as_u64().expect("count")).expect("count");
            out.resize(out.len() + count, byte);
        }
    }
    if let Some(len) = v[format!("{field}_len")].as_u64() {
        assert_eq!(out.len() as u64, len, "{field}_len");
    }
    out
}

// ---------------------------------------------------------------------------------------------
// A strict request parser, written from the protocol text, not from the crate's encoder.

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
fn parse(req: &[u8]) -> Result<(Vec<Command>, bool), String> {
    NON_CANONICAL.set(false);
    let commands = parse_request(req)?;
    Ok((commands, !NON_CANONICAL.get()))
}

fn parse_request(req: &[u8]) -> Result<Vec<Command>, String> {
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

// ---------------------------------------------------------------------------------------------
// Decoding through `Connection`.

/// Sends `commands` on a new connection, checks what it transmits, feeds `chunks` (alternating
/// the copy and zero-copy input paths), and returns every completed reply.
fn run(commands: &[Command], chunks: impl IntoIterator<Item = impl AsRef<[u8]>>) -> Vec<Completed> {
    let mut conn = Connection::new();
    let ids: Vec<RequestId> = commands.iter().map(|c| conn.send(c)).collect();
    let mut sent = Vec::new();
    while let Some(bytes) = conn.poll_transmit() {
        sent.extend_from_slice(&bytes);
    }
    assert_eq!(sent, encode_all(commands), "poll_transmit hands out exactly the encoded commands");
    let mut done = Vec::new();
    let mut drain = |conn: &mut Connection| {
        while let Some(c) = conn.poll_response().unwrap_or_else(|e| panic!("protocol error: {e}")) {
            done.push(c);
        }
    };
    for (i, chunk) in chunks.into_iter().enumerate() {
        if i % 2 == 0 {
            conn.handle_input(chunk.as_ref());
        } else {
            conn.read_buf().extend_from_slice(chunk.as_ref());
        }
        drain(&mut conn);
    }
    drain(&mut conn);
    assert_eq!(conn.in_flight(), 0, "every request answered");
    assert!(conn.is_idle(), "nothing left over");
    assert_eq!(done.iter().map(|c| c.id).collect::<Vec<_>>(), ids, "replies in request order");
    done
}

fn encode_all(commands: &[Command]) -> Vec<u8> {
    let mut buf = BytesMut::new();
    for c in commands {
        c.encode(&mut buf);
    }
    buf.to_vec()
}

/// Offsets at which to split a large response: around every `\r\n`, plus a stride.
fn sample_offsets(resp: &[u8]) -> BTreeSet<usize> {
    let mut at: BTreeSet<usize> = (0..=resp.len()).step_by(4093).collect();
    at.insert(resp.len());
    for i in resp.windows(2).enumerate().filter(|(_, w)| w == b"\r\n").map(|(i, _)| i) {
        at.extend((i.saturating_sub(3)..=i + 5).filter(|&o| o <= resp.len()));
    }
    at
}

/// The decoded frames, after checking that every way of splitting the input gives them.
fn decode_every_way(commands: &[Command], resp: &[u8]) -> Vec<Response> {
    let whole = run(commands, [resp]);
    let bytewise = run(commands, resp.chunks(1));
    assert_eq!(bytewise, whole, "one byte at a time");
    let offsets: Box<dyn Iterator<Item = usize>> = if resp.len() > 64 * 1024 {
        Box::new(sample_offsets(resp).into_iter())
    } else {
        Box::new(0..=resp.len())
    };
    for at in offsets {
        let split = run(commands, [&resp[..at], &resp[at..]]);
        assert_eq!(split, whole, "split at {at}");
    }
    whole.into_iter().map(|c| c.response).collect()
}

// ---------------------------------------------------------------------------------------------
// What the frames mean.

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn is_error(r: &Response) -> bool {
    matches!(r, Response::Error | Response::ClientError(_) | Response::ServerError(_))
}

/// Generic checks that hold for any server answer to `command`.
fn check_meaning(command: &Command, response: &Response) {
    let noreply = matches!(
        command,
        Command::Store { noreply: true, .. }
            | Command::Delete { noreply: true, .. }
            | Command::Arith { noreply: true, .. }
            | Command::Touch { noreply: true, .. }
            | Command::FlushAll { noreply: true, .. }
            | Command::Verbosity { noreply: true, .. }
            | Command::Quit
    );
    if noreply {
        assert_eq!(response, &Response::NoReply, "{command:?}");
        return;
    }
    assert_ne!(response, &Response::NoReply, "{command:?} expects a reply");
    if is_error(response) {
        return;
    }
    match (command, response) {
        (Command::Get { keys, cas, .. }, Response::Values(values)) => {
            // memcached answers hits in request order: the keys are a subsequence of the request.
            let mut requested = keys.iter();
            for v in values {
                assert!(requested.any(|k| k.as_bytes() == v.key), "unrequested key {:?}", text(&v.key));
                assert_eq!(v.cas.is_some(), *cas, "CAS token iff gets/gats");
            }
        }
        (Command::Store { verb, .. }, r) => {
            let cas = matches!(verb, StoreVerb::Cas(_));
            let ok = match r {
                Response::Stored | Response::NotStored => true,
                Response::Exists | Response::NotFound => cas,
                _ => false,
            };
            assert!(ok, "{r:?} to {command:?}");
        }
        (Command::Delete { .. }, Response::Deleted | Response::NotFound) => {}
        (Command::Arith { .. }, Response::Number(_) | Response::NotFound) => {}
        (Command::Touch { .. }, Response::Touched | Response::NotFound) => {}
        (Command::FlushAll { .. } | Command::Verbosity { .. }, Response::Ok) => {}
        (Command::Version, Response::Version(v)) => assert_eq!(&v[..], b"1.6.18"),
        (Command::Stats { arg }, Response::Stats(stats)) => {
            let arg = arg.as_ref().map(|a| a.as_bytes().to_vec()).unwrap_or_default();
            let cachedump = arg.starts_with(b"cachedump");
            for s in stats {
                assert!(!s.name.is_empty() && !s.name.contains(&b' '), "stat name {:?}", text(&s.name));
                assert_eq!(s.item, cachedump, "ITEM lines only for cachedump");
            }
        }
        (Command::Stats { arg: Some(arg) }, Response::Reset) => assert_eq!(arg.as_bytes(), b"reset"),
        (c, r) => panic!("{r:?} is no answer to {c:?}"),
    }
}

fn value(key: &str, flags: u32, cas: Option<u64>, data: &[u8]) -> Value {
    Value { key: Bytes::copy_from_slice(key.as_bytes()), flags, cas, data: Bytes::copy_from_slice(data) }
}

fn stats_map(r: &Response) -> BTreeMap<String, String> {
    let Response::Stats(stats) = r else { panic!("not stats: {r:?}") };
    stats.iter().map(|Stat { name, value, .. }| (text(name), text(value))).collect()
}

/// Exact expectations for well-known cases.
fn check_named(name: &str, frames: &[Response]) {
    let one = || {
        assert_eq!(frames.len(), 1, "{name}: one frame");
        &frames[0]
    };
    let values = |vs: Vec<Value>| Response::Values(vs);
    match name {
        "flush_all" | "verbosity_set" => assert_eq!(one(), &Response::Ok),
        "version" => assert_eq!(one(), &Response::Version(Bytes::from_static(b"1.6.18"))),
        "set_stored" | "cas_matching_stored" => assert_eq!(one(), &Response::Stored),
        "add_existing_not_stored" => assert_eq!(one(), &Response::NotStored),
        "cas_wrong_unique_exists" => assert_eq!(one(), &Response::Exists),
        "cas_missing_key_not_found" | "delete_miss" | "incr_miss" | "touch_miss" => {
            assert_eq!(one(), &Response::NotFound)
        }
        "delete_hit" => assert_eq!(one(), &Response::Deleted),
        "touch_hit" => assert_eq!(one(), &Response::Touched),
        "get_hit" => assert_eq!(one(), &values(vec![value("foo", 0, None, b"bar")])),
        "get_miss" | "get_multi_all_miss" => assert_eq!(one(), &values(vec![])),
        "gets_multi" => assert_eq!(
            one(),
            &values(vec![value("foo", 0, Some(18), b"bar"), value("flagged", 123, Some(3), b"hello")])
        ),
        "get_multi_mixed" => assert_eq!(
            one(),
            &values(vec![
                value("foo", 0, None, b"bar"),
                value("flagged", 123, None, b"hello"),
                value("empty", 0, None, b"")
            ])
        ),
        "get_duplicate_keys" => {
            assert_eq!(one(), &values(vec![value("foo", 0, None, b"bar"), value("foo", 0, None, b"bar")]))
        }
        "get_value_containing_crlf_end" => assert_eq!(
            one(),
            &values(vec![value("crlfval", 0, None, b"line1\r\nEND\r\nVALUE x 0 1\r\ny\r\n")])
        ),
        "get_binary_value_all_bytes" => {
            let all: Vec<u8> = (0..=255).collect();
            assert_eq!(one(), &values(vec![value("binval", 0, None, &all)]))
        }
        "get_flags_u32_max" => assert_eq!(one(), &values(vec![value("fmax", u32::MAX, None, b"x")])),
        "get_after_decr_shrink" => assert_eq!(one(), &values(vec![value("pad", 0, None, b"99 ")])),
        "incr_hit" => assert_eq!(one(), &Response::Number(15)),
        "decr_hit" => assert_eq!(one(), &Response::Number(12)),
        "decr_underflow_clamps_zero" | "incr_wraps_at_2pow64" => assert_eq!(one(), &Response::Number(0)),
        "incr_on_space_padded" => assert_eq!(one(), &Response::Number(100)),
        "incr_non_numeric_value" => assert_eq!(
            one(),
            &Response::ClientError(Bytes::from_static(b"cannot increment or decrement non-numeric value"))
        ),
        "delete_legacy_time_rejected" => assert_eq!(
            one(),
            &Response::ClientError(Bytes::from_static(
                b"bad command line format.  Usage: delete <key> [noreply]"
            ))
        ),
        "stats" => {
            let m = stats_map(one());
            assert_eq!(m["version"], "1.6.18");
            for n in ["pid", "uptime", "curr_connections", "get_hits", "cmd_get"] {
                assert!(m[n].parse::<u64>().is_ok(), "{n} = {}", m[n]);
            }
        }
        "stats_settings" => assert_eq!(stats_map(one())["maxbytes"], "67108864"),
        "stats_cachedump" => {
            let Response::Stats(s) = one() else { panic!("stats") };
            let names: Vec<_> = s.iter().map(|s| (s.item, text(&s.name))).collect();
            assert_eq!(names, [(true, "d21".into()), (true, "u64b".into()), (true, "u64".into())]);
        }
        "stats_detail_dump_empty" => assert_eq!(one(), &Response::Stats(vec![])),
        "stats_reset" => assert_eq!(one(), &Response::Reset),
        "stats_unknown_subcommand" => assert_eq!(one(), &Response::Error),
        "pipeline_noreply_mix" => assert_eq!(
            frames,
            [
                Response::NoReply,
                Response::NoReply,
                Response::NoReply,
                values(vec![value("p2", 0, None, b"b")])
            ]
        ),
        "quit" => assert_eq!(frames, [Response::NoReply]),
        "quit_after_get" => assert_eq!(frames, [values(vec![value("pc", 0, None, b"C")]), Response::NoReply]),
        "get_value_max" => assert_eq!(one(), &values(vec![value("big", 0, None, &vec![b'a'; 1_048_514])])),
        "set_value_max_plus_one_too_large" => {
            assert_eq!(one(), &Response::ServerError(Bytes::from_static(b"object too large for cache")))
        }
        _ => {}
    }
}

// ---------------------------------------------------------------------------------------------

#[derive(Default)]
struct Tally {
    checked: BTreeSet<String>,
    exact_encode: usize,
    encode_differs: Vec<String>,
    unparsed: Vec<(String, String)>,
    framing_skipped: Vec<String>,
    failed: Vec<String>,
}

/// Checks one parsed case; returns `false` when its framing cannot be replayed.
fn check_case(case: &Case, commands: &[Command]) -> bool {
    // With `eof` framing the server closed the connection: a `quit` is answered by nothing,
    // and what follows it is never read.
    let answered = match case.framing.as_str() {
        "sentinel" => commands,
        "eof" => match commands.iter().position(|c| matches!(c, Command::Quit)) {
            Some(q) => &commands[..=q],
            None => return false,
        },
        _ => return false,
    };
    let frames = decode_every_way(answered, &case.response);
    assert_eq!(frames.len(), answered.len());
    let mut reencoded = BytesMut::new();
    for f in &frames {
        f.encode(&mut reencoded);
    }
    assert_eq!(text(&reencoded), text(&case.response), "Response::encode reproduces the reply");
    for (c, r) in answered.iter().zip(&frames) {
        check_meaning(c, r);
    }
    check_named(&case.name, &frames);
    true
}

#[test]
fn recorded_vectors() {
    let cases = load();
    assert!(cases.len() >= 330, "both vector files loaded");
    let mut t = Tally::default();
    for case in &cases {
        let (commands, canonical) = match parse(&case.request) {
            Ok(c) => c,
            Err(why) => {
                t.unparsed.push((case.name.clone(), why));
                continue;
            }
        };
        // A canonically spelled request must be rebuilt byte for byte; others are counted.
        if canonical {
            assert_eq!(
                text(&encode_all(&commands)),
                text(&case.request),
                "{}: re-encoded request",
                case.name
            );
            t.exact_encode += 1;
        } else {
            t.encode_differs.push(case.name.clone());
        }
        match catch_unwind(AssertUnwindSafe(|| check_case(case, &commands))) {
            Ok(true) => {
                t.checked.insert(case.name.clone());
            }
            Ok(false) => t.framing_skipped.push(case.name.clone()),
            Err(_) => t.failed.push(case.name.clone()),
        }
    }

    println!(
        "vectors: {} cases; {} checked ({} re-encoded byte for byte, {} parsed but not re-encoded \
         exactly (non-canonical numbers): {:?}); skipped: {} not well-formed classic requests, {} framing not replayable {:?}",
        cases.len(),
        t.checked.len(),
        t.exact_encode,
        t.encode_differs.len(),
        t.encode_differs,
        t.unparsed.len(),
        t.framing_skipped.len(),
        t.framing_skipped,
    );
    for (name, why) in &t.unparsed {
        println!("  skipped {name}: {why}");
    }
    assert!(t.failed.is_empty(), "failed cases (see panics above): {:?}", t.failed);

    // The parser is strict about spacing and case, so only numbers with leading zeros could
    // keep a request from being re-encoded exactly; they must stay the exception.
    assert!(t.encode_differs.len() * 10 <= t.checked.len(), "non-canonical: {:?}", t.encode_differs);
    for name in MUST_CHECK {
        assert!(t.checked.contains(name), "{name} must be checked");
    }
    let unparsed: BTreeMap<&str, &str> = t.unparsed.iter().map(|(n, w)| (n.as_str(), w.as_str())).collect();
    let classic: Vec<&Case> = cases.iter().filter(|c| CLASSIC_GROUPS.contains(&c.group.as_str())).collect();
    let mut classic_checked = 0;
    for case in &classic {
        match unparsed.get(case.name.as_str()) {
            // Parsed: it must have been checked, not dropped for its framing.
            None => {
                assert!(t.checked.contains(&case.name), "{} parsed but was not checked", case.name);
                classic_checked += 1;
            }
            // Skipped: the parser may only refuse what is not classic, what the server itself
            // refused, or the few malformed requests the server is lenient about.
            Some(why) => {
                let server_refused = String::from_utf8_lossy(&case.response).contains("ERROR");
                assert!(
                    why.starts_with("not a classic command")
                        || server_refused
                        || LENIENT_SERVER.contains(&case.name.as_str()),
                    "{} skipped ({why}) although the server accepted it",
                    case.name
                );
            }
        }
    }
    // Most of the classic groups must be covered (many of their cases are deliberately
    // malformed requests, which the checks above account for).
    assert!(
        classic_checked * 2 >= classic.len(),
        "only {classic_checked} of {} classic-group cases checked",
        classic.len()
    );
    // Every skipped-but-lenient name exists (a typo would silently weaken the check above).
    for name in LENIENT_SERVER {
        assert!(unparsed.contains_key(name), "{name} is listed as lenient but was parsed");
    }
}

#[test]
fn parser_is_strict() {
    for bad in [
        &b"get  foo\r\n"[..],
        b"GET foo\r\n",
        b"get foo\n",
        b"get\r\n",
        b"set k 0 0 3\r\nabcd\r\n",
        b"set k 0 0 1 norepl\r\nx\r\n",
        b"incr k -1\r\n",
        b"touch k\r\n",
        b"version x\r\n",
        b"mg foo v\r\n",
    ] {
        assert!(parse_request(bad).is_err(), "{:?}", text(bad));
    }
    let ok = b"delete k 0 noreply\r\nflush_all 10\r\nstats cachedump 1 2\r\nverbosity 1 noreply\r\n";
    let (commands, canonical) = parse(ok).expect("well-formed");
    assert!(canonical);
    assert_eq!(commands.len(), 4);
    assert_eq!(encode_all(&commands), ok);
    for odd in [&b"touch k 007\r\n"[..], b"touch k -0\r\n", b"set k 01 0 1\r\nx\r\n"] {
        let (commands, canonical) = parse(odd).expect("parses");
        assert!(!canonical, "{:?}", text(odd));
        assert_ne!(encode_all(&commands), odd);
    }
}
