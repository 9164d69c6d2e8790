//! Several servers: gomemcache's key hashing, calls that visit every server, stats, close, and
//! `get_multi_partial` with a dead server.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use memcache_proto::{Error, Item};

use super::util::{closed_port_addr, eventually, keys_owned_by, owner, settled_connections};
use super::{Adapter, ClientConfig, check_item, client, timed};
use crate::fault::{Fault, FaultServer, Proxy, ProxyMode};
use crate::memcached::Memcached;

fn start_servers(n: usize) -> (Vec<Memcached>, Vec<String>) {
    let servers: Vec<Memcached> = (0..n).map(|_| Memcached::start()).collect();
    let addrs = servers.iter().map(Memcached::addr).collect();
    (servers, addrs)
}

/// Over 3 servers, every key lands on (and only on) the server gomemcache's `ServerList` picks,
/// and `get_multi` gathers them all back.
pub async fn get_multi_across_three_servers_uses_gomemcache_hashing<A: Adapter>() {
    let (servers, addrs) = start_servers(3);
    let c = client::<A>(ClientConfig::new(addrs.clone()));
    let keys: Vec<String> = (0..90).map(|i| format!("spread:{i}")).collect();
    for (i, k) in keys.iter().enumerate() {
        expect_ok!(
            A::set(&c, &Item::new(k.as_str(), format!("value of {k}")).with_flags(i as u32)).await,
            "set {k}"
        );
    }
    let mut per_server = [0usize; 3];
    for k in &keys {
        let home = owner(&addrs, k);
        per_server[home] += 1;
        for (i, server) in servers.iter().enumerate() {
            let held = server.get_direct(k);
            if i == home {
                assert_eq!(
                    held,
                    Some(format!("value of {k}").into_bytes()),
                    "{k} must be on {} (gomemcache)",
                    addrs[i]
                );
            } else {
                assert_eq!(held, None, "{k} belongs on {}, but {} holds it too", addrs[home], addrs[i]);
            }
        }
    }
    assert!(per_server.iter().all(|&n| n > 0), "keys spread over all servers: {per_server:?}");

    let mut asked: Vec<&str> = keys.iter().map(String::as_str).collect();
    asked.extend(["missing:1", "missing:2", "missing:3"]);
    let got = expect_ok!(A::get_multi(&c, &asked).await, "get_multi over 3 servers");
    assert_eq!(got.len(), keys.len(), "get_multi over 3 servers found {} of {} keys", got.len(), keys.len());
    for (i, k) in keys.iter().enumerate() {
        let item = got.get(k).unwrap_or_else(|| panic!("get_multi lost {k}"));
        check_item(item, k, format!("value of {k}").as_bytes(), i as u32, "get_multi over 3 servers");
    }

    // Keyed calls go to the owner too: delete every third key and check the owners directly.
    for k in keys.iter().step_by(3) {
        expect_ok!(A::delete(&c, k).await, "delete {k}");
    }
    for (i, k) in keys.iter().enumerate() {
        let held = servers[owner(&addrs, k)].get_direct(k).is_some();
        assert_eq!(held, i % 3 != 0, "{k} after deleting every third key");
    }
}

/// `flush_all` empties every server; with one server down it reports an error.
pub async fn flush_all_reaches_every_server<A: Adapter>() {
    let (servers, addrs) = start_servers(3);
    let c = client::<A>(ClientConfig::new(addrs.clone()));
    let keys: Vec<String> = (0..30).map(|i| format!("flush:{i}")).collect();
    for k in &keys {
        expect_ok!(A::set(&c, &Item::new(k.as_str(), "v")).await, "set {k}");
    }
    let homes: BTreeSet<usize> = keys.iter().map(|k| owner(&addrs, k)).collect();
    assert_eq!(homes.len(), 3, "the keys cover all servers");

    expect_ok!(A::flush_all(&c).await, "flush_all");
    for k in &keys {
        for (i, s) in servers.iter().enumerate() {
            assert_eq!(s.get_direct(k), None, "{k} survived flush_all on {}", addrs[i]);
        }
        expect_err!(A::get(&c, k).await, Error::CacheMiss, "get {k} after flush_all");
    }
    for (i, s) in servers.iter().enumerate() {
        assert_eq!(s.stat_u64("cmd_flush"), 1, "flush_all reached {} once", addrs[i]);
    }
    expect_ok!(A::set(&c, &Item::new("after", "v")).await, "set after flush_all");
    check_item(&expect_ok!(A::get(&c, "after").await, "get"), "after", b"v", 0, "after flush_all");

    let dead = closed_port_addr();
    let c2 = client::<A>(ClientConfig::new([addrs[0].clone(), dead.clone()]).timeout(Duration::from_secs(1)));
    let res = A::flush_all(&c2).await;
    assert!(res.is_err(), "flush_all with {dead} down must fail, got {res:?}");
    assert_eq!(servers[0].stat_u64("cmd_flush"), 2, "the live server was still flushed");
}

/// `ping` asks every server: fine when all answer, an error when any does not.
pub async fn ping_reaches_every_server<A: Adapter>() {
    let (servers, addrs) = start_servers(2);
    let c = client::<A>(ClientConfig::new(addrs.clone()));
    expect_ok!(A::ping(&c).await, "ping of two live servers");

    let closing = FaultServer::start(Fault::CloseImmediately);
    for dead in [closed_port_addr(), closing.addr()] {
        for list in
            [vec![addrs[0].clone(), dead.clone()], vec![dead.clone(), addrs[1].clone()], vec![dead.clone()]]
        {
            let c = client::<A>(ClientConfig::new(list.clone()).timeout(Duration::from_secs(1)));
            match A::ping(&c).await {
                Err(e) => assert!(
                    e.is_connection_broken(),
                    "ping of {list:?}: a dead server is an IO error, got {e:?}"
                ),
                Ok(()) => panic!("ping of {list:?} succeeded although {dead} does not answer"),
            }
        }
    }
    assert!(closing.connections() > 0, "ping tried the closing server");
    drop(servers);
}

/// `version` asks every server and keys the answers by server address; a dead server fails it.
pub async fn version_of_every_server<A: Adapter>() {
    let (servers, addrs) = start_servers(2);
    let c = client::<A>(ClientConfig::new(addrs.clone()));
    let versions = expect_ok!(A::version(&c).await, "version of two live servers");
    let mut keys: Vec<&String> = versions.keys().collect();
    keys.sort();
    let mut expected: Vec<&String> = addrs.iter().collect();
    expected.sort();
    assert_eq!(keys, expected, "one version per configured server");
    for (server, v) in &versions {
        assert!(v.starts_with("1."), "{server} answered version {v:?}");
    }
    let c = client::<A>(
        ClientConfig::new([addrs[0].clone(), closed_port_addr()]).timeout(Duration::from_secs(1)),
    );
    expect_err!(A::version(&c).await, Error::Io(_) | Error::Timeout, "version with one dead server");
    drop(servers);
}

/// `stats` is keyed by server address (as configured), one entry per answering server;
/// `NoStats` when none answers.
pub async fn stats_keyed_by_server<A: Adapter>() {
    let (servers, addrs) = start_servers(2);
    for (i, s) in servers.iter().enumerate() {
        let items: Vec<(String, Vec<u8>)> =
            (0..3 + 2 * i).map(|j| (format!("s{j}"), b"x".to_vec())).collect();
        super::util::store_direct(s, &items);
    }
    let c = client::<A>(ClientConfig::new(addrs.clone()));
    let stats = expect_ok!(A::stats(&c).await, "stats of two servers");
    let keys: BTreeSet<&String> = stats.keys().collect();
    assert_eq!(keys, addrs.iter().collect(), "stats are keyed by the configured addresses");
    for (i, s) in servers.iter().enumerate() {
        let st = &stats[&addrs[i]];
        let pid = s.pid().expect("running").to_string();
        assert_eq!(st.get("pid"), Some(&pid), "stats of {} come from that server", addrs[i]);
        assert_eq!(st.get("curr_items").map(String::as_str), Some(format!("{}", 3 + 2 * i).as_str()));
        assert!(st.contains_key("version") && st.contains_key("total_connections"), "full stats: {st:?}");
    }

    let closing = FaultServer::start(Fault::CloseImmediately);
    let dead = closed_port_addr();
    let half =
        client::<A>(ClientConfig::new([addrs[0].clone(), dead.clone()]).timeout(Duration::from_secs(1)));
    let stats = expect_ok!(A::stats(&half).await, "stats with one server down");
    assert_eq!(stats.keys().collect::<Vec<_>>(), [&addrs[0]], "only the live server has stats");

    let none = client::<A>(ClientConfig::new([dead, closing.addr()]).timeout(Duration::from_secs(1)));
    expect_err!(A::stats(&none).await, Error::NoStats, "stats with every server down");
}

/// `close` closes the client's connections (the server sees them go) and later calls, on any
/// clone, fail with `Closed`.
pub async fn close_releases_connections<A: Adapter>() {
    let m = Memcached::start();
    let base = settled_connections(&m).await;
    let c = client::<A>(ClientConfig::new([m.addr()]));
    let clone = c.clone();
    for i in 0..10 {
        expect_ok!(A::set(&c, &Item::new(format!("k{i}"), "v")).await, "set");
        expect_ok!(A::get(&clone, &format!("k{i}")).await, "get");
    }
    let open = m.stat_u64("curr_connections");
    assert!(open > base, "the client holds a connection while idle ({open} vs {base} before)");

    A::close(&c).await;
    let released = eventually(Duration::from_secs(5), || m.stat_u64("curr_connections") <= base).await;
    let left = m.stat_u64("curr_connections").saturating_sub(base);
    assert!(released, "close() left {left} connection(s) open");
    expect_err!(A::get(&c, "k0").await, Error::Closed, "get after close");
    expect_err!(A::set(&clone, &Item::new("k0", "v")).await, Error::Closed, "set on a clone after close");
    expect_err!(A::get_multi(&clone, &["k0", "k1"]).await, Error::Closed, "get_multi after close");
    assert_eq!(m.get_direct("k0").as_deref(), Some(&b"v"[..]), "close is not flush");
}

/// `get_multi` asks all involved servers concurrently (or pipelined), never one after another:
/// with every server's replies held back, each of the 3 servers receives its request while no
/// server has answered yet. A client that waited for one server's reply before asking the next
/// would leave two servers unasked (its timeout is far longer than the wait), so the check does
/// not depend on how fast the machine is.
pub async fn get_multi_asks_servers_concurrently<A: Adapter>() {
    let (servers, _) = start_servers(3);
    let proxies: Vec<Proxy> = servers.iter().map(|s| Proxy::start(&s.addr())).collect();
    let addrs: Vec<String> = proxies.iter().map(Proxy::addr).collect();
    let keys: Vec<String> = (0..3).flat_map(|i| keys_owned_by(&addrs, i, "conc:", 3)).collect();
    let c = client::<A>(ClientConfig::new(addrs.clone()).timeout(Duration::from_secs(60)));
    for k in &keys {
        expect_ok!(A::set(&c, &Item::new(k.as_str(), format!("v-{k}"))).await, "set {k}");
    }
    for round in 0..2 {
        let before: Vec<usize> = proxies.iter().map(Proxy::bytes_from_clients).collect();
        for p in &proxies {
            p.set_mode(ProxyMode::Stall);
        }
        let call = {
            let (c, keys) = (c.clone(), keys.clone());
            A::spawn(async move {
                let asked: Vec<&str> = keys.iter().map(String::as_str).collect();
                A::get_multi(&c, &asked).await
            })
        };
        let all_asked = eventually(Duration::from_secs(10), || {
            proxies.iter().zip(&before).all(|(p, &b)| p.bytes_from_clients() > b)
        })
        .await;
        let asked: Vec<usize> =
            proxies.iter().zip(&before).map(|(p, &b)| p.bytes_from_clients() - b).collect();
        for p in &proxies {
            p.set_mode(ProxyMode::Pass);
        }
        let got = expect_ok!(call.await, "round {round}: get_multi over 3 stalled servers");
        assert!(
            all_asked,
            "round {round}: bytes each server received while none had answered: {asked:?}; servers asked one after another?"
        );
        assert_eq!(got.len(), keys.len(), "round {round}: {:?}", got.keys());
        for k in &keys {
            check_item(&got[k], k, format!("v-{k}").as_bytes(), 0, "concurrent get_multi");
        }
    }
}

/// One healthy and one dead server: `get_multi_partial` returns the healthy server's items and
/// names the dead one in `failed`; plain `get_multi` fails; a stalled server costs the timeout,
/// not the healthy results.
pub async fn get_multi_partial_keeps_healthy_results<A: Adapter>() {
    let m = Memcached::start();
    let timeout = Duration::from_millis(500);
    for fault in [Fault::CloseImmediately, Fault::Stall] {
        let bad = FaultServer::start(fault);
        let addrs = vec![m.addr(), bad.addr()];
        let c = client::<A>(ClientConfig::new(addrs.clone()).timeout(timeout));
        let live = keys_owned_by(&addrs, 0, "live:", 5);
        let lost = keys_owned_by(&addrs, 1, "lost:", 5);
        let values: HashMap<&str, String> = live.iter().map(|k| (k.as_str(), format!("v-{k}"))).collect();
        for k in &live {
            expect_ok!(A::set(&c, &Item::new(k.as_str(), values[k.as_str()].clone())).await, "set {k}");
        }
        let mut all: Vec<&str> = Vec::new();
        for (a, b) in live.iter().zip(&lost) {
            all.extend([a.as_str(), b.as_str()]);
        }

        let (out, took) = timed(|| A::get_multi_partial(&c, &all)).await;
        let out = expect_ok!(out, "{fault:?}: get_multi_partial");
        assert_eq!(
            out.items.len(),
            live.len(),
            "{fault:?}: the healthy server's items: {:?}",
            out.items.keys()
        );
        for (k, v) in &values {
            check_item(&out.items[*k], k, v.as_bytes(), 0, format!("{fault:?}: partial"));
        }
        assert_eq!(out.failed.len(), 1, "{fault:?}: exactly the bad server failed: {:?}", out.failed);
        let (server, err) = &out.failed[0];
        assert_eq!(server.to_string(), addrs[1], "{fault:?}: the failed server");
        match fault {
            Fault::Stall => {
                assert!(matches!(err, Error::Timeout), "stalled server: expected Timeout, got {err:?}");
                // Bounded by the one call deadline (not one per server, not forever); generous,
                // because a loaded CI machine is slow to wake a task after its timer.
                assert!(took < timeout * 4, "partial get_multi with a stalled server took {took:?}");
            }
            _ => assert!(err.is_connection_broken(), "{fault:?}: expected an IO/protocol error, got {err:?}"),
        }

        let plain = A::get_multi(&c, &all).await;
        assert!(plain.is_err(), "{fault:?}: plain get_multi with a failing server must fail, got {plain:?}");
        let only_live: Vec<&str> = live.iter().map(String::as_str).collect();
        let ok = expect_ok!(A::get_multi(&c, &only_live).await, "{fault:?}: get_multi of the healthy keys");
        assert_eq!(ok.len(), live.len());
    }
}
