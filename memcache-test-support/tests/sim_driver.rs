//! The async driver under failure, deterministically: the real async client on the simulated
//! runtime ([`memcache_test_support::sim`]), against scripted servers, with a manual clock.
//! Each test names the defect of issue 11 it pins down.

use std::time::Duration;

use memcache_proto::config::Builder;
use memcache_proto::driver::Client;
use memcache_proto::{Error, Item, ServerList, ServerSelector};
use memcache_test_support::sim::{self, Action, Handler, Sim, SimRuntime, SimServer, memcached};

type C = Client<SimRuntime>;

const TIMEOUT: Duration = Duration::from_millis(100);

fn client(servers: &[&SimServer]) -> Builder<C> {
    C::builder().servers(servers.iter().map(|s| s.addr())).timeout(TIMEOUT)
}

/// A key that `servers`' selector sends to `target`.
fn key_on(servers: &[&SimServer], target: &SimServer, prefix: &str) -> String {
    let list = ServerList::default();
    list.set_servers(servers.iter().map(|s| s.addr())).expect("sim addresses resolve");
    (0..)
        .map(|i| format!("{prefix}{i}"))
        .find(|k| list.pick_server(k.as_bytes()).expect("servers").to_string() == target.addr())
        .expect("some key lands on every server")
}

/// Answers as memcached, except that requests for key `victim` are applied and then the
/// connection is closed before the reply.
fn close_after_applying_victim() -> Handler {
    Box::new(|req, store| {
        let answer = store.answer(req);
        match req.args().first() == Some(&"victim") {
            true => vec![Action::Close],
            false => vec![Action::Reply(answer)],
        }
    })
}

#[test]
fn the_simulated_server_answers_like_memcached() {
    let sim = Sim::new();
    let server = sim.server(memcached());
    let c = client(&[&server]).build().expect("client");
    let got = sim.block_on(async move {
        c.set(&Item::new("n", "5")).await?;
        let n = c.increment("n", 2).await?;
        let readers: Vec<_> = (0..20).map(|_| c.get("n")).collect();
        let mut values = Vec::new();
        for r in readers {
            values.push(r.await?.value);
        }
        Ok::<_, Error>((n, values))
    });
    let (n, values) = got.expect("every call succeeds");
    assert_eq!(n, 7);
    assert!(values.iter().all(|v| v[..] == b"7"[..]), "{values:?}");
    assert_eq!(server.connections(), 1);
}

/// #2: replies that arrived with the end of the stream (or garbage) in the same read reach
/// their callers.
#[test]
fn replies_read_together_with_eof_reach_their_callers() {
    const N: usize = 8;
    let sim = Sim::new();
    let mut seen = 0;
    let mut held = Vec::new();
    // The first incr is answered at once (its reply releases the batch queued behind it);
    // the next N are answered together and followed by EOF, as one read.
    let server = sim.server(Box::new(move |req, store| {
        let answer = store.answer(req);
        if req.verb() != "incr" {
            return vec![Action::Reply(answer)];
        }
        seen += 1;
        if seen == 1 {
            return vec![Action::Reply(answer)];
        }
        held.push(answer);
        match held.len() {
            N => vec![Action::Reply(held.concat().into()), Action::Close],
            _ => vec![],
        }
    }));
    server.with_store(|s| s.set("n", "0"));
    let c = client(&[&server]).max_conns_per_server(1).build().expect("client");
    let calls: Vec<_> = (0..=N)
        .map(|_| {
            let c = c.clone();
            sim.spawn(async move { c.increment("n", 1).await })
        })
        .collect();
    sim.run();
    let mut got: Vec<u64> = calls
        .iter()
        .map(|t| t.take().expect("finished").expect("the reply arrived, so the call succeeds"))
        .collect();
    got.sort_unstable();
    assert_eq!(got, (1..=N as u64 + 1).collect::<Vec<_>>());
    assert_eq!(server.count("incr"), N + 1, "each increment was sent once");
}

/// #2 with garbage instead of EOF: the replies before the garbage reach their callers, the
/// ones after it fail with a protocol error, and the connection is closed.
#[test]
fn replies_before_garbage_reach_their_callers() {
    let sim = Sim::new();
    let mut held = Vec::new();
    let server = sim.server(Box::new(move |req, store| {
        let answer = store.answer(req);
        if req.verb() != "incr" || req.args().first() == Some(&"first") {
            return vec![Action::Reply(answer)];
        }
        held.push(answer);
        match held.len() {
            3 => vec![Action::Reply([&held[0][..], &held[1][..], b"GARBAGE\r\n"].concat().into())],
            _ => vec![],
        }
    }));
    server.with_store(|s| {
        s.set("first", "0");
        s.set("n", "0");
    });
    let c = client(&[&server]).max_conns_per_server(1).build().expect("client");
    let c1 = c.clone();
    let first = sim.spawn(async move { c1.increment("first", 1).await });
    let calls: Vec<_> = (0..3)
        .map(|_| {
            let c = c.clone();
            sim.spawn(async move { c.increment("n", 1).await })
        })
        .collect();
    sim.advance(TIMEOUT * 2);
    assert_eq!(first.take().and_then(Result::ok), Some(1));
    let got: Vec<_> = calls.iter().map(|t| t.take().expect("finished")).collect();
    assert_eq!(got.iter().filter_map(|r| r.as_ref().ok()).copied().collect::<Vec<_>>(), [1, 2], "{got:?}");
    assert!(matches!(got[2], Err(Error::Protocol(_))), "{got:?}");
    assert!(server.conn(0).closed_by_client());
    assert_eq!(server.count("incr"), 4, "nothing was resent");
}

/// Replies that arrive one byte per read, for many pipelined callers at once (merged gets
/// included), each reach their own caller.
#[test]
fn replies_split_into_single_bytes_reach_their_callers() {
    let sim = Sim::new();
    let server = sim.server(memcached());
    server.configure(|w| w.read_chunk = 1);
    (0..20).for_each(|i| server.with_store(|s| s.set(&format!("k{i}"), format!("value-{i}"))));
    let c = client(&[&server]).max_conns_per_server(1).build().expect("client");
    let calls: Vec<_> = (0..20)
        .map(|i| {
            let c = c.clone();
            sim.spawn(async move {
                let got = c.get(&format!("k{i}")).await?;
                c.set(&Item::new(format!("s{i}"), "x")).await?;
                Ok::<_, Error>(got.value)
            })
        })
        .collect();
    sim.run();
    for (i, call) in calls.iter().enumerate() {
        let value = call.take().expect("finished").expect("answered");
        assert_eq!(&value[..], format!("value-{i}").as_bytes());
    }
    assert_eq!(server.connections(), 1);
    assert!(server.count("gets") < 20, "concurrent gets were merged");
}

/// #6: a stream whose flush returned `Pending` (TLS) is flushed again when it can take more.
#[test]
fn a_flush_left_pending_is_completed_later() {
    let sim = Sim::new();
    let server = sim.server(memcached());
    server.configure(|w| {
        w.buffered = true;
        w.pending_flushes = 1;
    });
    let c = client(&[&server]).build().expect("client");
    let set = sim.block_on(async move { c.set(&Item::new("k", "v")).await });
    assert!(set.is_ok(), "{set:?}");
    assert!(sim.elapsed() < TIMEOUT, "answered before the deadline, not at it: {:?}", sim.elapsed());
    assert_eq!(server.conn(0).unflushed(), 0);
}

/// #4: a reply that decodes but answers another key is a desync: the connection that carried
/// it is closed, and the next call gets a fresh one.
#[test]
fn a_value_for_another_key_closes_the_connection() {
    let sim = Sim::new();
    let server = sim.server(Box::new(|req, store| match req.line.as_str() {
        "gets wrong" => vec![Action::reply("VALUE other 0 1\r\nx\r\nEND\r\n")],
        _ => vec![Action::Reply(store.answer(req))],
    }));
    let c = client(&[&server]).max_conns_per_server(1).build().expect("client");
    let c2 = c.clone();
    let got = sim.block_on(async move { c2.get("wrong").await });
    assert!(matches!(got, Err(Error::Protocol(_))), "{got:?}");
    sim.run();
    assert!(server.conn(0).closed_by_client(), "the desynced connection is closed");
    let next = sim.block_on(async move { c.set(&Item::new("k", "v")).await });
    assert!(next.is_ok(), "{next:?}");
    assert_eq!(server.connections(), 2, "the next call opened a fresh connection");
}

/// #3: when one server stalls, a `get_multi` still takes the replies that the healthy
/// servers sent, and leaves their connections open.
#[test]
fn a_stalled_server_costs_get_multi_only_its_own_keys() {
    let sim = Sim::new();
    let stalled = sim.server(Box::new(|req, store| match req.verb() {
        "gets" => vec![],
        _ => vec![Action::Reply(store.answer(req))],
    }));
    let healthy = sim.server(memcached());
    let all = [&stalled, &healthy];
    let (ks, kh) = (key_on(&all, &stalled, "s"), key_on(&all, &healthy, "h"));
    healthy.with_store(|s| s.set(&kh, "v"));
    let c = client(&all).build().expect("client");
    let c2 = c.clone();
    let keys = [ks.clone(), kh.clone()];
    let got = sim.block_on(async move { c2.get_multi_partial(&keys).await }).expect("valid keys");
    assert_eq!(got.items.keys().collect::<Vec<_>>(), [&kh], "the healthy server's item is kept");
    assert!(
        matches!(got.failed[..], [(ref s, Error::Timeout)] if s.to_string() == stalled.addr()),
        "{:?}",
        got.failed
    );
    sim.run();
    assert!(!healthy.conn(0).closed_by_client(), "the healthy server's connection stays open");
    assert!(stalled.conn(0).closed_by_client(), "the stalled server's connection is closed");
    let again = sim.block_on(async move { c.get(&kh).await });
    assert!(again.is_ok(), "{again:?}");
    assert_eq!(healthy.connections(), 1);
}

/// #10: the call's timeout covers the wait for admission: callers queued behind a stalled
/// server's bound fail at their own deadline, not one deadline per caller ahead of them.
#[test]
fn admission_waits_end_at_the_calls_deadline() {
    let sim = Sim::new();
    let server = sim.server(Box::new(|_, _| vec![]));
    let c = client(&[&server]).max_conns_per_server(1).max_in_flight(1).build().expect("client");
    let calls: Vec<_> = (0..3)
        .map(|i| {
            let c = c.clone();
            sim.spawn(async move {
                let start = sim::now();
                let got = c.get(&format!("k{i}")).await;
                (got, sim::now() - start)
            })
        })
        .collect();
    sim.advance(TIMEOUT * 4);
    for (i, call) in calls.iter().enumerate() {
        let (got, took) = call.take().expect("finished");
        assert!(matches!(got, Err(Error::Timeout)), "call {i}: {got:?}");
        assert!(took <= TIMEOUT, "call {i} took {took:?}, past its {TIMEOUT:?}");
    }
}

/// #1: a pooled connection the server closed while it idled is replaced before the next
/// request is written, so the caller never sees it.
#[test]
fn a_connection_closed_while_idle_is_replaced_silently() {
    let sim = Sim::new();
    let server = sim.server(memcached());
    server.with_store(|s| s.set("n", "1"));
    let c = client(&[&server]).max_conns_per_server(1).build().expect("client");
    let c2 = c.clone();
    sim.block_on(async move { c2.ping().await }).expect("ping");
    server.conn(0).close();
    sim.run();
    let n = sim.block_on(async move { c.increment("n", 1).await });
    assert_eq!(n.ok(), Some(2));
    assert_eq!(server.connections(), 2);
    assert_eq!(server.count("incr"), 1);
}

/// #1: the same when the runtime has not yet told the driver about the end of stream: the
/// idle pipe is checked before a request is written onto it. Both ways a pipe checks: a
/// stream with fresh reads was left unarmed by the caller that read the last reply, and the
/// check is the read that re-arms it; another is re-armed at once and checked with a read
/// of its own.
#[test]
fn a_close_the_driver_has_not_seen_yet_is_found_before_writing() {
    for fresh_reads in [true, false] {
        let sim = Sim::new();
        let server = sim.server(memcached());
        server.configure(|w| w.fresh_reads = fresh_reads);
        server.with_store(|s| s.set("n", "1"));
        let c = client(&[&server]).max_conns_per_server(1).build().expect("client");
        let c2 = c.clone();
        sim.block_on(async move {
            c2.ping().await?;
            c2.ping().await
        })
        .expect("ping");
        server.conn(0).close_unnoticed();
        let n = sim.block_on(async move { c.increment("n", 1).await });
        assert_eq!(n.ok(), Some(2), "fresh reads {fresh_reads}: the increment went to a fresh connection");
        assert_eq!(server.connections(), 2, "fresh reads {fresh_reads}");
        assert_eq!(server.count("incr"), 1, "fresh reads {fresh_reads}");
    }
}

/// #1: a write request that reached the server is never sent again, even on a reused
/// connection that then failed; the caller gets the error. A read is retried.
#[test]
fn a_written_write_is_sent_exactly_once() {
    type Call = fn(C) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), Error>> + Send>>;
    let cases: [(&str, Call); 8] = [
        ("incr", |c| Box::pin(async move { c.increment("victim", 1).await.map(drop) })),
        ("decr", |c| Box::pin(async move { c.decrement("victim", 1).await.map(drop) })),
        ("append", |c| Box::pin(async move { c.append(&Item::new("victim", "v")).await })),
        ("prepend", |c| Box::pin(async move { c.prepend(&Item::new("victim", "v")).await })),
        ("add", |c| Box::pin(async move { c.add(&Item::new("victim", "v")).await })),
        ("cas", |c| {
            Box::pin(
                async move { c.compare_and_swap(&Item { cas: Some(1), ..Item::new("victim", "v") }).await },
            )
        }),
        ("set", |c| Box::pin(async move { c.set(&Item::new("victim", "v")).await })),
        ("delete", |c| Box::pin(async move { c.delete("victim").await })),
    ];
    for (verb, call) in cases {
        let sim = Sim::new();
        let server = sim.server(close_after_applying_victim());
        server.with_store(|s| s.set("victim", "1"));
        let c = client(&[&server]).max_conns_per_server(1).build().expect("client");
        let c2 = c.clone();
        sim.block_on(async move { c2.ping().await }).expect("ping opens the connection");
        let got = sim.block_on(call(c));
        assert!(matches!(got, Err(Error::Io(_))), "{verb}: the outcome is unknown, so an error: {got:?}");
        assert_eq!(server.count(verb), 1, "{verb} was sent once");
    }
    let sim = Sim::new();
    let server = sim.server(close_after_applying_victim());
    server.with_store(|s| s.set("victim", "1"));
    let c = client(&[&server]).max_conns_per_server(1).build().expect("client");
    let c2 = c.clone();
    sim.block_on(async move { c2.ping().await }).expect("ping");
    let got = sim.block_on(async move { c.get("victim").await });
    assert!(got.is_err(), "the server closes on every read of victim: {got:?}");
    assert_eq!(server.count("gets"), 2, "a read that failed on a reused connection is retried once");
}

/// Opens `n` pooled connections to `server` and lets them idle: enough concurrent calls that
/// the pool, which packs callers onto a connection until it is saturated, opens `n` (the
/// client's `max_conns_per_server`).
fn open_pooled(sim: &Sim, c: &C, server: &SimServer, n: usize) {
    let calls: Vec<_> = (0..64 * n)
        .map(|_| {
            let c = c.clone();
            sim.spawn(async move { c.ping().await })
        })
        .collect();
    sim.run();
    calls.iter().for_each(|t| t.take().expect("finished").expect("ping"));
    assert_eq!(server.connections(), n, "the concurrent calls filled {n} connections");
}

/// A restart under two idle pooled connections whose ends the runtime has not reported yet:
/// the first one the caller takes is found dead before writing, and the caller's request
/// goes to a new connection, not to the other pooled one (dead as well, and found so only by
/// its own probe: the caller would fail).
#[test]
fn after_a_restart_a_caller_is_not_handed_a_second_dead_connection() {
    let sim = Sim::new();
    let server = sim.server(memcached());
    server.with_store(|s| s.set("n", "1"));
    let c = client(&[&server]).max_conns_per_server(2).build().expect("client");
    open_pooled(&sim, &c, &server, 2);
    server.conn(0).close_unnoticed();
    server.conn(1).close_unnoticed();
    let n = sim.block_on(async move { c.increment("n", 1).await });
    assert_eq!(n.ok(), Some(2), "the increment went to a new connection");
    assert_eq!(server.connections(), 3);
    assert_eq!(server.count("incr"), 1);
}

/// The same on streams that cannot be probed before a write: a read written onto the first
/// dead connection fails as a stale one, and its one resend goes to a new connection, not to
/// the second dead one.
#[test]
fn a_resend_after_a_restart_goes_to_a_new_connection() {
    let sim = Sim::new();
    let server = sim.server(memcached());
    server.configure(|w| w.probe = false);
    server.with_store(|s| s.set("k", "v"));
    let c = client(&[&server]).max_conns_per_server(2).build().expect("client");
    open_pooled(&sim, &c, &server, 2);
    server.conn(0).close_unnoticed();
    server.conn(1).close_unnoticed();
    let got = sim.block_on(async move { c.get("k").await });
    assert_eq!(got.map(|i| i.value).ok().as_deref(), Some(&b"v"[..]), "the resend found a live connection");
    assert_eq!(server.connections(), 3);
}
