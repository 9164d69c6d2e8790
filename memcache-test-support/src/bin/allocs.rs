//! Counts heap allocations per call on each client, W1-style (one connection, 100-byte
//! values), with dhat's allocator in testing mode; each client twice, without and with an
//! observer that counts events (`bench::CountingObserver`, the `+observer` rows).
//!
//! `cargo run --release -p memcache-test-support --bin allocs -- --addr 127.0.0.1:PORT`
//!
//! With `--cancelled` instead: the peak heap of each async client after 10,000 sets (10 KiB
//! values) cancelled after 5 ms each, against a server that accepts and never reads (issue
//! 11: abandoned requests keep their deadline, so the pipe is replaced and nothing piles up).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use memcache_proto::{Error, FailurePolicy, Item};
use memcache_test_support::adapters::{AsyncStd, Blocking, Smol, Tokio, TokioCt};
use memcache_test_support::bench::{CountingObserver, key, value};
use memcache_test_support::conformance::{Adapter, ClientConfig};
use memcache_test_support::fault::{Fault, FaultServer};

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

const CALLS: u64 = 10_000;

fn main() {
    if std::env::args().any(|a| a == "--cancelled") {
        let _profiler = dhat::Profiler::builder().testing().build();
        println!(
            "{:<34} {:>10} {:>10} {:>12} {:>14}",
            "client", "cancelled", "timed out", "connections", "peak heap MiB"
        );
        cancelled::<Tokio>();
        cancelled::<AsyncStd>();
        return;
    }
    let addr = std::env::args().skip_while(|a| a != "--addr").nth(1).unwrap_or_else(|| {
        eprintln!("usage: allocs --addr 127.0.0.1:PORT");
        std::process::exit(2)
    });
    let _profiler = dhat::Profiler::builder().testing().build();
    println!("{:<44} {:>14} {:>14}", "client", "allocs/get", "allocs/set");
    for observer in [false, true] {
        measure::<Blocking>(&addr, observer);
        measure::<Tokio>(&addr, observer);
        measure::<TokioCt>(&addr, observer);
        measure::<AsyncStd>(&addr, observer);
        measure::<Smol>(&addr, observer);
    }
}

fn measure<A: Adapter>(addr: &str, observer: bool) {
    let addr = addr.to_owned();
    let (get, set) = A::block_on(async move {
        let mut cfg = ClientConfig::new([addr]).timeout(Duration::from_secs(5)).max_conns(1);
        if observer {
            cfg = cfg.observer(Arc::new(CountingObserver::default()));
        }
        let c = A::connect(cfg).expect("client");
        let item = Item::new(key(1), value(1, 100));
        // Warm up: connection, buffers, runtime structures.
        for _ in 0..1_000 {
            A::set(&c, &item).await.expect("set");
            A::get(&c, &item.key).await.expect("get");
        }
        let before = dhat::HeapStats::get().total_blocks;
        for _ in 0..CALLS {
            A::get(&c, &item.key).await.expect("get");
        }
        let mid = dhat::HeapStats::get().total_blocks;
        for _ in 0..CALLS {
            A::set(&c, &item).await.expect("set");
        }
        let after = dhat::HeapStats::get().total_blocks;
        ((mid - before) as f64 / CALLS as f64, (after - mid) as f64 / CALLS as f64)
    });
    let name = format!("{}{}", A::NAME, if observer { " +observer" } else { "" });
    println!("{name:<44} {get:>14.2} {set:>14.2}");
}

/// 10,000 sets cancelled after 5 ms against a server that never reads; prints the peak heap
/// (the whole process's, since the profiler started) and the connections the server saw.
fn cancelled<A: Adapter>() {
    const VALUE: usize = 10 * 1024;
    let deaf = FaultServer::start(Fault::Deaf);
    let addr = deaf.addr();
    let (cancelled, timed_out) = A::block_on(async move {
        let cfg = ClientConfig::new([addr])
            .timeout(Duration::from_millis(100))
            .max_conns(1)
            .failure_policy(FailurePolicy::disabled());
        let c = A::connect(cfg).expect("client");
        let (mut cancelled, mut timed_out) = (0, 0);
        for i in 0..CALLS {
            let item = Item::new(format!("k{i}"), Bytes::from(vec![b'x'; VALUE]));
            match A::timeout(Duration::from_millis(5), A::set(&c, &item)).await {
                None => cancelled += 1,
                Some(Err(Error::Timeout | Error::Io(_))) => timed_out += 1,
                Some(other) => panic!("call {i}: a server that never reads cannot answer: {other:?}"),
            }
        }
        (cancelled, timed_out)
    });
    let peak = dhat::HeapStats::get().max_bytes as f64 / (1 << 20) as f64;
    println!("{:<34} {cancelled:>10} {timed_out:>10} {:>12} {peak:>14.1}", A::NAME, deaf.connections());
}
