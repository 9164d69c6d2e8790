//! `Connection::withdraw`: a request none of whose bytes was handed out can be taken back,
//! and what is written afterwards is exactly the other requests' bytes, in order, with their
//! replies matched to them.

use bytes::{Bytes, BytesMut};
use memcache_proto::command::StoreVerb;
use memcache_proto::{Command, Connection, Key, RequestId, Response};
use proptest::prelude::*;

/// A `set` of `len` bytes of `fill`: values of 16 KiB and more leave as chunks of their own.
fn set(i: usize, len: usize) -> Command {
    Command::Store {
        verb: StoreVerb::Set,
        key: Key::copy_from(format!("k{i}").as_bytes()).expect("valid key"),
        flags: 0,
        exptime: 0,
        value: Bytes::from(vec![b'a' + (i % 26) as u8; len]),
        noreply: false,
    }
}

fn encoded(c: &Command) -> Vec<u8> {
    let mut buf = BytesMut::new();
    c.encode(&mut buf);
    buf.to_vec()
}

/// Everything left to write.
fn drain(conn: &mut Connection) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(chunk) = conn.poll_transmit() {
        out.extend_from_slice(&chunk);
    }
    out
}

#[test]
fn a_withdrawn_request_leaves_no_byte_and_expects_no_reply() {
    let mut conn = Connection::new();
    let commands: Vec<Command> = (0..3).map(|i| set(i, 3)).collect();
    let ids: Vec<RequestId> = commands.iter().map(|c| conn.send(c)).collect();
    assert!(conn.withdraw(ids[1]));
    assert!(!conn.withdraw(ids[1]), "withdrawn once");
    assert_eq!(conn.in_flight(), 2);
    assert_eq!(drain(&mut conn), [encoded(&commands[0]), encoded(&commands[2])].concat());
    conn.handle_input(b"STORED\r\nNOT_STORED\r\n");
    let first = conn.poll_response().expect("in sync").expect("a reply");
    let second = conn.poll_response().expect("in sync").expect("a reply");
    assert_eq!((first.id, first.response), (ids[0], Response::Stored));
    assert_eq!((second.id, second.response), (ids[2], Response::NotStored));
    assert!(conn.is_idle());
}

#[test]
fn a_request_handed_out_is_not_withdrawn() {
    let mut conn = Connection::new();
    let first = conn.send(&set(0, 3));
    assert!(conn.poll_transmit().is_some());
    let second = conn.send(&set(1, 3));
    assert!(!conn.withdraw(first), "its bytes were handed out");
    assert!(conn.withdraw(second));
    assert_eq!(conn.poll_transmit(), None);
    assert_eq!(conn.in_flight(), 1);
}

#[test]
fn a_large_value_half_handed_out_is_not_withdrawn() {
    let mut conn = Connection::new();
    let (small, large) = (set(0, 3), set(1, 64 * 1024));
    let ids = [conn.send(&small), conn.send(&large)];
    // The first chunk holds the small command and the large one's head.
    let head = conn.poll_transmit().expect("a chunk");
    assert!(head.len() < encoded(&small).len() + 100);
    assert!(!conn.withdraw(ids[1]), "its head was handed out");
    assert_eq!([&head[..], &drain(&mut conn)].concat(), [encoded(&small), encoded(&large)].concat());
}

proptest! {
    /// Any mix of small and large values, withdrawn in any order between partial transmits:
    /// the bytes written are those of the requests not withdrawn, whole and in order, and a
    /// withdraw succeeds exactly when none of the request's bytes was handed out.
    #[test]
    fn withdrawing_keeps_framing_exact(
        sizes in prop::collection::vec(prop_oneof![0usize..40, 16_000usize..20_000], 1..12),
        steps in prop::collection::vec((0usize..12, any::<bool>()), 0..20),
    ) {
        let mut conn = Connection::new();
        let commands: Vec<Command> = sizes.iter().enumerate().map(|(i, &n)| set(i, n)).collect();
        let ids: Vec<RequestId> = commands.iter().map(|c| conn.send(c)).collect();
        let mut written = Vec::new();
        // Which requests are still to be written (not withdrawn).
        let mut kept = vec![true; commands.len()];
        for (pick, transmit) in steps {
            if transmit {
                if let Some(chunk) = conn.poll_transmit() {
                    written.extend_from_slice(&chunk);
                }
                continue;
            }
            let i = pick % commands.len();
            let before: usize = (0..i).filter(|&j| kept[j]).map(|j| encoded(&commands[j]).len()).sum();
            let untouched = kept[i] && written.len() <= before;
            prop_assert_eq!(conn.withdraw(ids[i]), untouched, "request {}", i);
            if untouched {
                kept[i] = false;
            }
        }
        written.extend(drain(&mut conn));
        let expected: Vec<u8> =
            commands.iter().zip(&kept).filter(|(_, k)| **k).flat_map(|(c, _)| encoded(c)).collect();
        prop_assert_eq!(written, expected);
        prop_assert_eq!(conn.in_flight(), kept.iter().filter(|k| **k).count());
    }
}
