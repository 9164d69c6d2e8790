//! The recorded cases, read from the vector files.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::Value as Json;

const FILES: [&str; 2] = ["memcached-1.6.18.jsonl", "memcached-1.6.18-large.jsonl"];

pub(crate) struct Case {
    pub(crate) name: String,
    pub(crate) group: String,
    pub(crate) framing: String,
    pub(crate) request: Vec<u8>,
    pub(crate) response: Vec<u8>,
}

pub(crate) fn load() -> Vec<Case> {
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
