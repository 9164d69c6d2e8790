//! Properties of the reply decoder and of `Connection`: arbitrary bytes never panic, rendered
//! replies decode the same however they are split, limits hold. Unit tests for the same code
//! are in `decode_units.rs`.

mod common;

use bytes::{Bytes, BytesMut};
use memcache_proto::meta::{MetaReply, MetaStatus};
use memcache_proto::response::{Stat, Value};
use memcache_proto::{Connection, Decoder, Limits, ProtoError, ReplyKind, Response};
use proptest::prelude::*;
use proptest::sample::Index;

use common::{KINDS, command_for, drive, encode};

/// Sorted, distinct cut points into `len` bytes.
fn cuts(len: usize, at: &[Index]) -> Vec<usize> {
    let mut c: Vec<usize> = at.iter().map(|i| i.index(len + 1)).collect();
    c.sort_unstable();
    c.dedup();
    c
}

fn chunks<'a>(bytes: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
    let mut out = Vec::new();
    let mut prev = 0;
    for &c in cuts.iter().chain(std::iter::once(&bytes.len())) {
        out.push(&bytes[prev..c]);
        prev = c;
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Strategies.

fn kind() -> impl Strategy<Value = ReplyKind> {
    prop::sample::select(KINDS.to_vec())
}

/// Bytes that often look like the protocol, so that arbitrary input reaches deep states.
fn noise() -> impl Strategy<Value = Vec<u8>> {
    let fragment = prop_oneof![
        prop::collection::vec(any::<u8>(), 0..12),
        prop::sample::select(vec![
            &b"VALUE "[..],
            b"VALUE k 0 3\r\n",
            b"VALUE k 7 2 99\r\n",
            b"VALUE k 0 18446744073709551616\r\n",
            b"END\r\n",
            b"END",
            b"\r\n",
            b"\n",
            b"\r",
            b" ",
            b"  ",
            b"STAT ",
            b"STAT a b\r\n",
            b"ITEM ",
            b"RESET\r\n",
            b"ERROR\r\n",
            b"ERROR",
            b"CLIENT_ERROR ",
            b"SERVER_ERROR x\r\n",
            b"STORED\r\n",
            b"NOT_FOUND\r\n",
            b"DELETED\r\n",
            b"TOUCHED\r\n",
            b"OK\r\n",
            b"VERSION ",
            b"18446744073709551615",
            b"99999999999999999999999",
            b"k",
        ])
        .prop_map(<[u8]>::to_vec),
        (0u64..1000).prop_map(|n| n.to_string().into_bytes()),
    ];
    prop::collection::vec(fragment, 0..48).prop_map(|v| v.concat())
}

fn limits() -> impl Strategy<Value = Limits> {
    prop_oneof![
        Just(Limits::default()),
        (1usize..96, 0usize..64, 0usize..4, 0usize..512).prop_map(|(l, v, n, r)| Limits::default()
            .with_max_line_len(l)
            .with_max_value_len(v)
            .with_max_values(n)
            .with_max_reply_len(r)),
    ]
}

/// Printable ASCII without line breaks (spaces allowed).
fn printable(max: usize) -> impl Strategy<Value = Bytes> {
    prop::collection::vec(0x20u8..0x7f, 0..max).prop_map(Bytes::from)
}

/// A token: no spaces, no line breaks, not empty.
fn token(max: usize) -> impl Strategy<Value = Bytes> {
    prop::collection::vec(prop_oneof![0x21u8..0x7f, 0x80u8..=0xff], 1..max).prop_map(Bytes::from)
}

/// Binary data, often holding things that look like the end of a reply.
fn data() -> impl Strategy<Value = Bytes> {
    let piece = prop_oneof![
        prop::collection::vec(any::<u8>(), 0..24),
        prop::sample::select(vec![
            &b"\r\nEND\r\n"[..],
            b"VALUE x 0 1\r\ny\r\n",
            b"\r\n",
            b"END",
            b"\n",
            b"\r"
        ])
        .prop_map(<[u8]>::to_vec),
    ];
    prop::collection::vec(piece, 0..8).prop_map(|v| Bytes::from(v.concat()))
}

fn values() -> impl Strategy<Value = Response> {
    any::<bool>()
        .prop_flat_map(|with_cas| {
            let cas = if with_cas { any::<u64>().prop_map(Some).boxed() } else { Just(None).boxed() };
            prop::collection::vec(
                (token(250), any::<u32>(), cas, data()).prop_map(|(key, flags, cas, data)| Value {
                    key,
                    flags,
                    cas,
                    data,
                }),
                0..5,
            )
        })
        .prop_map(Response::Values)
}

fn stats() -> impl Strategy<Value = Response> {
    let stat =
        (any::<bool>(), token(40), printable(60)).prop_map(|(item, name, value)| Stat { item, name, value });
    prop_oneof![prop::collection::vec(stat, 0..12).prop_map(Response::Stats), Just(Response::Reset)]
}

fn error_line() -> impl Strategy<Value = Response> {
    prop_oneof![
        Just(Response::Error),
        printable(80).prop_map(Response::ClientError),
        printable(80).prop_map(Response::ServerError),
    ]
}

/// A reply of shape `kind` (an error line stands in for any reply that has one).
fn reply(kind: ReplyKind) -> BoxedStrategy<Response> {
    use Response as R;
    let ok = match kind {
        ReplyKind::None => return Just(R::NoReply).boxed(),
        ReplyKind::Values => values().boxed(),
        ReplyKind::Store => {
            prop::sample::select(vec![R::Stored, R::NotStored, R::Exists, R::NotFound]).boxed()
        }
        ReplyKind::Delete => prop::sample::select(vec![R::Deleted, R::NotFound]).boxed(),
        ReplyKind::Arith => prop_oneof![any::<u64>().prop_map(R::Number), Just(R::NotFound)].boxed(),
        ReplyKind::Touch => prop::sample::select(vec![R::Touched, R::NotFound]).boxed(),
        ReplyKind::Ok => Just(R::Ok).boxed(),
        ReplyKind::Version => printable(40).prop_map(R::Version).boxed(),
        ReplyKind::Stats => stats().boxed(),
        ReplyKind::Meta => meta_frame(true).prop_map(R::Meta).boxed(),
        // A batch's error lines are among its frames; the batch itself always ends in `MN`.
        ReplyKind::MetaBatch => {
            let frame = prop_oneof![4 => meta_frame(false).prop_map(R::Meta), 1 => error_line()];
            return prop::collection::vec(frame, 0..6).prop_map(R::MetaBatch).boxed();
        }
        other => panic!("no replies for {other:?}"),
    };
    prop_oneof![4 => ok, 1 => error_line()].boxed()
}

/// A meta reply: any code (`MN` only when `mn` may be one), flags as space-led tokens, a data
/// block for `VA`.
fn meta_frame(mn: bool) -> impl Strategy<Value = MetaReply> {
    use MetaStatus as S;
    let mut codes = vec![S::Value, S::Done, S::Miss, S::NotStored, S::Exists, S::NotFound, S::Debug];
    if mn {
        codes.push(S::NoOp);
    }
    let token = prop::collection::vec(0x21u8..0x7f, 0..10);
    (
        prop::sample::select(codes),
        prop::collection::vec(token, 0..4),
        prop::collection::vec(any::<u8>(), 0..40),
    )
        .prop_map(|(status, tokens, data)| {
            let flags: Vec<u8> =
                tokens.iter().flat_map(|t| std::iter::once(b' ').chain(t.iter().copied())).collect();
            let value = (status == S::Value).then(|| Bytes::from(data));
            MetaReply { status, flags: flags.into(), value }
        })
}

fn pipeline() -> impl Strategy<Value = Vec<(ReplyKind, Response)>> {
    prop::collection::vec(kind().prop_flat_map(|k| (Just(k), reply(k))), 1..8)
}

// ---------------------------------------------------------------------------------------------
// Properties.

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Arbitrary bytes, any expected shape, any limits, any split: no panic, and the decoder
    /// never consumes more than it was given.
    #[test]
    fn arbitrary_bytes_never_panic(kind in kind(), bytes in noise(), at in prop::collection::vec(any::<Index>(), 0..8), limits in limits()) {
        let mut decoder = Decoder::new(limits);
        let mut buf = BytesMut::new();
        let (mut fed, mut consumed) = (0usize, 0usize);
        'feed: for chunk in chunks(&bytes, &cuts(bytes.len(), &at)) {
            buf.extend_from_slice(chunk);
            fed += chunk.len();
            // `None` replies complete without input: bound the loop.
            for _ in 0..64 {
                let before = buf.len();
                let result = decoder.decode(kind, &mut buf);
                prop_assert!(buf.len() <= before);
                consumed += before - buf.len();
                prop_assert!(consumed <= fed);
                match result {
                    Ok(Some(_)) => continue,
                    Ok(None) => break,
                    Err(_) => break 'feed,
                }
            }
        }
    }

    /// The same through `Connection`, with a pipeline of different shapes in flight.
    #[test]
    fn arbitrary_bytes_through_connection(kinds in prop::collection::vec(kind(), 0..6), bytes in noise(), at in prop::collection::vec(any::<Index>(), 0..8), limits in limits()) {
        let (done, err, mut conn) = drive(&kinds, &chunks(&bytes, &cuts(bytes.len(), &at)), limits);
        prop_assert!(done.len() <= kinds.len());
        if let Some(e) = err {
            prop_assert_eq!(conn.poll_response(), Err(e.clone()), "poisoned");
            prop_assert_eq!(conn.poisoned(), Some(&e));
        }
    }

    /// A rendered pipeline of valid replies decodes back to the same frames, however it is
    /// split, consuming every byte; a prefix yields exactly the replies it holds in full.
    #[test]
    fn rendered_replies_decode_the_same_in_any_chunks(pipe in pipeline(), at in prop::collection::vec(any::<Index>(), 0..12)) {
        let kinds: Vec<ReplyKind> = pipe.iter().map(|(k, _)| *k).collect();
        let responses: Vec<Response> = pipe.iter().map(|(_, r)| r.clone()).collect();
        let bytes = encode(&responses);

        let (whole, err, conn) = drive(&kinds, &[&bytes], Limits::default());
        prop_assert_eq!(err, None);
        prop_assert!(conn.is_idle());
        let got: Vec<Response> = whole.iter().map(|c| c.response.clone()).collect();
        prop_assert_eq!(&got, &responses);

        let cut = cuts(bytes.len(), &at);
        let (split, err, conn) = drive(&kinds, &chunks(&bytes, &cut), Limits::default());
        prop_assert_eq!(err, None);
        prop_assert!(conn.is_idle());
        prop_assert_eq!(&split, &whole);

        // End offset of each reply in `bytes`.
        let mut ends = Vec::new();
        let mut end = 0;
        for r in &responses {
            end += encode(std::slice::from_ref(r)).len();
            ends.push(end);
        }
        for &c in &cut {
            let (part, err, conn) = drive(&kinds, &[&bytes[..c]], Limits::default());
            prop_assert_eq!(err, None, "a prefix is never an error");
            let complete = ends.iter().filter(|&&e| e <= c).count();
            prop_assert_eq!(part.len(), complete, "prefix of {} bytes", c);
            prop_assert_eq!(&part[..], &whole[..complete]);
            prop_assert_eq!(conn.in_flight(), kinds.len() - complete);
        }
    }

    /// A line longer than `max_line_len` is `LineTooLong`, terminated or not, at the latest
    /// once `max_line_len` bytes are buffered.
    #[test]
    fn long_line_is_an_error(kind in kind().prop_filter("has a reply", |k| *k != ReplyKind::None), limit in 4usize..300, extra in 1usize..50, terminated in any::<bool>(), prefix in prop::sample::select(vec![&b""[..], b"VALUE k 0 ", b"STAT x ", b"CLIENT_ERROR "]), at in prop::collection::vec(any::<Index>(), 0..6)) {
        let mut line = prefix.to_vec();
        line.resize(limit + extra, b'a');
        if terminated {
            line.extend_from_slice(b"\r\n");
        }
        let limits = Limits::default().with_max_line_len(limit);
        let mut decoder = Decoder::new(limits);
        let mut buf = BytesMut::new();
        let mut result = Ok(None);
        for chunk in chunks(&line, &cuts(line.len(), &at)) {
            buf.extend_from_slice(chunk);
            result = decoder.decode(kind, &mut buf);
            if result.is_err() {
                break;
            }
            prop_assert!(buf.len() < limit, "{} bytes buffered without an error", buf.len());
        }
        prop_assert_eq!(result, Err(ProtoError::LineTooLong { limit }));
    }

    /// A `VALUE` over `max_value_len` is `ValueTooLarge`, before the announced size is allocated.
    #[test]
    fn value_too_large_is_an_error(limit in 0usize..(1 << 30), over in 1u64..u64::MAX, cas in any::<bool>()) {
        let len = (limit as u64).saturating_add(over);
        let mut header = format!("VALUE k 0 {len}");
        if cas {
            header.push_str(" 12");
        }
        header.push_str("\r\n");
        let mut conn = Connection::with_limits(Limits::default().with_max_value_len(limit));
        conn.send(&command_for(ReplyKind::Values));
        conn.handle_input(header.as_bytes());
        prop_assert_eq!(conn.poll_response(), Err(ProtoError::ValueTooLarge { len, limit }));
        prop_assert!(conn.read_buf().capacity() < 1 << 20, "nothing allocated for the value");
    }
}
