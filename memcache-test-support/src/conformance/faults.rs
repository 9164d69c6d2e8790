//! Faults: stalls, resets, garbage, truncated values, cut connections, slow and late replies.
//! After each fault the same client must work again, on a fresh connection, with no help.

use std::time::Duration;

use bytes::Bytes;
use memcache_proto::{Error, FailurePolicy, Item};

use super::util::{XorShift, store_direct};
use super::{Adapter, ClientConfig, Res, check_item, client, timed};
use crate::fault::{Fault, FaultServer, Proxy, ProxyMode};
use crate::memcached::Memcached;

/// The calls every fault is tried with: a read, a multi-read, a store, a mutation.
async fn one_call<A: Adapter>(c: &A::Client, which: usize) -> (&'static str, Res<()>) {
    match which % 5 {
        0 => ("get", A::get(c, "k").await.map(drop)),
        1 => ("get_multi", A::get_multi(c, &["k", "k2"]).await.map(drop)),
        2 => ("set", A::set(c, &Item::new("k", "value")).await),
        3 => ("delete", A::delete(c, "k").await),
        _ => ("increment", A::increment(c, "k", 1).await.map(drop)),
    }
}

/// A server that accepts and reads but never answers: every call is `Timeout`, reported within
/// a small multiple of the configured timeout (4x: loaded CI machines wake timers late) and not
/// long before it. Dead-server handling is off: this is
/// about each call's own deadline (the `fleet` group tests what happens with it on).
pub async fn stalled_server_times_out<A: Adapter>() {
    let stall = FaultServer::start(Fault::Stall);
    let timeout = Duration::from_millis(500);
    let c = client::<A>(
        ClientConfig::new([stall.addr()]).timeout(timeout).failure_policy(FailurePolicy::disabled()),
    );
    for which in 0..5 {
        let ((name, res), took) = timed(|| one_call::<A>(&c, which)).await;
        expect_err!(res, Error::Timeout, "{name} on a stalled server");
        assert!(took < timeout * 4, "{name} on a stalled server took {took:?}, more than 4 x {timeout:?}");
        assert!(took >= timeout / 2, "{name} timed out after only {took:?} (timeout {timeout:?})");
    }
    let (res, took) = timed(|| A::ping(&c)).await;
    expect_err!(res, Error::Timeout, "ping of a stalled server");
    assert!(took < timeout * 4, "ping of a stalled server took {took:?}");
    assert!(stall.bytes_received() > 0, "the requests reached the stalled server");
}

/// Reset, garbage, half a value then EOF, and close-on-accept each give an error that marks the
/// connection broken (`Io` or `Protocol`), and the next call opens a fresh connection.
/// Dead-server handling is off, so that every call reaches the server.
pub async fn broken_connections_are_reported_and_never_reused<A: Adapter>() {
    for fault in [Fault::Reset, Fault::Garbage, Fault::HalfValue, Fault::CloseImmediately] {
        let server = FaultServer::start(fault);
        let config = ClientConfig::new([server.addr()]).timeout(Duration::from_secs(2));
        let c = client::<A>(config.failure_policy(FailurePolicy::disabled()));
        for which in 0..10 {
            let (name, res) = one_call::<A>(&c, which).await;
            match res {
                // Over TLS, garbage and cut records are TLS failures.
                Err(e @ (Error::Io(_) | Error::Protocol(_) | Error::Tls(_))) => {
                    assert!(
                        e.is_connection_broken(),
                        "{fault:?}/{name}: {e:?} must mark the connection broken"
                    );
                }
                other => panic!("{fault:?}/{name}: expected Err(Io, Protocol or Tls), got {other:?}"),
            }
            let conns = server.connections();
            assert!(
                conns > which,
                "{fault:?}: after {} failed calls the server saw only {conns} connection(s): a broken connection was reused",
                which + 1
            );
        }
    }
}

/// Through a proxy in front of a real server: a stall (timeout) and a cut connection each fail
/// one call; the next call on the same client succeeds on a fresh connection; connections the
/// proxy cuts while idle are replaced without the caller seeing an error.
pub async fn recovers_after_proxy_faults<A: Adapter>() {
    let m = Memcached::start();
    let proxy = Proxy::start(&m.addr());
    let c = client::<A>(ClientConfig::new([proxy.addr()]).timeout(Duration::from_millis(750)));
    expect_ok!(A::set(&c, &Item::new("k", "v")).await, "set through the proxy");
    store_direct(&m, &[("k2".into(), b"v2".to_vec())]);

    for round in 0..3 {
        // Stall: the reply is held (and delivered later on that connection if it is reused).
        proxy.set_mode(ProxyMode::Stall);
        let before = proxy.connections();
        expect_err!(A::get(&c, "k").await, Error::Timeout, "round {round}: get while the proxy stalls");
        proxy.set_mode(ProxyMode::Pass);
        check_item(&expect_ok!(A::get(&c, "k2").await, "get after a stall"), "k2", b"v2", 0, round);
        assert!(
            proxy.connections() > before,
            "round {round}: the call after a timeout used a fresh connection"
        );
        check_item(&expect_ok!(A::get(&c, "k").await, "get"), "k", b"v", 0, round);

        // Cut: the proxy drops the next request and closes the connection.
        proxy.set_mode(ProxyMode::CloseAfter(0));
        match A::get(&c, "k").await {
            Err(e) => assert!(e.is_connection_broken(), "round {round}: a cut connection gave {e:?}"),
            Ok(item) => panic!("round {round}: get through a cut connection returned {item:?}"),
        }
        proxy.set_mode(ProxyMode::Pass);
        check_item(&expect_ok!(A::get(&c, "k").await, "get after a cut"), "k", b"v", 0, round);

        // Idle connections cut behind the client's back: the next calls just work.
        proxy.close_all();
        check_item(&expect_ok!(A::get(&c, "k2").await, "get after close_all"), "k2", b"v2", 0, round);
        proxy.close_all();
        let multi = expect_ok!(A::get_multi(&c, &["k", "k2"]).await, "get_multi after close_all");
        assert_eq!(multi.len(), 2, "round {round}: get_multi after close_all: {multi:?}");
        proxy.close_all();
        expect_ok!(A::set(&c, &Item::new("k3", format!("r{round}"))).await, "set after close_all");
        assert_eq!(m.get_direct("k3"), Some(format!("r{round}").into_bytes()));
    }
}

/// A server that goes away and comes back (same port, empty) is used again without the caller
/// doing anything: no error for a call made after it came back.
pub async fn recovers_after_server_restart<A: Adapter>() {
    let mut m = Memcached::start();
    let c = client::<A>(ClientConfig::new([m.addr()]).timeout(Duration::from_secs(1)));
    for round in 0..2 {
        expect_ok!(A::set(&c, &Item::new("k", "v")).await, "round {round}: set");
        check_item(&expect_ok!(A::get(&c, "k").await, "get"), "k", b"v", 0, round);

        // Restarted behind the client's back: the pooled connection is dead.
        m.restart();
        expect_err!(
            A::get(&c, "k").await,
            Error::CacheMiss,
            "round {round}: get from the restarted (empty) server"
        );
        expect_ok!(A::set(&c, &Item::new("k", "v2")).await, "set after the restart");
        assert_eq!(m.get_direct("k").as_deref(), Some(&b"v2"[..]));

        // Down: calls fail with a connection error; back up: calls work.
        m.stop();
        match A::get(&c, "k").await {
            Err(e) => {
                assert!(e.is_connection_broken(), "round {round}: get from a stopped server gave {e:?}")
            }
            Ok(item) => panic!("round {round}: get from a stopped server returned {item:?}"),
        }
        m.restart();
        expect_err!(A::get(&c, "k").await, Error::CacheMiss, "round {round}: get after the server came back");
    }
}

/// Replies dribbled one byte per write still decode correctly: single and multi gets, a 100 KB
/// value, counters, misses, stats.
pub async fn dribbled_replies_are_correct<A: Adapter>() {
    let m = Memcached::start();
    let proxy = Proxy::start(&m.addr());
    let c = client::<A>(ClientConfig::new([proxy.addr()]).timeout(Duration::from_secs(30)));
    proxy.set_mode(ProxyMode::Dribble);

    for k in ["a", "b", "c"] {
        expect_ok!(A::set(&c, &Item::new(k, format!("value {k}\r\nEND\r\n")).with_flags(7)).await, "set {k}");
    }
    check_item(&expect_ok!(A::get(&c, "a").await, "get"), "a", b"value a\r\nEND\r\n", 7, "dribbled get");
    expect_err!(A::get(&c, "none").await, Error::CacheMiss, "dribbled miss");
    let multi = expect_ok!(A::get_multi(&c, &["a", "none", "b", "c"]).await, "dribbled get_multi");
    assert_eq!(multi.len(), 3, "dribbled get_multi: {:?}", multi.keys());
    for k in ["a", "b", "c"] {
        check_item(&multi[k], k, format!("value {k}\r\nEND\r\n").as_bytes(), 7, "dribbled get_multi");
    }

    let big = Bytes::from(XorShift::new(7).bytes(100 * 1024));
    expect_ok!(A::set(&c, &Item::new("big", big.clone())).await, "set 100 KB");
    let before = proxy.writes_to_clients();
    check_item(
        &expect_ok!(A::get(&c, "big").await, "dribbled 100 KB get"),
        "big",
        &big,
        0,
        "dribbled big value",
    );
    assert!(
        proxy.writes_to_clients() - before > 100 * 1024,
        "the 100 KB reply was really dribbled ({} writes)",
        proxy.writes_to_clients() - before
    );

    expect_ok!(A::set(&c, &Item::new("n", "5")).await, "set n");
    assert_eq!(expect_ok!(A::increment(&c, "n", 10).await, "dribbled incr"), 15);
    expect_err!(A::delete(&c, "none").await, Error::CacheMiss, "dribbled delete miss");
    expect_err!(A::add(&c, &Item::new("a", "x")).await, Error::NotStored, "dribbled NOT_STORED");
    let stats = expect_ok!(A::stats(&c).await, "dribbled stats");
    assert!(stats[&proxy.addr()].contains_key("pid"), "dribbled stats: {stats:?}");
    assert_eq!(proxy.writes_to_clients(), proxy.bytes_to_clients(), "every reply byte was its own write");
}

/// A reply delayed past the timeout is never delivered to a later call: each round times out on
/// one key, then reads another key and must get that key's own value.
pub async fn late_reply_never_reaches_a_later_call<A: Adapter>() {
    let m = Memcached::start();
    let proxy = Proxy::start(&m.addr());
    // Long enough that a call which should succeed does so even on a loaded machine.
    let timeout = Duration::from_millis(750);
    let c = client::<A>(ClientConfig::new([proxy.addr()]).timeout(timeout));
    let rounds = 4;
    let items: Vec<(String, Vec<u8>)> = (0..rounds)
        .flat_map(|i| {
            [
                (format!("late:{i}"), format!("LATE-{i}").into_bytes()),
                (format!("next:{i}"), format!("NEXT-{i}").into_bytes()),
            ]
        })
        .collect();
    store_direct(&m, &items);

    for i in 0..rounds {
        proxy.set_mode(ProxyMode::DelayReplies(timeout * 3));
        let late = format!("late:{i}");
        let res = if i % 2 == 0 {
            A::get(&c, &late).await.map(drop)
        } else {
            A::get_multi(&c, &[late.as_str()]).await.map(drop)
        };
        expect_err!(res, Error::Timeout, "round {i}: a reply delayed 3 x the timeout");
        proxy.set_mode(ProxyMode::Pass);

        let next = format!("next:{i}");
        let got = expect_ok!(A::get(&c, &next).await, "round {i}: get right after a timeout");
        check_item(&got, &next, format!("NEXT-{i}").as_bytes(), 0, format!("round {i}: late reply check"));
        let multi =
            expect_ok!(A::get_multi(&c, &[next.as_str(), late.as_str()]).await, "round {i}: get_multi");
        assert_eq!(multi.len(), 2, "round {i}: {multi:?}");
        check_item(&multi[&next], &next, format!("NEXT-{i}").as_bytes(), 0, i);
        check_item(&multi[&late], &late, format!("LATE-{i}").as_bytes(), 0, i);
        expect_err!(
            A::increment(&c, "counter", 1).await,
            Error::CacheMiss,
            "round {i}: incr of a missing counter is a miss, not someone else's answer"
        );
    }
}

/// A stalled server does not hold up calls to a healthy one: while workers wait on the stalled
/// server, calls to the healthy server keep answering promptly.
pub async fn stalled_server_does_not_block_others<A: Adapter>() {
    let m = Memcached::start();
    let stall = FaultServer::start(Fault::Stall);
    let timeout = Duration::from_secs(1);
    let addrs = vec![m.addr(), stall.addr()];
    let c = client::<A>(ClientConfig::new(addrs.clone()).timeout(timeout));
    let healthy = super::util::keys_owned_by(&addrs, 0, "ok:", 10);
    let stuck = super::util::keys_owned_by(&addrs, 1, "stuck:", 4);
    for k in &healthy {
        expect_ok!(A::set(&c, &Item::new(k.as_str(), format!("v-{k}"))).await, "set {k}");
    }
    let waiting: Vec<_> = stuck
        .iter()
        .map(|k| {
            let (c, k) = (c.clone(), k.clone());
            A::spawn(async move { A::get(&c, &k).await })
        })
        .collect();

    // Call the healthy server until the stalled one has requests, then some more: all prompt.
    let (mut after_stall, mut calls) = (0, 0);
    while after_stall < 20 {
        let k = &healthy[calls % healthy.len()];
        let (got, took) = timed(|| A::get(&c, k)).await;
        check_item(&expect_ok!(got, "get {k}"), k, format!("v-{k}").as_bytes(), 0, "healthy server");
        assert!(
            took < timeout / 2,
            "get from the healthy server took {took:?} while another server stalls (timeout {timeout:?})"
        );
        calls += 1;
        if stall.bytes_received() > 0 {
            after_stall += 1;
        }
        assert!(calls < 100_000, "the workers never reached the stalled server");
    }
    for w in waiting {
        expect_err!(w.await, Error::Timeout, "get from the stalled server");
    }
}
