//! Regenerates the committed seed corpora (`corpus/<target>/seed-*`) from the recorded
//! vectors of memcache-proto (`memcache-proto/tests/data/memcached-1.6.18.jsonl`):
//!
//! ```text
//! cargo run -p memcache-fuzz --example gen_seeds
//! ```
//!
//! Responses seed `decode` and `decode_split` (with the reply kinds of their requests), requests
//! seed `roundtrip`, request and response together seed `connection`, and a few server lists
//! seed `selector`. Meta responses (ended by the sentinel's `MN`) seed `decode` as batch
//! replies and `meta` (raw mode); a few fixed byte patterns seed `meta`'s scripted mode. Only small cases are taken, at most [`PER_TARGET`] per target, spread over
//! the vector groups.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use memcache_fuzz::{Step, request};
use memcache_proto::ReplyKind;
use serde_json::Value as Json;

const PER_TARGET: usize = 40;
const MAX_LEN: usize = 4096;

fn fuzz_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `(name, request, response)` of every vector case whose bytes are inline and small.
fn cases() -> Vec<(String, Vec<u8>, Vec<u8>)> {
    let file = fuzz_dir().join("../memcache-proto/tests/data/memcached-1.6.18.jsonl");
    let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    let mut out = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let v: Json = serde_json::from_str(line).expect("json");
        let b64 = |f: &str| v[f].as_str().map(|s| B64.decode(s).expect("base64"));
        let (Some(name), Some(req), Some(resp)) =
            (v["name"].as_str(), b64("request_b64"), b64("response_b64"))
        else {
            continue;
        };
        if req.len() <= MAX_LEN && resp.len() <= MAX_LEN {
            out.push((name.to_owned(), req, resp));
        }
    }
    out
}

/// At most `max` of `items`, evenly spread.
fn spread<T>(items: Vec<T>, max: usize) -> Vec<T> {
    let n = items.len();
    let step = n.div_ceil(max).max(1);
    items.into_iter().step_by(step).collect()
}

fn write(target: &str, seeds: Vec<(String, Vec<u8>)>) {
    let dir = fuzz_dir().join("corpus").join(target);
    std::fs::create_dir_all(&dir).expect("corpus dir");
    for entry in std::fs::read_dir(&dir).expect("read corpus dir").flatten() {
        if entry.file_name().to_string_lossy().starts_with("seed-") {
            std::fs::remove_file(entry.path()).expect("remove old seed");
        }
    }
    for (name, data) in &seeds {
        std::fs::write(dir.join(format!("seed-{name}")), data).expect("write seed");
    }
    println!("{target}: {} seeds", seeds.len());
}

/// Writes the seed corpora; run after the vectors change.
fn main() {
    let all = ["decode", "decode_split", "connection", "roundtrip", "selector", "meta"];
    assert!(all.iter().all(|t| memcache_fuzz::TARGETS.iter().any(|(n, _)| n == t)));
    let (mut decode, mut split, mut conn, mut roundtrip) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut meta, mut meta_decode) = (Vec::new(), Vec::new());
    for (i, (name, req, resp)) in cases().into_iter().enumerate() {
        let is_meta = [&b"mg "[..], b"ms ", b"md ", b"ma ", b"me "].iter().any(|v| req.starts_with(v));
        if is_meta {
            let mut batch = resp.clone();
            batch.extend_from_slice(b"MN\r\n");
            meta_decode
                .push((name.clone(), memcache_fuzz::decode_input(ReplyKind::MetaBatch, [0xff; 3], &batch)));
            meta.push((name.clone(), memcache_fuzz::meta_raw_input(&batch)));
            continue;
        }
        let Ok(commands) = request::parse(&req) else { continue };
        let kinds: Vec<ReplyKind> = commands.iter().map(|c| c.reply_kind()).collect();
        if let [kind] = kinds[..]
            && kind != ReplyKind::None
        {
            decode.push((name.clone(), memcache_fuzz::decode_input(kind, [0xff; 3], &resp)));
        }
        let chunks = [[0u8].as_slice(), &[3, 0], &[6], &[1, 9, 2]][i % 4];
        split.push((name.clone(), memcache_fuzz::decode_split_input([0xff; 3], &kinds, chunks, &resp)));
        let mid = resp.len() / 2;
        let steps = [
            Step::SendRequest(&req),
            Step::Transmit(1),
            Step::FeedRaw { copy: i % 2 == 0, bytes: &resp[..mid] },
            Step::PollAll,
            Step::FeedRaw { copy: i % 2 == 1, bytes: &resp[mid..] },
            Step::PollAll,
            Step::Transmit(4),
        ];
        conn.push((name.clone(), memcache_fuzz::connection_input(&steps)));
        roundtrip.push((name, memcache_fuzz::raw_request_input(&req)));
    }
    let mut decode = spread(decode, PER_TARGET);
    decode.extend(spread(meta_decode, PER_TARGET / 4));
    write("decode", decode);
    write("decode_split", spread(split, PER_TARGET));
    write("connection", spread(conn, PER_TARGET));
    write("roundtrip", spread(roundtrip, PER_TARGET));
    let lists: [&[[u8; 4]]; 6] = [
        &[],
        &[[1, 1, 0x97, 0x2b]],
        &[[1, 1, 0x97, 0x2b], [1, 1, 0x98, 0x2b]],
        &[[1, 1, 0x97, 0x2b], [2, 1, 0x97, 0x2b], [0, 7, 0, 0]],
        &[[1, 1, 0x97, 0x2b], [3, 0, 0, 0], [1, 3, 0x97, 0x2b], [0, 2, 1, 0], [2, 9, 9, 9]],
        &[
            [1, 10, 1, 1],
            [1, 11, 1, 1],
            [1, 12, 1, 1],
            [1, 13, 1, 1],
            [1, 14, 1, 1],
            [1, 15, 1, 1],
            [1, 16, 1, 1],
        ],
    ];
    let keys: [&[u8]; 4] = [b"foo", b"", b"key0", &[b'k'; 250]];
    let mut selector = Vec::new();
    for list in lists {
        for (j, key) in keys.iter().enumerate() {
            selector.push((format!("{}-servers-{j}", list.len()), memcache_fuzz::selector_input(list, key)));
        }
    }
    write("selector", spread(selector, PER_TARGET));
    let mut meta = spread(meta, PER_TARGET);
    for mode in 1u8..=8 {
        let bytes: Vec<u8> =
            (0..600u32).map(|i| (i.wrapping_mul(2_654_435_761) >> (mode % 24)) as u8).collect();
        meta.push((format!("scripted-{mode}"), [&[mode][..], &bytes].concat()));
    }
    write("meta", meta);
    assert!(Path::new(&fuzz_dir().join("corpus")).is_dir());
}
