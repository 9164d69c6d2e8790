//! Fuzz targets for memcache-proto, as plain functions.
//!
//! Each target is a `fn(&[u8])` that panics when a property fails. The binaries in
//! `fuzz_targets/` hand them to libFuzzer under `cargo fuzz run` (which sets `--cfg fuzzing`);
//! on stable without it the same binaries replay files (`cargo run -p memcache-fuzz --bin
//! decode -- FILE...`), and `tests/replay.rs` runs every target over its committed seeds and
//! regression inputs as part of `cargo test -p memcache-fuzz`.
//!
//! | target | what it checks |
//! |---|---|
//! | [`decode`] | the decoder on arbitrary bytes: no panic, consumes only from the front, bounded by `Limits` |
//! | [`decode_split`] | decoding in one piece and in arbitrary chunks gives the same replies |
//! | [`connection`] | `Connection` under arbitrary calls: order, counts, exact replies, poisoning |
//! | [`roundtrip`] | commands through the encoder and an independent parser; replies through encode and decode |
//! | [`selector`] | `pick_server` against an independent CRC32 |
//! | [`meta`] | quiet meta batches against a scripted server: opaque matching, quiet successes, error lines; raw bytes as batch replies |
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod arb;
mod connection;
mod decode;
mod meta;
pub mod request;
mod roundtrip;
mod selector;

pub use connection::{Step, connection, connection_input};
pub use decode::{decode, decode_input, decode_split, decode_split_input};
pub use meta::{meta, meta_raw_input};
pub use roundtrip::{raw_request_input, roundtrip};
pub use selector::{crc32_ieee, selector, selector_input};

/// A fuzz target body.
pub type Target = fn(&[u8]);

/// Every target, by the name of its binary (and of its corpus directory).
pub const TARGETS: [(&str, Target); 6] = [
    ("decode", decode),
    ("decode_split", decode_split),
    ("connection", connection),
    ("roundtrip", roundtrip),
    ("selector", selector),
    ("meta", meta),
];

/// The `main` of a target binary built without libFuzzer: runs `target` over every file named
/// on the command line (directories are read one level deep) and says how many passed.
pub fn replay_main(target: Target) {
    let mut files = Vec::new();
    for arg in std::env::args_os().skip(1) {
        let path = std::path::PathBuf::from(arg);
        match std::fs::read_dir(&path) {
            Ok(dir) => files.extend(dir.filter_map(|e| e.ok()).map(|e| e.path()).filter(|p| p.is_file())),
            Err(_) => files.push(path),
        }
    }
    files.sort();
    for file in &files {
        let data = std::fs::read(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        eprintln!("replaying {} ({} bytes)", file.display(), data.len());
        target(&data);
    }
    eprintln!("{} inputs replayed without failure", files.len());
}
