//! [`Fault::ReversedValues`](super::Fault::ReversedValues): a fake server that answers
//! multi-key gets the way a proxy in front of several servers may, in another order than asked.
//!
//! It stores nothing: every requested key is a hit whose value is the key itself, except keys
//! starting with `miss`, which are misses. Values come in reverse request order. A key starting
//! with `stray` also brings a value for `not-requested`, a key nobody asked for, which a client
//! must treat as a desync. `version` is answered; every other command gets `ERROR`.

use std::io::Write;
use std::net::TcpStream;
use std::sync::atomic::Ordering;

use super::{Counters, read_chunk};

/// The key [`Fault::ReversedValues`](super::Fault::ReversedValues) adds to a reply that asked
/// for a `stray...` key.
pub const NOT_REQUESTED: &str = "not-requested";

/// Answers every complete request line of the connection until it closes.
pub(super) fn serve(mut stream: TcpStream, counters: &Counters) {
    let mut buf = vec![0u8; 16 * 1024];
    let mut pending = Vec::new();
    while let Some(n) = read_chunk(&mut stream, &mut buf) {
        counters.bytes.fetch_add(n, Ordering::SeqCst);
        pending.extend_from_slice(&buf[..n]);
        let mut reply = Vec::new();
        while let Some(end) = pending.windows(2).position(|w| w == b"\r\n") {
            let line: Vec<u8> = pending.drain(..end + 2).take(end).collect();
            answer(&line, &mut reply);
        }
        if stream.write_all(&reply).is_err() {
            return;
        }
    }
}

fn answer(line: &[u8], reply: &mut Vec<u8>) {
    let mut words = line.split(|&b| b == b' ').filter(|w| !w.is_empty());
    match words.next() {
        Some(verb @ (b"get" | b"gets")) => {
            let keys: Vec<&[u8]> = words.collect();
            let cas = verb == b"gets";
            if keys.iter().any(|k| k.starts_with(b"stray")) {
                value(reply, NOT_REQUESTED.as_bytes(), cas);
            }
            for key in keys.iter().rev().filter(|k| !k.starts_with(b"miss")) {
                value(reply, key, cas);
            }
            reply.extend_from_slice(b"END\r\n");
        }
        Some(b"version") => reply.extend_from_slice(b"VERSION reversed-values\r\n"),
        _ => reply.extend_from_slice(b"ERROR\r\n"),
    }
}

fn value(reply: &mut Vec<u8>, key: &[u8], cas: bool) {
    reply.extend_from_slice(b"VALUE ");
    reply.extend_from_slice(key);
    let cas = if cas { " 1" } else { "" };
    reply.extend_from_slice(format!(" 0 {}{cas}\r\n", key.len()).as_bytes());
    reply.extend_from_slice(key);
    reply.extend_from_slice(b"\r\n");
}
