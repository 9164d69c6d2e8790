//! Unit tests of the reply decoder and of `Connection`: error lines, padded numbers,
//! poisoning, pipelining and `poll_transmit`. Properties are in `decode_props.rs`.

mod common;

use bytes::{Bytes, BytesMut};
use memcache_proto::command::StoreVerb;
use memcache_proto::response::{Stat, Value};
use memcache_proto::{
    Command, Completed, Connection, Decoder, Limits, ProtoError, ReplyKind, RequestId, Response,
};

use common::{KINDS, command_for, drive, encode, key};

fn v(key: &str, flags: u32, cas: Option<u64>, data: &[u8]) -> Value {
    Value { key: Bytes::copy_from_slice(key.as_bytes()), flags, cas, data: Bytes::copy_from_slice(data) }
}

fn msg(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

/// Decodes `input` as one reply of shape `kind`, checking that all of it is consumed.
fn decode_one(kind: ReplyKind, input: &[u8]) -> Result<Option<Response>, ProtoError> {
    let mut buf = BytesMut::from(input);
    let r = Decoder::new(Limits::default()).decode(kind, &mut buf);
    if let Ok(Some(_)) = r {
        assert!(buf.is_empty(), "left over: {:?}", String::from_utf8_lossy(&buf));
    }
    r
}

#[test]
fn error_line_in_the_middle_of_a_multi_get() {
    for (line, expected) in [
        (
            &b"SERVER_ERROR out of memory writing get response"[..],
            Response::ServerError(msg("out of memory writing get response")),
        ),
        (b"CLIENT_ERROR bad command line format", Response::ClientError(msg("bad command line format"))),
        (b"ERROR", Response::Error),
    ] {
        let mut input = b"VALUE a 0 1\r\nx\r\nVALUE b 5 3\r\nEND\r\n".to_vec();
        input.extend_from_slice(line);
        input.extend_from_slice(b"\r\nVALUE c 0 1\r\nz\r\nEND\r\nVERSION 1.6.18\r\n");
        let kinds = [ReplyKind::Values, ReplyKind::Values, ReplyKind::Version];
        let want = vec![
            expected.clone(),
            Response::Values(vec![v("c", 0, None, b"z")]),
            Response::Version(msg("1.6.18")),
        ];
        for input in [vec![&input[..]], input.chunks(1).collect()] {
            let (done, err, conn) = drive(&kinds, &input, Limits::default());
            assert_eq!(err, None);
            assert_eq!(done.into_iter().map(|c| c.response).collect::<Vec<_>>(), want);
            assert!(conn.is_idle(), "the values before the error line are dropped, the stream stays in sync");
        }
    }
}

#[test]
fn client_and_server_errors_for_every_kind() {
    // In a meta batch, error lines are frames of the batch, which ends at `MN`.
    assert_eq!(decode_one(ReplyKind::MetaBatch, b"ERROR\r\n"), Ok(None));
    assert_eq!(
        decode_one(ReplyKind::MetaBatch, b"ERROR\r\nCLIENT_ERROR bad data chunk\r\nMN\r\n"),
        Ok(Some(Response::MetaBatch(vec![Response::Error, Response::ClientError(msg("bad data chunk"))])))
    );
    for kind in KINDS.into_iter().filter(|k| !matches!(k, ReplyKind::None | ReplyKind::MetaBatch)) {
        assert_eq!(decode_one(kind, b"ERROR\r\n"), Ok(Some(Response::Error)), "{kind:?}");
        assert_eq!(
            decode_one(kind, b"CLIENT_ERROR bad data chunk\r\n"),
            Ok(Some(Response::ClientError(msg("bad data chunk")))),
            "{kind:?}"
        );
        assert_eq!(
            decode_one(kind, b"SERVER_ERROR object too large for cache\r\n"),
            Ok(Some(Response::ServerError(msg("object too large for cache")))),
            "{kind:?}"
        );
        assert_eq!(decode_one(kind, b"CLIENT_ERROR bad"), Ok(None), "incomplete line: {kind:?}");
        assert!(decode_one(kind, b"BOGUS\r\n").is_err(), "{kind:?}");
        assert!(decode_one(kind, b"CLIENT_ERROR x\n").is_err(), "bare LF: {kind:?}");
    }
    assert_eq!(decode_one(ReplyKind::None, b""), Ok(Some(Response::NoReply)));
}

#[test]
fn padded_decr_numbers() {
    for (line, n) in [
        (&b"5\r\n"[..], 5),
        (b"5  \r\n", 5),
        (b"99 \r\n", 99),
        (b"0       \r\n", 0),
        (b"18446744073709551615\r\n", u64::MAX),
        (b"18446744073709551615 \r\n", u64::MAX),
    ] {
        assert_eq!(decode_one(ReplyKind::Arith, line), Ok(Some(Response::Number(n))), "{line:?}");
    }
    for bad in [&b" 5\r\n"[..], b"5 x\r\n", b"5x\r\n", b"18446744073709551616\r\n", b"-1\r\n", b"\r\n"] {
        assert!(decode_one(ReplyKind::Arith, bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
    }
    assert_eq!(decode_one(ReplyKind::Arith, b"NOT_FOUND\r\n"), Ok(Some(Response::NotFound)));
}

#[test]
fn other_simple_replies() {
    use ReplyKind as K;
    for (kind, line, want) in [
        (K::Store, &b"STORED\r\n"[..], Response::Stored),
        (K::Store, b"NOT_STORED\r\n", Response::NotStored),
        (K::Store, b"EXISTS\r\n", Response::Exists),
        (K::Store, b"NOT_FOUND\r\n", Response::NotFound),
        (K::Delete, b"DELETED\r\n", Response::Deleted),
        (K::Touch, b"TOUCHED\r\n", Response::Touched),
        (K::Ok, b"OK\r\n", Response::Ok),
        (K::Version, b"VERSION 1.6.18\r\n", Response::Version(msg("1.6.18"))),
        (K::Stats, b"RESET\r\n", Response::Reset),
        (K::Stats, b"END\r\n", Response::Stats(vec![])),
        (K::Values, b"END\r\n", Response::Values(vec![])),
    ] {
        assert_eq!(decode_one(kind, line), Ok(Some(want)), "{kind:?} {line:?}");
    }
    // A reply of another command's shape is a desync, not an answer.
    for (kind, line) in [
        (K::Delete, &b"STORED\r\n"[..]),
        (K::Store, b"DELETED\r\n"),
        (K::Ok, b"5\r\n"),
        (K::Values, b"STAT a b\r\n"),
    ] {
        assert!(decode_one(kind, line).is_err(), "{kind:?} {line:?}");
    }
}

#[test]
fn values_with_and_without_cas_and_tricky_data() {
    let input = b"VALUE a 1 0\r\n\r\nVALUE b 2 7 42\r\n\r\nEND\r\n\r\nVALUE c 4294967295 13\r\nVALUE d 0 1\r\n\r\nEND\r\n";
    let want = Response::Values(vec![
        v("a", 1, None, b""),
        v("b", 2, Some(42), b"\r\nEND\r\n"),
        v("c", u32::MAX, None, b"VALUE d 0 1\r\n"),
    ]);
    assert_eq!(decode_one(ReplyKind::Values, input), Ok(Some(want)));
    for cut in 0..input.len() {
        assert_eq!(decode_one(ReplyKind::Values, &input[..cut]), Ok(None), "prefix of {cut}");
    }
    // Data not followed by \r\n at its announced length.
    assert_eq!(
        decode_one(ReplyKind::Values, b"VALUE c 0 12\r\nVALUE d 0 1\r\n\r\nEND\r\n"),
        Err(ProtoError::BadValueTerminator)
    );
    // Flags above u32, junk after the CAS, an empty key: protocol errors.
    assert!(decode_one(ReplyKind::Values, b"VALUE a 4294967296 1\r\nx\r\nEND\r\n").is_err());
    assert!(decode_one(ReplyKind::Values, b"VALUE a 0 1 2 3\r\nx\r\nEND\r\n").is_err());
    assert!(decode_one(ReplyKind::Values, b"VALUE  0 1\r\nx\r\nEND\r\n").is_err());
}

#[test]
fn stats_lines() {
    let input = b"STAT pid 1\r\nSTAT version 1.6.18\r\nSTAT empty \r\nSTAT novalue\r\nSTAT libevent 2.1 stable\r\nEND\r\n";
    let Ok(Some(Response::Stats(s))) = decode_one(ReplyKind::Stats, input) else { panic!("stats") };
    let pairs: Vec<(&[u8], &[u8])> = s.iter().map(|s| (&s.name[..], &s.value[..])).collect();
    assert_eq!(
        pairs,
        [
            (&b"pid"[..], &b"1"[..]),
            (b"version", b"1.6.18"),
            (b"empty", b""),
            (b"novalue", b""),
            (b"libevent", b"2.1 stable")
        ]
    );
    assert!(s.iter().all(|s| !s.item));
    let Ok(Some(Response::Stats(s))) = decode_one(ReplyKind::Stats, b"ITEM k [1 b; 0 s]\r\nEND\r\n") else {
        panic!("items")
    };
    assert_eq!((s[0].item, &s[0].name[..], &s[0].value[..]), (true, &b"k"[..], &b"[1 b; 0 s]"[..]));
    // An error after some STAT lines drops them and answers the error.
    assert_eq!(
        decode_one(ReplyKind::Stats, b"STAT a 1\r\nSERVER_ERROR oops\r\n"),
        Ok(Some(Response::ServerError(msg("oops"))))
    );
}

#[test]
fn too_many_values_is_an_error() {
    let limits = Limits::default().with_max_values(2);
    let mut buf = BytesMut::from(&b"VALUE a 0 1\r\nx\r\nVALUE a 0 1\r\nx\r\nVALUE a 0 1\r\nx\r\nEND\r\n"[..]);
    assert_eq!(
        Decoder::new(limits).decode(ReplyKind::Values, &mut buf),
        Err(ProtoError::TooManyValues { limit: 2 })
    );
    let mut buf = BytesMut::from(&b"STAT a 1\r\nSTAT b 2\r\nSTAT c 3\r\nEND\r\n"[..]);
    assert_eq!(
        Decoder::new(limits).decode(ReplyKind::Stats, &mut buf),
        Err(ProtoError::TooManyValues { limit: 2 })
    );
}

#[test]
fn line_limit_is_inclusive_of_the_terminator() {
    let limits = Limits::default().with_max_line_len(8);
    let mut buf = BytesMut::from(&b"STORED\r\n"[..]); // exactly 8 bytes
    assert_eq!(Decoder::new(limits).decode(ReplyKind::Store, &mut buf), Ok(Some(Response::Stored)));
    let mut buf = BytesMut::from(&b"DELETED\r\n"[..]); // 9 bytes
    assert_eq!(
        Decoder::new(limits).decode(ReplyKind::Delete, &mut buf),
        Err(ProtoError::LineTooLong { limit: 8 })
    );
    // The limit is on lines, not on data blocks.
    let limits = Limits::default().with_max_line_len(32);
    let mut input = b"VALUE k 0 1000\r\n".to_vec();
    input.extend(std::iter::repeat_n(b'x', 1000));
    input.extend_from_slice(b"\r\nEND\r\n");
    let mut buf = BytesMut::from(&input[..]);
    assert!(matches!(
        Decoder::new(limits).decode(ReplyKind::Values, &mut buf),
        Ok(Some(Response::Values(_)))
    ));
}

#[test]
fn poisoning() {
    let mut conn = Connection::new();
    conn.send(&command_for(ReplyKind::Store));
    conn.send(&command_for(ReplyKind::Delete));
    conn.handle_input(b"STORED\r\nHELLO\r\nDELETED\r\n");
    assert!(matches!(conn.poll_response(), Ok(Some(Completed { response: Response::Stored, .. }))));
    let err = conn.poll_response().expect_err("HELLO is no delete reply");
    assert!(matches!(err, ProtoError::UnexpectedLine { ref line } if line == "HELLO"), "{err:?}");
    for _ in 0..3 {
        assert_eq!(conn.poll_response(), Err(err.clone()));
    }
    // More input, more requests: still the same error.
    conn.send(&command_for(ReplyKind::Version));
    conn.handle_input(b"VERSION 1\r\n");
    assert_eq!(conn.poll_response(), Err(err.clone()));
    assert_eq!(conn.poisoned(), Some(&err));
    assert!(!conn.is_idle());

    // A reply nobody asked for poisons too.
    let mut conn = Connection::new();
    assert_eq!(conn.poll_response(), Ok(None));
    conn.handle_input(b"STORED\r\n");
    assert_eq!(conn.poll_response(), Err(ProtoError::UnsolicitedReply));
    conn.send(&command_for(ReplyKind::Store));
    assert_eq!(conn.poll_response(), Err(ProtoError::UnsolicitedReply));

    // So does a limit.
    let mut conn = Connection::with_limits(Limits::default().with_max_line_len(16));
    conn.send(&command_for(ReplyKind::Values));
    conn.handle_input(&[b'V'; 100]);
    assert_eq!(conn.poll_response(), Err(ProtoError::LineTooLong { limit: 16 }));
    conn.handle_input(b"\r\nEND\r\n");
    assert_eq!(conn.poll_response(), Err(ProtoError::LineTooLong { limit: 16 }));
}

#[test]
fn pipelined_replies_in_order_with_request_ids() {
    let commands = [
        command_for(ReplyKind::Store),
        command_for(ReplyKind::None),
        Command::Get { keys: vec![key("a"), key("b")].into(), cas: true, touch: None },
        command_for(ReplyKind::Arith),
        command_for(ReplyKind::None),
        command_for(ReplyKind::None),
        command_for(ReplyKind::Stats),
        command_for(ReplyKind::Delete),
        command_for(ReplyKind::Touch),
        command_for(ReplyKind::Ok),
        command_for(ReplyKind::Version),
        Command::Quit,
    ];
    let want = vec![
        Response::Stored,
        Response::NoReply,
        Response::Values(vec![v("a", 3, Some(9), b"1"), v("b", 0, Some(10), b"22")]),
        Response::Number(7),
        Response::NoReply,
        Response::NoReply,
        Response::Stats(vec![Stat { item: false, name: msg("pid"), value: msg("7") }]),
        Response::NotFound,
        Response::Touched,
        Response::Ok,
        Response::Version(msg("1.6.18")),
        Response::NoReply,
    ];
    let input = encode(&want);
    for split in [input.len(), 1, 7] {
        let mut conn = Connection::new();
        let ids: Vec<RequestId> = commands.iter().map(|c| conn.send(c)).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids increase");
        assert_eq!(conn.in_flight(), commands.len());
        while conn.poll_transmit().is_some() {}
        let mut done = Vec::new();
        for chunk in input.chunks(split) {
            conn.handle_input(chunk);
            while let Some(c) = conn.poll_response().expect("valid") {
                done.push(c);
            }
        }
        let got: Vec<(RequestId, Response)> = done.into_iter().map(|c| (c.id, c.response)).collect();
        assert_eq!(got, ids.iter().copied().zip(want.iter().cloned()).collect::<Vec<_>>());
        assert_eq!(conn.in_flight(), 0);
        assert!(conn.is_idle());
        assert_eq!(conn.poll_response(), Ok(None));
    }
}

#[test]
fn poll_transmit_coalesces_small_commands() {
    let mut conn = Connection::new();
    assert!(!conn.wants_transmit());
    assert_eq!(conn.poll_transmit(), None);
    let commands = [
        command_for(ReplyKind::Store),
        Command::Get { keys: vec![key("a"), key("b")].into(), cas: false, touch: Some(-1) },
        command_for(ReplyKind::Arith),
        Command::Verbosity { level: 1, noreply: true },
    ];
    let mut expected = BytesMut::new();
    for c in &commands {
        conn.send(c);
        c.encode(&mut expected);
    }
    assert!(conn.wants_transmit());
    assert_eq!(conn.poll_transmit().as_deref(), Some(&expected[..]), "one coalesced chunk");
    assert_eq!(conn.poll_transmit(), None);
    assert!(!conn.wants_transmit());
}

fn store(len: usize, fill: u8) -> (Command, Bytes) {
    let value = Bytes::from(vec![fill; len]);
    let cmd = Command::Store {
        verb: StoreVerb::Cas(77),
        key: key("big"),
        flags: 1,
        exptime: 2,
        value: value.clone(),
        noreply: false,
    };
    (cmd, value)
}

#[test]
fn poll_transmit_hands_out_large_values_without_a_copy() {
    let (large, large_value) = store(16 * 1024, b'L');
    let (just_under, _) = store(16 * 1024 - 1, b'u');
    let (huge, huge_value) = store(512 * 1024, b'H');
    let small = command_for(ReplyKind::Delete);
    let commands = [small.clone(), large, small.clone(), just_under, huge, small.clone()];

    let mut conn = Connection::new();
    let mut expected = BytesMut::new();
    for c in &commands {
        conn.send(c);
        c.encode(&mut expected);
    }
    let mut chunks = Vec::new();
    while let Some(chunk) = conn.poll_transmit() {
        chunks.push(chunk);
    }
    assert_eq!(chunks.concat(), &expected[..], "the chunks concatenate to the encoded commands");
    // The large values come out as their own chunks, sharing the caller's memory.
    for value in [&large_value, &huge_value] {
        let own: Vec<&Bytes> = chunks.iter().filter(|c| c.as_ptr() == value.as_ptr()).collect();
        assert_eq!(own.len(), 1, "a value of {} bytes is one chunk of its own", value.len());
        assert_eq!(own[0].len(), value.len());
    }
    // Small commands around them are coalesced: head of `large` with the delete before it, the
    // 16 KiB - 1 value copied between the two large ones.
    assert_eq!(chunks.len(), 5, "{:?}", chunks.iter().map(Bytes::len).collect::<Vec<_>>());
    let mut first = BytesMut::new();
    small.encode(&mut first);
    assert!(chunks[0].starts_with(&first) && chunks[0].ends_with(b"cas big 1 2 16384 77\r\n"));
    assert!(chunks[2].len() > 16 * 1024 - 1, "the value just under the threshold is copied");

    // Sends interleaved with poll_transmit keep the order too.
    let mut conn = Connection::new();
    let mut sent = Vec::new();
    for c in &commands {
        conn.send(c);
        if let Some(chunk) = conn.poll_transmit() {
            sent.extend_from_slice(&chunk);
        }
    }
    while let Some(chunk) = conn.poll_transmit() {
        sent.extend_from_slice(&chunk);
    }
    assert_eq!(sent, &expected[..]);
}

#[test]
fn large_value_in_small_reads() {
    let data: Vec<u8> = (0..600_000u32).map(|i| (i % 251) as u8).collect();
    let mut input = b"VALUE big 9 600000 5\r\n".to_vec();
    input.extend_from_slice(&data);
    input.extend_from_slice(b"\r\nEND\r\n");
    let mut conn = Connection::new();
    conn.send(&Command::Get { keys: key("big").into(), cas: true, touch: None });
    while conn.poll_transmit().is_some() {}
    let mut done = None;
    for chunk in input.chunks(16 * 1024 - 3) {
        conn.read_buf().extend_from_slice(chunk);
        if let Some(c) = conn.poll_response().expect("valid") {
            done = Some(c);
        }
    }
    let Some(Completed { response: Response::Values(vals), .. }) = done else { panic!("one reply") };
    assert_eq!(vals, [v("big", 9, Some(5), &data)]);
    assert!(conn.is_idle());
}

#[test]
fn meta_replies_are_bounded_and_strict() {
    use memcache_proto::meta::{MetaReply, MetaStatus};
    let frame = |status, flags: &'static [u8], value: Option<&'static [u8]>| {
        Response::Meta(MetaReply {
            status,
            flags: Bytes::from_static(flags),
            value: value.map(Bytes::from_static),
        })
    };
    assert_eq!(decode_one(ReplyKind::Meta, b"HD \r\n"), Ok(Some(frame(MetaStatus::Done, b" ", None))));
    assert_eq!(
        decode_one(ReplyKind::Meta, b"VA 2 t-1 W\r\nhi\r\n"),
        Ok(Some(frame(MetaStatus::Value, b" t-1 W", Some(b"hi"))))
    );
    assert_eq!(decode_one(ReplyKind::Meta, b"VA 2 t-1 W\r\nhi\r"), Ok(None), "data block incomplete");
    for bad in [&b"HDX\r\n"[..], b"XX\r\n", b"VA\r\n", b"VA x\r\n", b"VA 1\r\nxy\r\n", b"END\r\n"] {
        assert!(decode_one(ReplyKind::Meta, bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
    }
    let small = Limits::default().with_max_value_len(4).with_max_values(2);
    let mut d = Decoder::new(small);
    let e = d.decode(ReplyKind::Meta, &mut BytesMut::from(&b"VA 5\r\n"[..]));
    assert_eq!(e, Err(ProtoError::ValueTooLarge { len: 5, limit: 4 }));
    let mut d = Decoder::new(small);
    let e = d.decode(ReplyKind::MetaBatch, &mut BytesMut::from(&b"HD O1\r\nHD O2\r\nHD O3\r\nMN\r\n"[..]));
    assert_eq!(e, Err(ProtoError::TooManyValues { limit: 2 }));
}
