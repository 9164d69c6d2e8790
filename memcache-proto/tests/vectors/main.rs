//! Replays the request/response pairs recorded from a real memcached 1.6.18
//! (`tests/data/memcached-1.6.18*.jsonl`, schema in the vectors' README).
//!
//! For every case whose request is a sequence of well-formed classic commands:
//! - a strict parser written here (independent of the crate's encoder) turns the request into
//!   `Command`s, and `Command::encode` must reproduce the request byte for byte;
//! - the response is fed to a `Connection` whole, one byte at a time, and split in two at every
//!   offset (a sample of offsets for the large cases); every way must give the same frames,
//!   leave nothing over, re-encode to the exact response bytes, and mean what the server said.

mod data;
mod decode;
mod meaning;
mod meta;
mod request;

use std::collections::{BTreeMap, BTreeSet};
use std::panic::{AssertUnwindSafe, catch_unwind};

use bytes::BytesMut;
use memcache_proto::Command;

use data::{Case, load};
use decode::{decode_every_way, encode_all};
use meaning::{check_meaning, check_named, text};
use request::{parse, parse_request};

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

    let built = meta::check_meta_cases(&cases, &t.checked);
    println!("meta: 146 cases decoded every way; {} rebuilt from typed builders", built.len());
    let not: Vec<_> = cases
        .iter()
        .filter(|c| c.group.starts_with("meta") && !built.contains(&c.name))
        .map(|c| &c.name)
        .collect();
    println!("meta: not rebuilt (a flag no builder sets, e.g. q without opaque, or refused input): {not:?}");
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
