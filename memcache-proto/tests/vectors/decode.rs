//! Decoding through `Connection`.

use std::collections::BTreeSet;

use bytes::BytesMut;
use memcache_proto::{Command, Completed, Connection, RequestId, Response};

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

pub(crate) fn encode_all(commands: &[Command]) -> Vec<u8> {
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
pub(crate) fn decode_every_way(commands: &[Command], resp: &[u8]) -> Vec<Response> {
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
