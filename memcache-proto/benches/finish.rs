//! Turning a decoded multi-key reply into the call's result (`op::GetMulti::finish`): the
//! matching of values to requested keys, with a 100-key reply in request order (memcached)
//! and reversed (a proxy may reorder).
//!
//! Run with `cargo bench -p memcache-proto --bench finish`.

use std::hint::black_box;

use bytes::Bytes;
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use memcache_proto::op::{GetMulti, Op};
use memcache_proto::response::Value;
use memcache_proto::{Key, Response};

fn keys(n: usize) -> Vec<Key> {
    (0..n).map(|i| Key::new(format!("bench:{i:06}")).expect("valid key")).collect()
}

fn values(keys: &[Key]) -> Vec<Value> {
    keys.iter()
        .map(|k| Value {
            key: Bytes::copy_from_slice(k.as_bytes()),
            flags: 0,
            cas: Some(1),
            data: Bytes::from(vec![b'v'; 100]),
        })
        .collect()
}

fn get_multi_finish(c: &mut Criterion) {
    let requested = keys(100);
    let in_order = values(&requested);
    let mut reversed = in_order.clone();
    reversed.reverse();
    let mut group = c.benchmark_group("get_multi_finish_100");
    group.throughput(Throughput::Elements(100));
    for (name, reply) in [("in_order", in_order), ("reversed", reversed)] {
        group.bench_function(name, |b| {
            b.iter_batched(
                || (GetMulti::new(requested.clone()), Response::Values(reply.clone())),
                |(op, response)| black_box(op.finish(response).map(|items| items.len())),
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

criterion_group!(benches, get_multi_finish);
criterion_main!(benches);
