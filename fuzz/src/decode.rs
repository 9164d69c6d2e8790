//! The `decode` and `decode_split` targets: the reply decoder on arbitrary bytes.

use bytes::BytesMut;
use memcache_proto::{Decoder, Limits, ProtoError, ReplyKind, Response};

use crate::arb;

/// Most capacity the read buffer may have after decoding `fed` bytes under `limits`: what was
/// fed plus one value block, doubled for amortised growth. A decoder that reserved what the
/// peer announced before checking it against the limits would blow through this.
fn capacity_bound(fed: usize, limits: Limits) -> usize {
    2 * (fed + limits.max_value_len + 2) + 64
}

/// Checks an error against the limits that caused it.
fn check_error(e: &ProtoError, limits: Limits) {
    match e {
        ProtoError::LineTooLong { limit } => assert_eq!(*limit, limits.max_line_len),
        ProtoError::ValueTooLarge { len, limit } => {
            assert_eq!(*limit, limits.max_value_len);
            assert!(*len > *limit as u64, "{len} bytes rejected under a limit of {limit}");
        }
        ProtoError::TooManyValues { limit } => assert_eq!(*limit, limits.max_values),
        _ => {}
    }
}

/// A decoded reply, rendered with `Response::encode` and decoded again, is the same reply.
fn check_reencodes(kind: ReplyKind, response: &Response) {
    let mut bytes = BytesMut::new();
    response.encode(&mut bytes);
    let again = Decoder::new(Limits::DEFAULT).decode(kind, &mut bytes);
    assert_eq!(again.as_ref(), Ok(&Some(response.clone())), "re-encoded {response:?}");
    assert!(bytes.is_empty(), "re-encoded {response:?} left {bytes:?}");
}

/// The input of [`decode`]: a reply kind, the limit bytes of [`arb::limits`], then the bytes.
pub fn decode_input(kind: ReplyKind, limits: [u8; 3], data: &[u8]) -> Vec<u8> {
    let mut out = vec![arb::kind_byte(kind), limits[0], limits[1], limits[2]];
    out.extend_from_slice(data);
    out
}

/// Target `decode`: replies of one kind are decoded from arbitrary bytes, one after another,
/// under small limits. The decoder never panics, only ever removes bytes from the front of the
/// buffer (never more than it holds), returns only replies of the kind asked for (which
/// re-encode to themselves), polls idempotently when it needs more input, reports the limits
/// that were actually exceeded, and never grows the buffer beyond the limits.
pub fn decode(data: &[u8]) {
    let [k, l, v, n, rest @ ..] = data else { return };
    let kind = arb::kind(*k);
    let limits = arb::limits(*l, *v, *n);
    let mut decoder = Decoder::new(limits);
    let mut buf = BytesMut::from(rest);
    let bound = capacity_bound(rest.len(), limits);
    // Every reply but `NoReply` consumes at least one byte, so this bounds the loop.
    for _ in 0..=rest.len() {
        let before = buf.len();
        let result = decoder.decode(kind, &mut buf);
        assert!(rest.ends_with(&buf), "the decoder only removes bytes from the front");
        assert!(buf.capacity() <= bound, "capacity {} over {bound} under {limits:?}", buf.capacity());
        match result {
            Ok(Some(response)) => {
                assert!(arb::fits(kind, &response), "{response:?} is no {kind:?} reply");
                if kind == ReplyKind::None {
                    assert_eq!(buf.len(), before, "no reply consumes nothing");
                    return;
                }
                assert!(buf.len() < before, "{response:?} consumed nothing");
                check_reencodes(kind, &response);
            }
            Ok(None) => {
                let after = buf.len();
                assert_eq!(decoder.decode(kind, &mut buf), Ok(None), "polling again without input");
                assert_eq!(buf.len(), after, "polling again without input consumed bytes");
                return;
            }
            Err(e) => return check_error(&e, limits),
        }
    }
    panic!("more replies than input bytes");
}

/// What decoding a stream gave: the replies, the error that ended it (if any), how many kinds
/// were used, and the bytes left in the buffer.
#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    replies: Vec<Response>,
    error: Option<ProtoError>,
    rest: Vec<u8>,
}

/// Feeds `chunks` one by one, decoding replies of `kinds` in turn after each, until the kinds
/// run out or an error ends the stream.
fn run<'a>(limits: Limits, kinds: &[ReplyKind], chunks: impl Iterator<Item = &'a [u8]>) -> Outcome {
    let mut decoder = Decoder::new(limits);
    let mut buf = BytesMut::new();
    let mut replies = Vec::new();
    let mut fed = 0;
    // Decode once before any input too: replies of kind `None` need none.
    for chunk in std::iter::once(&[][..]).chain(chunks) {
        buf.extend_from_slice(chunk);
        fed += chunk.len();
        while let Some(&kind) = kinds.get(replies.len()) {
            match decoder.decode(kind, &mut buf) {
                Ok(Some(response)) => replies.push(response),
                Ok(None) => break,
                Err(e) => {
                    check_error(&e, limits);
                    return Outcome { replies, error: Some(e), rest: Vec::new() };
                }
            }
        }
        let bound = capacity_bound(fed, limits);
        assert!(buf.capacity() <= bound, "capacity {} over {bound} under {limits:?}", buf.capacity());
    }
    Outcome { replies, error: None, rest: buf.to_vec() }
}

/// The input of [`decode_split`]: limit bytes, reply kinds (at most 16), chunk lengths
/// (at most 16, used cyclically; each is one more than its byte), then the stream.
pub fn decode_split_input(limits: [u8; 3], kinds: &[ReplyKind], chunks: &[u8], data: &[u8]) -> Vec<u8> {
    let mut out = limits.to_vec();
    out.push(kinds.len().saturating_sub(1).min(15) as u8);
    out.extend(kinds.iter().take(16).map(|&k| arb::kind_byte(k)));
    out.push(chunks.len().min(15) as u8);
    out.extend(chunks.iter().take(15));
    out.extend_from_slice(data);
    out
}

/// Target `decode_split`: a stream of replies decoded from one buffer and fed in arbitrary
/// chunks (as reads would deliver it) gives exactly the same replies, the same error, and the
/// same unconsumed bytes.
pub fn decode_split(data: &[u8]) {
    let [l, v, n, nk, rest @ ..] = data else { return };
    let limits = arb::limits(*l, *v, *n);
    let Some((kinds, rest)) = rest.split_at_checked(usize::from(*nk % 16) + 1) else { return };
    let kinds: Vec<ReplyKind> = kinds.iter().map(|&b| arb::kind(b)).collect();
    let Some((ns, rest)) = rest.split_first() else { return };
    let Some((lens, stream)) = rest.split_at_checked(usize::from(*ns % 16)) else { return };

    let whole = run(limits, &kinds, std::iter::once(stream));
    let mut chunks = Vec::new();
    if lens.is_empty() {
        chunks.push(stream);
    }
    let mut at = 0;
    for &len in lens.iter().cycle() {
        if at >= stream.len() {
            break;
        }
        let end = stream.len().min(at + usize::from(len) + 1);
        chunks.push(&stream[at..end]);
        at = end;
    }
    let split = run(limits, &kinds, chunks.iter().copied());
    assert_eq!(split, whole, "split into {:?}", chunks.iter().map(|c| c.len()).collect::<Vec<_>>());
}
