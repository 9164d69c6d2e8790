//! Who reads a reply (issue 18): a caller alone on its connection reads its own, so a call
//! costs its own task's wake-up and no hop through the connection's driver task. This holds
//! for a `get_multi` too, which prepares its result (`Op::prepare`) between its first poll
//! and its wake-up. Counted as task polls on the simulated runtime, where a server answers
//! only between polls (so a reply never comes in the middle of a preparation here).

use std::time::Duration;

use memcache_proto::driver::Client;
use memcache_test_support::sim::{Sim, SimRuntime, memcached};

type C = Client<SimRuntime>;

/// Task polls for one call made on a warm connection (opened, its deadline timer armed),
/// and the call's result.
fn polls_for_one_call(fresh_reads: bool, keys: &'static [&'static str]) -> (usize, usize) {
    let sim = Sim::new();
    let server = sim.server(memcached());
    server.configure(|w| w.fresh_reads = fresh_reads);
    server.with_store(|s| ["a", "b", "c"].iter().for_each(|k| s.set(k, *k)));
    let c = C::builder()
        .servers([server.addr()])
        .timeout(Duration::from_millis(100))
        .max_conns_per_server(1)
        .build()
        .expect("client");
    let warm = c.clone();
    sim.block_on(async move { warm.get_multi(&["a"]).await }).expect("warm-up");
    // A clone makes the call: the client outlives it, or its end would wake the driver too.
    let caller = c.clone();
    let call = sim.spawn(async move { caller.get_multi(keys).await });
    let polls = sim.run();
    let got = call.take().expect("the call finished").expect("the call succeeded");
    (polls, got.len())
}

#[test]
fn a_lone_get_multi_reads_its_own_reply_while_it_prepares_its_result() {
    for fresh_reads in [true, false] {
        for keys in [&["a", "b", "c"][..], &["a"], &["x", "y"]] {
            let (polls, hits) = polls_for_one_call(fresh_reads, keys);
            let expected_hits = keys.iter().filter(|k| ["a", "b", "c"].contains(k)).count();
            assert_eq!(hits, expected_hits, "fresh reads {fresh_reads}, keys {keys:?}");
            // The caller's first poll (it writes, finds no reply, prepares, looks again) and
            // the wake-up its reply gives it. A driver task reading the reply for it would
            // be a third poll.
            assert_eq!(polls, 2, "fresh reads {fresh_reads}, keys {keys:?}: task polls for one call");
        }
    }
}
