//! Issue 11, #5: requests whose callers gave up still have deadlines. Against a server that
//! accepts and never reads, 10,000 calls cancelled after 5 ms each must not pile up in the
//! client: the pipe is failed at its oldest request's deadline and a fresh one opened, so
//! the heap stays bounded.
//!
//! Its own test binary: the heap is measured with dhat's allocator, which counts the whole
//! process.

use std::time::Duration;

use bytes::Bytes;
use memcache_proto::driver::{Client, Runtime};
use memcache_proto::{Error, FailurePolicy, Item};
use memcache_test_support::sim::{Sim, SimRuntime, memcached};

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

const TIMEOUT: Duration = Duration::from_millis(100);
const CALLS: usize = 10_000;
/// Large enough that keeping every abandoned request (about 100 MB) breaks the bound.
const VALUE: usize = 10 * 1024;
const HEAP_BOUND: usize = 64 << 20;

#[test]
fn abandoned_requests_time_out_and_memory_stays_bounded() {
    let _profiler = dhat::Profiler::builder().testing().build();
    let sim = Sim::new();
    let server = sim.server(memcached());
    server.configure(|w| w.reading = false);
    let c = Client::<SimRuntime>::builder()
        .servers([server.addr()])
        .timeout(TIMEOUT)
        .max_conns_per_server(1)
        // The driver's deadlines are under test, not the fleet's fail-fast for a server that
        // keeps timing out: every call goes to the network.
        .failure_policy(FailurePolicy::disabled())
        .build()
        .expect("client");
    let calls = sim.spawn(async move {
        let (mut cancelled, mut timed_out) = (0, 0);
        for i in 0..CALLS {
            // A fresh value per call, as an application's would be.
            let item = Item::new(format!("k{i}"), Bytes::from(vec![b'x'; VALUE]));
            match SimRuntime::timeout(Duration::from_millis(5), c.set(&item)).await {
                None => cancelled += 1,
                // The call in flight when its pipe's oldest deadline passed.
                Some(Err(Error::Timeout)) => timed_out += 1,
                Some(other) => panic!("call {i}: a server that never reads cannot answer: {other:?}"),
            }
        }
        (cancelled, timed_out)
    });

    sim.advance(TIMEOUT + TIMEOUT / 2);
    assert!(server.conn(0).closed_by_client(), "the stalled pipe was failed at its deadline");
    assert_eq!(server.connections(), 2, "and a fresh one opened for the next calls");

    while !calls.is_done() {
        sim.advance(Duration::from_secs(1));
    }
    let (cancelled, timed_out) = calls.take().expect("done");
    assert_eq!(cancelled + timed_out, CALLS);
    assert!(cancelled > timed_out, "most calls gave up before any deadline: {cancelled} / {timed_out}");
    let peak = dhat::HeapStats::get().max_bytes;
    assert!(peak < HEAP_BOUND, "peak heap {} MiB, bound {} MiB", peak >> 20, HEAP_BOUND >> 20);
    let expected = (sim.elapsed().as_millis() / TIMEOUT.as_millis()) as usize;
    assert!(
        server.connections() + 1 >= expected,
        "one pipe per deadline: {} connections in {:?}",
        server.connections(),
        sim.elapsed()
    );
    eprintln!(
        "{CALLS} calls ({cancelled} cancelled, {timed_out} timed out) in {:?} (simulated): {} connections, peak heap {:.1} MiB",
        sim.elapsed(),
        server.connections(),
        peak as f64 / (1 << 20) as f64
    );
}
