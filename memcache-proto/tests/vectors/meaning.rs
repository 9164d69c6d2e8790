//! What the frames mean.

use std::collections::BTreeMap;

use bytes::Bytes;
use memcache_proto::command::StoreVerb;
use memcache_proto::response::{Stat, Value};
use memcache_proto::{Command, Response};

pub(crate) fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn is_error(r: &Response) -> bool {
    matches!(r, Response::Error | Response::ClientError(_) | Response::ServerError(_))
}

/// Generic checks that hold for any server answer to `command`.
pub(crate) fn check_meaning(command: &Command, response: &Response) {
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
                assert!(requested.any(|k| k == v.key), "unrequested key {:?}", text(&v.key));
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
pub(crate) fn check_named(name: &str, frames: &[Response]) {
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
