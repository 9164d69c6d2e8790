//! The `roundtrip` target: commands through the encoder and an independent parser, replies
//! through `Response::encode` and the decoder.

use arbitrary::{Result, Unstructured};
use bytes::BytesMut;
use memcache_proto::{Command, Connection, Decoder, Limits, ReplyKind, Response};

use crate::{arb, request};

/// The input of [`roundtrip`] that checks a raw request stream (for seeds).
pub fn raw_request_input(request: &[u8]) -> Vec<u8> {
    let mut out = vec![1];
    out.extend_from_slice(request);
    out
}

/// Target `roundtrip`. An input whose first byte is odd is a raw request stream: if the
/// independent parser reads it, encoding what it read gives back exactly those bytes. Otherwise
/// the rest drives generation: valid commands encode (with `Command::encode` and through
/// `Connection::poll_transmit`) to bytes the parser reads back to the same commands, and
/// valid replies rendered with `Response::encode` decode back to the same replies.
pub fn roundtrip(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else { return };
    if mode % 2 == 1 {
        if let Ok(commands) = request::parse(rest) {
            assert_eq!(encode(&commands), rest, "re-encoding {commands:?}");
        }
        return;
    }
    let mut u = Unstructured::new(rest);
    // Running out of bytes only cuts the case short.
    let _ = commands(&mut u);
    let _ = replies(&mut u);
}

/// Encodes `commands` both ways, checks that the ways agree, and returns the bytes.
fn encode(commands: &[Command]) -> Vec<u8> {
    let mut direct = BytesMut::new();
    let mut conn = Connection::new();
    for c in commands {
        c.encode(&mut direct);
        conn.send(c);
    }
    let mut transmitted = Vec::new();
    while let Some(chunk) = conn.poll_transmit() {
        transmitted.extend_from_slice(&chunk);
    }
    assert_eq!(transmitted, direct, "poll_transmit hands out exactly Command::encode's bytes");
    transmitted
}

fn commands(u: &mut Unstructured<'_>) -> Result<()> {
    let n = u.int_in_range(1..=8usize)?;
    let commands = (0..n).map(|_| arb::command(u)).collect::<Result<Vec<_>>>()?;
    let bytes = encode(&commands);
    match request::parse(&bytes) {
        Ok(parsed) => assert_eq!(parsed, commands, "{:?}", String::from_utf8_lossy(&bytes)),
        Err(e) => panic!("{e}: {:?} encoded as {:?}", commands, String::from_utf8_lossy(&bytes)),
    }
    Ok(())
}

fn replies(u: &mut Unstructured<'_>) -> Result<()> {
    let n = u.int_in_range(1..=8usize)?;
    let mut kinds: Vec<ReplyKind> = Vec::with_capacity(n);
    let mut replies: Vec<Response> = Vec::with_capacity(n);
    let mut bytes = BytesMut::new();
    for _ in 0..n {
        let kind = arb::kind(u.arbitrary()?);
        let reply = arb::response(u, kind)?;
        reply.encode(&mut bytes);
        kinds.push(kind);
        replies.push(reply);
    }
    let mut decoder = Decoder::new(Limits::DEFAULT);
    for (kind, reply) in kinds.iter().zip(&replies) {
        let got = decoder.decode(*kind, &mut bytes);
        assert_eq!(got.as_ref(), Ok(&Some(reply.clone())), "decoding a rendered {kind:?} reply");
    }
    assert!(bytes.is_empty(), "rendered replies left {bytes:?}");
    Ok(())
}
