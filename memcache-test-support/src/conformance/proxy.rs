//! Behind a proxy: twemproxy (`nutcracker`) in front of three memcached servers, given to the
//! client as its one address. Every call the proxy supports works through it, multi-key replies
//! that it reorders are matched by key, concurrent single-key gets (merged on the wire by the
//! async clients) each get their own value, and a call the proxy refuses by closing the
//! connection fails cleanly without hurting the next call. A fake server that reverses every
//! multi-key reply, and adds a key nobody asked for on demand, pins the matching rule down.

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use memcache_proto::{Error, Item};

use super::util::XorShift;
use super::{Adapter, ClientConfig, Res, check_item, client, timed};
use crate::fault::{Fault, FaultServer};
use crate::twemproxy::Twemproxy;

/// Call timeout through the proxy: a refused call must fail within it.
const TIMEOUT: Duration = Duration::from_secs(2);

fn value_of(key: &str) -> Bytes {
    Bytes::from(format!("{key}={}", key.len() * 7))
}

/// Stores `keys` through the client (the proxy spreads them over its servers).
async fn store_all<A: Adapter>(c: &A::Client, keys: &[String]) {
    for k in keys {
        expect_ok!(
            A::set(c, &Item::new(k.as_str(), value_of(k))).await,
            "{}: set {k} through twemproxy",
            A::NAME
        );
    }
}

/// Every call twemproxy forwards: the store verbs, CAS, counters, touch, delete, `version`
/// (ping).
pub async fn twemproxy_supports_every_keyed_call<A: Adapter>() {
    let proxy = Twemproxy::start(3);
    let c = client::<A>(ClientConfig::new([proxy.addr()]).timeout(TIMEOUT));
    let ctx = format!("{} through twemproxy", A::NAME);
    expect_ok!(A::ping(&c).await, "{ctx}: ping");
    let versions = expect_ok!(A::version(&c).await, "{ctx}: version");
    assert!(
        versions.len() == 1 && versions.get(&proxy.addr()).is_some_and(|v| v.starts_with("1.")),
        "{ctx}: version: one memcached version under the proxy's address, got {versions:?}"
    );
    expect_ok!(A::set(&c, &Item::new("p:k", "v1").with_flags(7)).await, "{ctx}: set");
    let item = expect_ok!(A::get(&c, "p:k").await, "{ctx}: get");
    check_item(&item, "p:k", b"v1", 7, &ctx);
    expect_err!(A::get(&c, "p:missing").await, Error::CacheMiss, "{ctx}: get of a missing key");

    expect_err!(A::add(&c, &Item::new("p:k", "x")).await, Error::NotStored, "{ctx}: add of a present key");
    expect_ok!(A::add(&c, &Item::new("p:new", "n")).await, "{ctx}: add");
    expect_err!(
        A::replace(&c, &Item::new("p:none", "x")).await,
        Error::NotStored,
        "{ctx}: replace of a missing key"
    );
    expect_ok!(A::replace(&c, &Item::new("p:k", "v2")).await, "{ctx}: replace");
    expect_ok!(A::append(&c, &Item::new("p:k", ">")).await, "{ctx}: append");
    expect_ok!(A::prepend(&c, &Item::new("p:k", "<")).await, "{ctx}: prepend");
    let item = expect_ok!(A::get(&c, "p:k").await, "{ctx}: get after append/prepend");
    check_item(&item, "p:k", b"<v2>", 0, &ctx);

    let mut swap = item.clone();
    swap.value = Bytes::from_static(b"swapped");
    expect_ok!(A::compare_and_swap(&c, &swap).await, "{ctx}: cas with a fresh token");
    expect_err!(A::compare_and_swap(&c, &swap).await, Error::CasConflict, "{ctx}: cas with a stale token");
    let multi = expect_ok!(A::get_multi(&c, &["p:k", "p:new", "p:none"]).await, "{ctx}: get_multi");
    assert_eq!(multi.len(), 2, "{ctx}: get_multi found {:?}", multi.keys());
    check_item(&multi["p:k"], "p:k", b"swapped", 0, &ctx);

    expect_ok!(A::set(&c, &Item::new("p:n", "40")).await, "{ctx}: set counter");
    assert_eq!(expect_ok!(A::increment(&c, "p:n", 5).await, "{ctx}: incr"), 45);
    assert_eq!(expect_ok!(A::decrement(&c, "p:n", 50).await, "{ctx}: decr"), 0, "decr stops at 0");
    expect_err!(A::increment(&c, "p:none", 1).await, Error::CacheMiss, "{ctx}: incr of a missing key");
    expect_err!(A::increment(&c, "p:k", 1).await, Error::Client(_), "{ctx}: incr of a non-number");

    expect_ok!(A::touch(&c, "p:k", 3600).await, "{ctx}: touch");
    expect_err!(A::touch(&c, "p:none", 10).await, Error::CacheMiss, "{ctx}: touch of a missing key");
    expect_ok!(A::delete(&c, "p:k").await, "{ctx}: delete");
    expect_err!(A::delete(&c, "p:k").await, Error::CacheMiss, "{ctx}: delete of a deleted key");
    expect_err!(A::get(&c, "p:k").await, Error::CacheMiss, "{ctx}: get after delete");
}

/// A 200-key `get_multi` whose keys live on every server behind the proxy, mixed with misses:
/// twemproxy then answers in another order than asked, and every value still reaches its key.
pub async fn twemproxy_get_multi_of_200_keys_spans_every_backend<A: Adapter>() {
    let proxy = Twemproxy::start(3);
    let c = client::<A>(ClientConfig::new([proxy.addr()]).timeout(TIMEOUT));
    let keys: Vec<String> = (0..200).map(|i| format!("span:{i:06}")).collect();
    store_all::<A>(&c, &keys).await;
    for (i, m) in proxy.servers().iter().enumerate() {
        let held = keys.iter().filter(|k| m.get_direct(k).is_some()).count();
        assert!(held > 0, "backend {i} of twemproxy holds none of the 200 keys");
    }
    let mut rng = XorShift::new(19);
    for round in 0..4 {
        let mut asked: Vec<String> = keys.clone();
        asked.extend((0..60).map(|i| format!("span:miss:{round}:{i}")));
        for i in (1..asked.len()).rev() {
            asked.swap(i, rng.below(i as u64 + 1) as usize);
        }
        let asked: Vec<&str> = asked.iter().map(String::as_str).collect();
        let ctx = format!("{} through twemproxy, round {round}", A::NAME);
        let got = expect_ok!(A::get_multi(&c, &asked).await, "{ctx}: get_multi of 260 keys");
        assert_eq!(got.len(), keys.len(), "{ctx}: expected exactly the 200 stored keys back");
        for k in &keys {
            let item = got.get(k).unwrap_or_else(|| panic!("{ctx}: {k} missing from the reply"));
            check_item(item, k, &value_of(k), 0, &ctx);
        }
    }
}

/// 32 concurrent tasks doing single-key gets through the proxy (merged into multi-key gets on
/// the wire by the async clients): every value is checked against its key.
pub async fn twemproxy_32_concurrent_getters_get_their_own_values<A: Adapter>() {
    let proxy = Twemproxy::start(3);
    let c = client::<A>(ClientConfig::new([proxy.addr()]).timeout(TIMEOUT));
    let keys: Vec<String> = (0..64).map(|i| format!("conc:{i}")).collect();
    store_all::<A>(&c, &keys).await;
    let workers: Vec<_> = (0..32u64)
        .map(|w| {
            let c = c.clone();
            A::spawn(async move {
                let mut rng = XorShift::new(w);
                for op in 0..60 {
                    let i = rng.below(80) as usize;
                    let key = format!("conc:{i}");
                    let ctx = format!("{} through twemproxy: worker {w} op {op}", A::NAME);
                    match A::get(&c, &key).await {
                        Ok(item) if i < 64 => check_item(&item, &key, &value_of(&key), 0, &ctx),
                        Err(Error::CacheMiss) if i >= 64 => {}
                        other => panic!("{ctx}: get {key}: unexpected {other:?}"),
                    }
                }
            })
        })
        .collect();
    for w in workers {
        w.await;
    }
}

/// Calls twemproxy refuses by closing the connection (`flush_all`, `stats`, `gat`,
/// `delete <key> <time>`) fail within the call's timeout with an error that says the
/// connection is gone, and the next call on the same client succeeds.
pub async fn twemproxy_refused_calls_fail_fast_and_the_client_recovers<A: Adapter>() {
    let proxy = Twemproxy::start(2);
    let c = client::<A>(ClientConfig::new([proxy.addr()]).timeout(TIMEOUT));
    expect_ok!(A::set(&c, &Item::new("r:k", "v")).await, "{}: set through twemproxy", A::NAME);
    for which in 0..4 {
        let (name, res, took) = refused_call::<A>(&c, which).await;
        let ctx = format!("{} through twemproxy: {name}", A::NAME);
        match res {
            Err(Error::NoStats) if name == "stats" => {}
            Err(e) => assert!(e.is_connection_broken(), "{ctx}: {e:?} must say the connection is gone"),
            Ok(()) => panic!("{ctx}: twemproxy refuses this call, yet it succeeded"),
        }
        assert!(took < TIMEOUT, "{ctx}: took {took:?}, more than the call's timeout");
        let item = expect_ok!(A::get(&c, "r:k").await, "{ctx}: the next call");
        check_item(&item, "r:k", b"v", 0, &ctx);
    }
}

async fn refused_call<A: Adapter>(c: &A::Client, which: usize) -> (&'static str, Res<()>, Duration) {
    let (name, (res, took)) = match which {
        0 => ("flush_all", timed(|| A::flush_all(c)).await),
        1 => ("stats", timed(|| async { A::stats(c).await.map(drop) }).await),
        2 => ("get_and_touch", timed(|| async { A::get_and_touch(c, "r:k", 60).await.map(drop) }).await),
        _ => ("delete_lock", timed(|| A::delete_lock(c, "r:k", 5)).await),
    };
    (name, res, took)
}

/// Multi-key replies in reverse order are matched by key (get_multi, and concurrent gets that
/// the async clients merge); a value for a key nobody asked for is a protocol error that closes
/// the connection, and the next call opens a fresh one and succeeds.
pub async fn multi_key_replies_in_any_order<A: Adapter>() {
    let server = FaultServer::start(Fault::ReversedValues);
    let c = client::<A>(ClientConfig::new([server.addr()]).timeout(TIMEOUT).max_conns(1));
    let ctx = format!("{}: reversed replies", A::NAME);
    let got = expect_ok!(A::get_multi(&c, &["a", "b", "miss1", "c", "d"]).await, "{ctx}: get_multi");
    let expected: HashMap<&str, &str> = [("a", "a"), ("b", "b"), ("c", "c"), ("d", "d")].into();
    assert_eq!(got.len(), expected.len(), "{ctx}: got {:?}", got.keys());
    for (k, v) in expected {
        check_item(&got[k], k, v.as_bytes(), 0, &ctx);
    }
    let workers: Vec<_> = (0..32)
        .map(|w| {
            let c = c.clone();
            A::spawn(async move {
                for op in 0..10 {
                    let key = format!("w{w}:{op}");
                    let item = expect_ok!(A::get(&c, &key).await, "reversed replies: worker {w} get {key}");
                    check_item(&item, &key, key.as_bytes(), 0, "reversed replies");
                }
            })
        })
        .collect();
    for w in workers {
        w.await;
    }

    let before = server.connections();
    let res = A::get_multi(&c, &["a", "stray1"]).await;
    match res {
        Err(e @ Error::Protocol(_)) => assert!(e.is_connection_broken(), "{ctx}: {e:?}"),
        other => panic!("{ctx}: a value for a key not requested: expected Err(Protocol), got {other:?}"),
    }
    let got = expect_ok!(A::get_multi(&c, &["a", "b"]).await, "{ctx}: the call after the desync");
    assert_eq!(got.len(), 2, "{ctx}: got {:?}", got.keys());
    assert_eq!(server.connections(), before + 1, "{ctx}: the desynced connection must not be reused");
}
