//! A fleet of servers: a dead server fails fast and comes back, ketama ejection moves only the
//! dead server's keys, the server list changes under load, and a name's second address serves
//! when its first refuses.

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use memcache_proto::resolve::Resolver;
use memcache_proto::{Error, FailurePolicy, Item, Ketama, ServerList, ServerSelector};

use super::util::{closed_port_addr, eventually, keys_owned_by, settled_connections, yield_now};
use super::{Adapter, ClientConfig, client, timed};
use crate::fault::Proxy;
use crate::memcached::Memcached;

/// Lets `d` pass (what is tested is that time passed, not a synchronisation), yielding to
/// the executor meanwhile.
async fn pass_time(d: Duration) {
    let start = Instant::now();
    while start.elapsed() < d {
        yield_now().await;
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Which of `keys` `m` holds, asked with pipelined `get`s of 100 keys.
fn keys_held(m: &Memcached, keys: &[String]) -> BTreeSet<String> {
    let mut held = BTreeSet::new();
    for chunk in keys.chunks(100) {
        let reply = m.request(format!("get {}\r\n", chunk.join(" ")).as_bytes());
        let text = String::from_utf8_lossy(&reply);
        held.extend(
            text.lines().filter_map(|l| l.strip_prefix("VALUE ")?.split(' ').next().map(str::to_owned)),
        );
    }
    held
}

fn policy(retry_after: Duration, eject: bool) -> FailurePolicy {
    FailurePolicy { failure_limit: 3, retry_after, max_retry_after: retry_after * 4, eject }
}

/// Calls `get(key)` until the server is marked down; returns how many calls failed on the
/// network first.
async fn fail_until_down<A: Adapter>(c: &A::Client, key: &str, down: &str) -> usize {
    let mut failures = 0;
    loop {
        match A::get(c, key).await {
            Err(Error::ServerUnavailable { server, .. }) => {
                assert_eq!(server.to_string(), down, "the error names the down server");
                return failures;
            }
            Err(e) if e.is_transport_failure() => failures += 1,
            other => panic!("get {key} on a stopped server: expected a transport failure, got {other:?}"),
        }
        assert!(failures <= 3, "still not down after {failures} failures");
    }
}

/// Three servers, one stopped: after the failure limit, calls for its keys fail at once with
/// `ServerUnavailable` without a connection attempt (its proxy sees none), the others' keys
/// keep working, `get_multi_partial` reports it; restarted on the same port, it serves again
/// on the first call after `retry_after`.
pub async fn dead_server_fails_fast_and_is_probed_back<A: Adapter>() {
    let mut ms: Vec<Memcached> = (0..3).map(|_| Memcached::start()).collect();
    let proxy = Proxy::start(&ms[1].addr());
    let addrs = vec![ms[0].addr(), proxy.addr(), ms[2].addr()];
    let retry_after = Duration::from_millis(400);
    let config = ClientConfig::new(addrs.clone()).timeout(Duration::from_secs(1));
    let c = client::<A>(config.failure_policy(policy(retry_after, false)));
    let dead = keys_owned_by(&addrs, 1, "dead:", 3);
    let live: Vec<String> = [0, 2].iter().flat_map(|&i| keys_owned_by(&addrs, i, "live:", 3)).collect();
    for k in dead.iter().chain(&live) {
        expect_ok!(A::set(&c, &Item::new(k.as_str(), "v")).await, "set {k}");
    }

    ms[1].stop();
    assert_eq!(fail_until_down::<A>(&c, &dead[0], &addrs[1]).await, 3, "down after exactly the limit");
    let connections = proxy.connections();
    let mut slowest = Duration::ZERO;
    for round in 0..10 {
        for k in &dead {
            let item = Item::new(k.as_str(), "w");
            let (res, took) = timed(|| A::set(&c, &item)).await;
            expect_err!(res, Error::ServerUnavailable { .. }, "round {round}: set {k} on the down server");
            slowest = slowest.max(took);
        }
        for k in &live {
            expect_ok!(A::get(&c, k).await, "round {round}: get {k} on a live server");
        }
    }
    let all: Vec<&str> = dead.iter().chain(&live).map(String::as_str).collect();
    let out = expect_ok!(A::get_multi_partial(&c, &all).await, "get_multi_partial");
    assert_eq!(out.items.len(), live.len(), "the live servers' items");
    assert_eq!(out.failed.len(), 1, "only the down server failed: {:?}", out.failed);
    assert!(matches!(out.failed[0].1, Error::ServerUnavailable { .. }), "{:?}", out.failed);
    assert_eq!(proxy.connections(), connections, "no connection was attempted to the down server");
    eprintln!("{}: slowest ServerUnavailable call {slowest:?}", A::NAME);

    ms[1].restart();
    pass_time(retry_after).await;
    expect_ok!(A::set(&c, &Item::new(dead[0].as_str(), "back")).await, "the first call after retry_after");
    assert!(proxy.connections() > connections, "the probe reached the server");
    for k in &dead {
        expect_ok!(A::set(&c, &Item::new(k.as_str(), "back")).await, "set {k} after the server came back");
    }
}

/// Ketama with `eject: true`, one of 4 servers down: over 10,000 keys, every key of a live
/// server stays where it was and the down server's keys go to live servers; when it comes
/// back, every key is on its home server again.
pub async fn ketama_ejection_moves_only_the_down_servers_keys<A: Adapter>() {
    let mut ms: Vec<Memcached> = (0..4).map(|_| Memcached::start()).collect();
    let addrs: Vec<String> = ms.iter().map(Memcached::addr).collect();
    let ring = Arc::new(Ketama::libmemcached(addrs.iter().map(|a| (a.as_str(), 1))).expect("ring"));
    let retry_after = Duration::from_millis(300);
    let config = ClientConfig::new(Vec::<String>::new()).selector(ring.clone());
    let c = client::<A>(config.failure_policy(policy(retry_after, true)));
    let keys: Vec<String> = (0..10_000).map(|i| format!("ring:{i}")).collect();
    let home: HashMap<&str, usize> = keys
        .iter()
        .map(|k| {
            let s = ring.pick_server(k.as_bytes()).expect("ring").to_string();
            (k.as_str(), addrs.iter().position(|a| *a == s).expect("a ring server"))
        })
        .collect();

    ms[3].stop();
    let of_down = keys.iter().find(|k| home[k.as_str()] == 3).expect("a key of server 3");
    assert_eq!(fail_until_down_ejecting::<A>(&c, of_down).await, 3);
    let mut probes = 0;
    for k in &keys {
        match A::set(&c, &Item::new(k.as_str(), "v")).await {
            Ok(()) => {}
            // Every `retry_after` one call probes the stopped server and fails: the next call
            // for the key is ejected again.
            Err(e) if e.is_transport_failure() && home[k.as_str()] == 3 && probes < 100 => {
                probes += 1;
                expect_ok!(A::set(&c, &Item::new(k.as_str(), "v")).await, "set {k} after a failed probe");
            }
            other => panic!("set {k} with server 3 down: {other:?}"),
        }
    }
    let mut moved = 0;
    for (i, m) in ms.iter().enumerate().take(3) {
        for k in keys_held(m, &keys) {
            match home[k.as_str()] {
                3 => moved += 1,
                h => assert_eq!(h, i, "{k} of live server {h} moved to {i}"),
            }
        }
    }
    let expected = keys.iter().filter(|k| home[k.as_str()] == 3).count();
    assert_eq!(moved, expected, "every key of the down server went to a live one");
    eprintln!("{}: server 3 down: {moved} of 10000 keys moved, all of them its own", A::NAME);

    // Failed probes while it was down have stretched the wait (up to `max_retry_after`):
    // calls for its keys are ejected until the next probe finds it back.
    ms[3].restart();
    let deadline = Instant::now() + retry_after * 8;
    while ms[3].get_direct(of_down).is_none() {
        assert!(Instant::now() < deadline, "server 3 was never probed back");
        expect_ok!(
            A::set(&c, &Item::new(of_down.as_str(), "probe")).await,
            "set {of_down} (ejected or probe)"
        );
        pass_time(Duration::from_millis(10)).await;
    }
    expect_ok!(A::flush_all(&c).await, "flush_all");
    for k in &keys {
        expect_ok!(A::set(&c, &Item::new(k.as_str(), "v")).await, "set {k} with all servers up");
    }
    for (i, m) in ms.iter().enumerate() {
        let held = keys_held(m, &keys);
        let own = keys.iter().filter(|k| home[k.as_str()] == i).count();
        assert_eq!(held.len(), own, "server {i} holds exactly its own keys again");
        assert!(held.iter().all(|k| home[k.as_str()] == i));
    }
}

/// Like [`fail_until_down`], for a client that ejects: the call after the limit goes to the
/// next server on the ring and succeeds.
async fn fail_until_down_ejecting<A: Adapter>(c: &A::Client, key: &str) -> usize {
    let mut failures = 0;
    loop {
        match A::set(c, &Item::new(key, "v")).await {
            Ok(()) => return failures,
            Err(e) if e.is_transport_failure() => failures += 1,
            other => panic!("set {key} on a stopped server: expected a transport failure, got {other:?}"),
        }
        assert!(failures <= 3, "still not ejected after {failures} failures");
    }
}

/// `set_servers` while 8 workers call: no call fails, keys follow the new list, and the
/// connections to the server that left are closed once its calls are done.
pub async fn set_servers_under_load_fails_no_call<A: Adapter>() {
    let ms: Vec<Memcached> = (0..3).map(|_| Memcached::start()).collect();
    let addrs: Vec<String> = ms.iter().map(Memcached::addr).collect();
    let idle = settled_connections(&ms[2]).await;
    let c = client::<A>(ClientConfig::new(addrs.clone()));
    let calls = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = (0..8)
        .map(|w| {
            let (c, calls) = (c.clone(), calls.clone());
            A::spawn(async move {
                for i in 0..400 {
                    let key = format!("load:{w}:{}", i % 50);
                    expect_ok!(A::set(&c, &Item::new(key.as_str(), "v")).await, "worker {w}: set {key}");
                    match A::get(&c, &key).await {
                        Ok(_) | Err(Error::CacheMiss) => {}
                        other => panic!("worker {w}: get {key}: {other:?}"),
                    }
                    calls.fetch_add(1, Ordering::SeqCst);
                }
            })
        })
        .collect();
    assert!(
        eventually(Duration::from_secs(30), || calls.load(Ordering::SeqCst) >= 200).await,
        "workers started"
    );
    let in_use = ms[2].stat_u64("curr_connections");
    assert!(in_use > idle, "the third server is in use ({in_use} connections, {idle} when idle)");
    expect_ok!(A::set_servers(&c, &addrs[..2]).await, "set_servers under load");
    let at_change = calls.load(Ordering::SeqCst);
    for w in workers {
        w.await;
    }
    assert!(calls.load(Ordering::SeqCst) > at_change, "calls ran after the change");
    let closed = eventually(Duration::from_secs(5), || ms[2].stat_u64("curr_connections") <= idle).await;
    assert!(closed, "connections to the removed server were closed");
    expect_ok!(A::set(&c, &Item::new("after", "v")).await, "set after the change");
    assert_eq!(ms[2].get_direct("after"), None, "the removed server gets no more keys");
    assert!(A::set_servers(&c, &[addrs[0].as_str(), "bad host:::"]).await.is_err(), "a bad name refuses");
    expect_ok!(A::get(&c, "after").await, "a refused change changed nothing");
}

/// The names a test resolver answers, changed by the test.
type Names = Arc<Mutex<HashMap<String, Vec<SocketAddr>>>>;

/// A resolver answering from a table the test changes.
fn table(entries: &[(&str, Vec<SocketAddr>)]) -> (Resolver, Names) {
    let map = Arc::new(Mutex::new(entries.iter().map(|(n, a)| (n.to_string(), a.clone())).collect()));
    let lookup = Arc::clone(&map);
    let resolver: Resolver = Arc::new(move |name: &str| {
        let map: std::sync::MutexGuard<'_, HashMap<String, Vec<SocketAddr>>> =
            lookup.lock().unwrap_or_else(|p| p.into_inner());
        map.get(name)
            .cloned()
            .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, "no such name"))
    });
    (resolver, map)
}

fn socket(addr: &str) -> SocketAddr {
    addr.parse().expect("a loopback address")
}

/// A name resolving to two addresses, the first refusing connections: calls succeed through
/// the second. The name is resolved by a test resolver (this machine's DNS is not under the
/// test's control); the connections, the refusal and the fallback are real. Then the name
/// moves to another server: `refresh_servers` follows it, and a name that stops resolving
/// keeps its last good addresses and reports the error.
pub async fn a_names_second_address_serves_when_the_first_refuses<A: Adapter>() {
    let (a, b) = (Memcached::start(), Memcached::start());
    let refused = closed_port_addr();
    let (resolver, names) = table(&[("cache:11211", vec![socket(&refused), socket(&a.addr())])]);
    let list = ServerList::with_resolver(resolver);
    list.set_servers(["cache:11211"]).expect("the test name resolves");
    let c = client::<A>(ClientConfig::new(Vec::<String>::new()).selector(Arc::new(list)));
    expect_ok!(A::set(&c, &Item::new("k", "on a")).await, "set through the second address");
    assert_eq!(a.get_direct("k"), Some(b"on a".to_vec()), "the second address served");

    names.lock().unwrap_or_else(|p| p.into_inner()).insert("cache:11211".into(), vec![socket(&b.addr())]);
    expect_ok!(A::refresh_servers(&c).await, "refresh_servers");
    expect_ok!(A::set(&c, &Item::new("k", "on b")).await, "set after the name moved");
    assert_eq!(b.get_direct("k"), Some(b"on b".to_vec()), "the refreshed address served");

    names.lock().unwrap_or_else(|p| p.into_inner()).clear();
    expect_err!(A::refresh_servers(&c).await, Error::BadAddress(_), "a name that stops resolving");
    expect_ok!(A::get(&c, "k").await, "the last good address still serves");
}

/// With `resolve_every`, a name that moves is followed without any call to refresh.
pub async fn resolve_every_follows_a_name_that_moves<A: Adapter>() {
    let (a, b) = (Memcached::start(), Memcached::start());
    let (resolver, names) = table(&[("cache:11211", vec![socket(&a.addr())])]);
    let list = ServerList::with_resolver(resolver);
    list.set_servers(["cache:11211"]).expect("the test name resolves");
    let config = ClientConfig::new(Vec::<String>::new()).selector(Arc::new(list));
    let c = client::<A>(config.resolve_every(Duration::from_millis(20)));
    expect_ok!(A::set(&c, &Item::new("k", "on a")).await, "set on a");
    names.lock().unwrap_or_else(|p| p.into_inner()).insert("cache:11211".into(), vec![socket(&b.addr())]);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        expect_ok!(A::set(&c, &Item::new("k", "moved")).await, "set while the name moves");
        if b.get_direct("k").is_some() {
            break;
        }
        assert!(Instant::now() < deadline, "the client never followed the name to its new address");
        pass_time(Duration::from_millis(5)).await;
    }
}
