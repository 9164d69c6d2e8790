//! Helpers shared by the decoder test files: a command for each reply shape, rendering
//! replies, and driving a `Connection` through chunked input.

use bytes::{Bytes, BytesMut};
use memcache_proto::command::{ArithVerb, StoreVerb};
use memcache_proto::meta::MetaGet;
use memcache_proto::{Command, Completed, Connection, Key, Limits, ProtoError, ReplyKind, Response};

/// Every reply shape (the fuzzers' list, so that both cover the same shapes).
pub use memcache_fuzz::arb::KINDS;

pub fn key(k: &str) -> Key {
    Key::copy_from(k.as_bytes()).expect("valid key")
}

/// A command whose reply has shape `kind`.
pub fn command_for(kind: ReplyKind) -> Command {
    match kind {
        ReplyKind::Values => Command::Get { keys: key("k").into(), cas: false, touch: None },
        ReplyKind::Store => Command::Store {
            verb: StoreVerb::Set,
            key: key("k"),
            flags: 0,
            exptime: 0,
            value: Bytes::from_static(b"v"),
            noreply: false,
        },
        ReplyKind::Delete => Command::Delete { key: key("k"), hold: None, noreply: false },
        ReplyKind::Arith => Command::Arith { verb: ArithVerb::Incr, key: key("k"), delta: 1, noreply: false },
        ReplyKind::Touch => Command::Touch { key: key("k"), exptime: 1, noreply: false },
        ReplyKind::Ok => Command::FlushAll { delay: None, noreply: false },
        ReplyKind::Version => Command::Version,
        ReplyKind::Stats => Command::Stats { arg: None },
        ReplyKind::None => Command::Delete { key: key("k"), hold: None, noreply: true },
        ReplyKind::Meta => Command::Meta(MetaGet::new("k").expect("key").into()),
        ReplyKind::MetaBatch => Command::MetaBatch(vec![MetaGet::new("k").expect("key").into()]),
        other => panic!("no command for {other:?}"),
    }
}

pub fn encode(responses: &[Response]) -> Vec<u8> {
    let mut buf = BytesMut::new();
    for r in responses {
        r.encode(&mut buf);
    }
    buf.to_vec()
}

/// Sends one command per kind, feeds `input` chunk by chunk (alternating the copy and the
/// zero-copy paths), and collects replies until the first error.
pub fn drive(
    kinds: &[ReplyKind],
    input: &[&[u8]],
    limits: Limits,
) -> (Vec<Completed>, Option<ProtoError>, Connection) {
    let mut conn = Connection::with_limits(limits);
    for &k in kinds {
        conn.send(&command_for(k));
    }
    while conn.poll_transmit().is_some() {}
    let mut done = Vec::new();
    for (i, chunk) in input.iter().enumerate() {
        if i % 2 == 0 {
            conn.handle_input(chunk);
        } else {
            conn.read_buf().extend_from_slice(chunk);
        }
        loop {
            match conn.poll_response() {
                Ok(Some(c)) => done.push(c),
                Ok(None) => break,
                Err(e) => return (done, Some(e), conn),
            }
        }
    }
    (done, None, conn)
}
