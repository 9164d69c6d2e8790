//! Cancellation, deterministically: a caller that drops its call before any byte of the
//! request was written takes the request back, so a cancelled write is never applied (not
//! even after the caller's later writes, on another connection); a request already written
//! stays written, its reply read and discarded.

use std::time::Duration;

use bytes::Bytes;
use memcache_proto::Item;
use memcache_proto::config::Builder;
use memcache_proto::driver::Client;
use memcache_test_support::sim::{Action, Handler, Sim, SimServer};

type C = Client<memcache_test_support::sim::SimRuntime>;

const TIMEOUT: Duration = Duration::from_millis(100);

fn client(server: &SimServer) -> Builder<C> {
    C::builder().servers([server.addr()]).timeout(TIMEOUT).max_conns_per_server(1)
}

/// Answers as memcached, but holds the reply to a request on key `slow` (the test pushes it),
/// so the requests submitted meanwhile wait in the client for the next write.
fn slow_first() -> Handler {
    Box::new(|req, store| {
        let answer = store.answer(req);
        match req.args().first() == Some(&"slow") {
            true => vec![],
            false => vec![Action::Reply(answer)],
        }
    })
}

/// The keys the server saw requests for, in order.
fn keys_seen(server: &SimServer) -> Vec<String> {
    server.requests().iter().filter_map(|r| r.args().first().map(|k| k.to_string())).collect()
}

/// Writes queued behind a request in flight, one of them cancelled: that one never reaches
/// the server, and the others arrive whole and are answered to their own callers. Values of
/// every size: a large one leaves as its own chunk, so cutting it must keep the chunks around
/// it exact.
#[test]
fn a_write_cancelled_before_it_was_written_never_reaches_the_server() {
    for (victim_len, other_len) in [(3, 3), (64 * 1024, 3), (3, 64 * 1024), (64 * 1024, 64 * 1024)] {
        let sim = Sim::new();
        let server = sim.server(slow_first());
        let c = client(&server).build().expect("client");
        let set = |key: &str, len: usize| {
            let (c, item) = (c.clone(), Item::new(key, Bytes::from(vec![b'v'; len])));
            sim.spawn(async move { c.set(&item).await })
        };
        let slow = set("slow", 3);
        sim.run();
        assert_eq!(keys_seen(&server), ["slow"], "written at once, on an idle connection");
        let before = set("before", other_len);
        let victim = set("victim", victim_len);
        let after = set("after", other_len);
        sim.run();
        assert_eq!(keys_seen(&server), ["slow"], "the others wait for the reply in flight");
        victim.abort();
        sim.run();
        server.conn(0).push("STORED\r\n");
        sim.run();
        let case = format!("victim {victim_len} B, others {other_len} B");
        for (name, call) in [("slow", slow), ("before", before), ("after", after)] {
            let got = call.take().unwrap_or_else(|| panic!("{case}: {name} finished"));
            assert!(got.is_ok(), "{case}: {name}: {got:?}");
        }
        assert_eq!(keys_seen(&server), ["slow", "before", "after"], "{case}");
        server.with_store(|s| {
            assert_eq!(s.get("victim"), None, "{case}: the cancelled set was not applied");
            assert_eq!(s.get("after").map(|v| v.len()), Some(other_len), "{case}");
        });
        assert_eq!(server.connections(), 1, "{case}: the connection stayed in sync");
    }
}

/// A single-key get waiting to be merged with others is taken back the same way.
#[test]
fn a_gathered_get_cancelled_before_it_was_written_is_not_sent() {
    let sim = Sim::new();
    let server = sim.server(slow_first());
    server.with_store(|s| s.set("a", "1"));
    let c = client(&server).build().expect("client");
    let c1 = c.clone();
    let slow = sim.spawn(async move { c1.set(&Item::new("slow", "x")).await });
    sim.run();
    let gets: Vec<_> = ["victim", "a"]
        .into_iter()
        .map(|k| {
            let c = c.clone();
            sim.spawn(async move { c.get(k).await })
        })
        .collect();
    sim.run();
    let mut gets = gets.into_iter();
    gets.next().expect("victim's get").abort();
    server.conn(0).push("STORED\r\n");
    sim.run();
    assert!(slow.take().is_some_and(|r| r.is_ok()));
    let a = gets.next().expect("a's get").take().expect("finished");
    assert_eq!(a.map(|i| i.value).ok(), Some(Bytes::from_static(b"1")));
    let lines: Vec<String> = server.requests().iter().map(|r| r.line.clone()).collect();
    assert_eq!(lines[1..], ["gets a"], "the cancelled key was not asked for");
}

/// A write already written when its caller gives up stays written: the server applies it
/// (the outcome is unknown to the caller, as documented), its reply is read and discarded,
/// and the next call on the connection gets its own reply.
#[test]
fn a_write_cancelled_after_it_was_written_may_still_be_applied() {
    let sim = Sim::new();
    let server = sim.server(Box::new(|req, store| {
        let answer = store.answer(req);
        match req.verb() == "set" {
            true => vec![],
            false => vec![Action::Reply(answer)],
        }
    }));
    let c = client(&server).build().expect("client");
    let c1 = c.clone();
    let victim = sim.spawn(async move { c1.set(&Item::new("victim", "late")).await });
    sim.run();
    victim.abort();
    sim.run();
    server.conn(0).push("STORED\r\n");
    let next = sim.block_on(async move { c.get("victim").await });
    let value = next.map(|i| i.value).ok();
    assert_eq!(value, Some(Bytes::from_static(b"late")), "applied, and the reply discarded");
    assert_eq!(server.connections(), 1);
}
