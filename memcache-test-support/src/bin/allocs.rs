//! Counts heap allocations per call on each client, W1-style (one connection, 100-byte
//! values), with dhat's allocator in testing mode.
//!
//! `cargo run --release -p memcache-test-support --bin allocs -- --addr 127.0.0.1:PORT`

use std::time::Duration;

use memcache_proto::Item;
use memcache_test_support::adapters::{AsyncStd, Blocking, Smol, Tokio, TokioCt};
use memcache_test_support::bench::{key, value};
use memcache_test_support::conformance::{Adapter, ClientConfig};

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

const CALLS: u64 = 10_000;

fn main() {
    let addr = std::env::args().skip_while(|a| a != "--addr").nth(1).unwrap_or_else(|| {
        eprintln!("usage: allocs --addr 127.0.0.1:PORT");
        std::process::exit(2)
    });
    let _profiler = dhat::Profiler::builder().testing().build();
    println!("{:<34} {:>14} {:>14}", "client", "allocs/get", "allocs/set");
    measure::<Blocking>(&addr);
    measure::<Tokio>(&addr);
    measure::<TokioCt>(&addr);
    measure::<AsyncStd>(&addr);
    measure::<Smol>(&addr);
}

fn measure<A: Adapter>(addr: &str) {
    let addr = addr.to_owned();
    let (get, set) = A::block_on(async move {
        let cfg = ClientConfig::new([addr]).timeout(Duration::from_secs(5)).max_conns(1);
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
    println!("{:<34} {get:>14.2} {set:>14.2}", A::NAME);
}
