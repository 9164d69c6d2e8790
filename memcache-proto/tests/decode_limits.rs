//! What a peer can make the decoder hold: a value's buffer grows with the bytes that arrive,
//! never to a length only announced; a whole reply is bounded by `max_reply_len`; and no
//! `Limits` value, however extreme, makes the decoder panic.

#[allow(dead_code)] // helpers shared by the decoder test files; this one uses few
mod common;

use bytes::BytesMut;
use common::{KINDS, command_for};
use memcache_proto::{Connection, Decoder, Limits, ProtoError, ReplyKind, Response};

const MIB: usize = 1024 * 1024;

/// Limits that accept a 100 MB value, as a user of a server started with `-I 128m` sets them.
fn large() -> Limits {
    Limits::default().with_max_value_len(128 * MIB).with_max_reply_len(256 * MIB)
}

fn get_conn(limits: Limits) -> Connection {
    let mut conn = Connection::with_limits(limits);
    conn.send(&command_for(ReplyKind::Values));
    while conn.poll_transmit().is_some() {}
    conn
}

/// A 25-byte header announcing 100,000,000 bytes, and 10 of them: the connection must hold
/// about what arrived, not the 95 MiB announced (it held 95 MiB when the decoder reserved the
/// announced length up front).
#[test]
fn an_announced_value_is_not_reserved_up_front() {
    let mut conn = get_conn(large());
    conn.handle_input(b"VALUE k 0 100000000\r\n0123456789");
    assert_eq!(conn.poll_response(), Ok(None));
    let held = conn.read_buf().capacity();
    assert!(held < MIB, "a connection holding 10 bytes of a value has {held} bytes of buffer");

    // The same for a meta reply's data block.
    let mut buf = BytesMut::from(&b"VA 100000000 f1 s100000000\r\n0123456789"[..]);
    assert_eq!(Decoder::new(large()).decode(ReplyKind::Meta, &mut buf), Ok(None));
    assert!(buf.capacity() < MIB, "a meta value of which 10 bytes arrived holds {} bytes", buf.capacity());
}

/// As a large value arrives, the buffer stays within a small multiple of what arrived, and the
/// value decodes intact.
#[test]
fn a_value_buffer_grows_with_its_bytes() {
    let len = 8 * MIB;
    let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
    let mut input = format!("VALUE big 0 {len}\r\n").into_bytes();
    input.extend_from_slice(&data);
    input.extend_from_slice(b"\r\nEND\r\n");
    let mut conn = get_conn(large());
    let mut arrived = 0;
    let mut done = None;
    for chunk in input.chunks(64 * 1024) {
        conn.read_buf().extend_from_slice(chunk);
        arrived += chunk.len();
        if let Some(c) = conn.poll_response().expect("valid reply") {
            done = Some(c.response);
            break;
        }
        let held = conn.read_buf().capacity();
        assert!(held <= 4 * arrived + MIB, "{held} bytes of buffer after {arrived} bytes arrived");
    }
    let Some(Response::Values(values)) = done else { panic!("one reply") };
    assert_eq!(values.len(), 1);
    assert!(values[0].data == data, "the value decodes intact");
}

/// A reply whose lines and values together pass `max_reply_len` is an error, found as soon as
/// a `VALUE` header announces data that would pass it (before the data arrives).
#[test]
fn a_reply_longer_than_its_bound_is_an_error() {
    let limits = Limits::default().with_max_reply_len(100);
    // 3 x (14-byte header + 10 + 2) = 78, + END = 83: fits.
    let value = |k: &str| format!("VALUE {k} 0 10\r\n0123456789\r\n");
    let fits = format!("{}{}{}END\r\n", value("a"), value("b"), value("c"));
    let mut conn = get_conn(limits);
    conn.handle_input(fits.as_bytes());
    assert!(matches!(conn.poll_response(), Ok(Some(_))), "an 83-byte reply under a 100-byte bound");
    // Another reply of the same size: the count starts again for each reply.
    conn.send(&command_for(ReplyKind::Values));
    conn.handle_input(fits.as_bytes());
    assert!(matches!(conn.poll_response(), Ok(Some(_))), "the bound is per reply");

    // The fourth value's header announces bytes 101..: refused before its data.
    conn.send(&command_for(ReplyKind::Values));
    conn.handle_input(format!("{}{}{}VALUE d 0 10\r\n", value("a"), value("b"), value("c")).as_bytes());
    assert_eq!(conn.poll_response(), Err(ProtoError::ReplyTooLarge { limit: 100 }));

    // A value announcing more than the whole bound allows, alone.
    let mut conn = get_conn(Limits::default().with_max_reply_len(1000));
    conn.handle_input(b"VALUE k 0 5000\r\n");
    assert_eq!(conn.poll_response(), Err(ProtoError::ReplyTooLarge { limit: 1000 }));

    // stats: lines count too.
    let mut conn = Connection::with_limits(Limits::default().with_max_reply_len(40));
    conn.send(&command_for(ReplyKind::Stats));
    conn.handle_input(b"STAT pid 1\r\nSTAT uptime 2\r\nSTAT version 1.6.18\r\nEND\r\n");
    assert_eq!(conn.poll_response(), Err(ProtoError::ReplyTooLarge { limit: 40 }));
}

/// `keys_per_get` never lets a worst-case reply pass a bound, and is at least 1.
#[test]
fn keys_per_get_respects_every_bound() {
    let d = Limits::default();
    let n = d.keys_per_get();
    assert!(n >= 100, "the defaults allow a 100-key get in one command ({n})");
    let worst = n * (d.max_line_len + d.max_value_len + 2) + 5;
    assert!(worst <= d.max_reply_len && n <= d.max_values);
    assert_eq!(d.with_max_values(10).keys_per_get(), 10);
    assert_eq!(d.with_max_reply_len(0).keys_per_get(), 1);
    assert_eq!(d.with_max_values(0).keys_per_get(), 1);
    for limits in extremes() {
        assert!(limits.keys_per_get() >= 1, "{limits:?}");
    }
}

/// Every field at 0, 1 and `usize::MAX`, alone and together.
fn extremes() -> Vec<Limits> {
    let mut all = Vec::new();
    for v in [0, 1, usize::MAX] {
        let d = Limits::default();
        all.push(d.with_max_line_len(v));
        all.push(d.with_max_value_len(v));
        all.push(d.with_max_values(v));
        all.push(d.with_max_reply_len(v));
        all.push(d.with_max_line_len(v).with_max_value_len(v).with_max_values(v).with_max_reply_len(v));
    }
    all
}

/// Inputs that push at every bound: huge announced lengths (up to `u64::MAX`), many values,
/// long lines, stats, and a value with some of its data.
fn hostile_inputs() -> Vec<Vec<u8>> {
    let mut many = Vec::new();
    for i in 0..200 {
        many.extend_from_slice(format!("VALUE k{i} 0 1\r\nx\r\n").as_bytes());
    }
    many.extend_from_slice(b"END\r\n");
    vec![
        b"VALUE k 0 18446744073709551615\r\n0123456789".to_vec(),
        b"VALUE k 0 18446744073709551613 7\r\nabc".to_vec(),
        format!("VALUE k 0 {}\r\nabcdef", usize::MAX - 1).into_bytes(),
        b"VALUE k 0 0\r\n\r\nEND\r\n".to_vec(),
        many,
        [b"STAT a b\r\n".repeat(300), b"END\r\n".to_vec()].concat(),
        vec![b'x'; 70_000],
        b"END\r\n".to_vec(),
        b"\r\n".to_vec(),
    ]
}

/// No `Limits` value makes the decoder panic or allocate what a peer only announced, whatever
/// the input and however it is split.
#[test]
fn extreme_limits_never_panic() {
    for limits in extremes() {
        for input in hostile_inputs() {
            for kind in KINDS {
                for cut in [input.len(), 1, 7, 4096] {
                    let mut decoder = Decoder::new(limits);
                    let mut buf = BytesMut::new();
                    for chunk in input.chunks(cut.max(1)) {
                        buf.extend_from_slice(chunk);
                        match decoder.decode(kind, &mut buf) {
                            Ok(Some(_)) | Err(_) => break,
                            Ok(None) => {}
                        }
                    }
                    let held = buf.capacity();
                    assert!(
                        held < 4 * MIB,
                        "{limits:?} {kind:?}: {held} bytes held for {} bytes",
                        input.len()
                    );
                }
            }
        }
    }
}
