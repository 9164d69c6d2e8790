//! Decoding and encoding throughput of the sans-IO core.
//!
//! - `multiget_100x100`: a 100-key `get` whose reply holds 100 values of 100 bytes, through
//!   `Connection` (send, hand the bytes out, feed the reply into the read buffer, poll).
//! - `value_512k_in_16k_reads`: one 512 KiB value arriving in 16 KiB reads.
//! - `encode`: a `set` of a 100-byte value, and a 100-key `get`.
//!
//! Run with `cargo bench -p memcache-proto`.

use std::hint::black_box;

use bytes::{Bytes, BytesMut};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use memcache_proto::command::StoreVerb;
use memcache_proto::response::Value;
use memcache_proto::{Command, Connection, Key, Response};

fn keys(n: usize) -> Vec<Key> {
    (0..n).map(|i| Key::new(format!("user:{i:04}:profile")).expect("valid key")).collect()
}

fn render(values: Vec<Value>) -> Vec<u8> {
    let mut buf = BytesMut::new();
    Response::Values(values).encode(&mut buf);
    buf.to_vec()
}

/// Sends `get`, feeds `reply` in `read`-sized pieces, and returns the number of values.
fn round_trip(conn: &mut Connection, get: &Command, reply: &[u8], read: usize) -> usize {
    conn.send(get);
    while let Some(out) = conn.poll_transmit() {
        black_box(out);
    }
    for chunk in reply.chunks(read) {
        conn.read_buf().extend_from_slice(chunk);
        if let Some(done) = conn.poll_response().expect("valid reply") {
            let Response::Values(values) = done.response else { panic!("values") };
            return values.len();
        }
    }
    panic!("incomplete reply")
}

fn multiget(c: &mut Criterion) {
    let keys = keys(100);
    let values = keys
        .iter()
        .enumerate()
        .map(|(i, k)| Value {
            key: k.to_bytes(),
            flags: 0,
            cas: None,
            data: Bytes::from(vec![b'a' + (i % 26) as u8; 100]),
        })
        .collect();
    let reply = render(values);
    let get = Command::Get { keys: keys.into(), cas: false, touch: None };
    let mut group = c.benchmark_group("decode");
    group.throughput(Throughput::Bytes(reply.len() as u64));
    let mut conn = Connection::new();
    group.bench_function("multiget_100x100", |b| {
        b.iter(|| assert_eq!(round_trip(&mut conn, &get, black_box(&reply), reply.len()), 100))
    });
    group.finish();
}

fn large_value(c: &mut Criterion) {
    let data = Bytes::from((0..512 * 1024).map(|i| (i % 251) as u8).collect::<Vec<u8>>());
    let key = Key::new("big").expect("valid key");
    let reply = render(vec![Value { key: key.to_bytes(), flags: 0, cas: Some(1), data }]);
    let get = Command::Get { keys: key.into(), cas: true, touch: None };
    let mut group = c.benchmark_group("decode");
    group.throughput(Throughput::Bytes(reply.len() as u64));
    let mut conn = Connection::new();
    group.bench_function("value_512k_in_16k_reads", |b| {
        b.iter(|| assert_eq!(round_trip(&mut conn, &get, black_box(&reply), 16 * 1024), 1))
    });
    group.finish();
}

fn encode(c: &mut Criterion) {
    let set = Command::Store {
        verb: StoreVerb::Set,
        key: Key::new("user:0042:profile").expect("valid key"),
        flags: 42,
        exptime: 3600,
        value: Bytes::from(vec![b'v'; 100]),
        noreply: false,
    };
    let get = Command::Get { keys: keys(100).into(), cas: true, touch: None };
    let mut group = c.benchmark_group("encode");
    let mut buf = BytesMut::with_capacity(4096);
    for (name, command) in [("set_100b", &set), ("get_100_keys", &get)] {
        let mut once = BytesMut::new();
        command.encode(&mut once);
        group.throughput(Throughput::Bytes(once.len() as u64));
        group.bench_function(name, |b| {
            b.iter(|| {
                buf.clear();
                black_box(command).encode(&mut buf);
                black_box(&buf);
            })
        });
    }
    group.finish();
}

criterion_group!(benches, multiget, large_value, encode);
criterion_main!(benches);
