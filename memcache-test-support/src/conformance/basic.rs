//! Every method on one server, and every row of DESIGN.md's semantics table.

use bytes::Bytes;
use memcache_proto::{Error, Item};

use super::util::ttl;
use super::{Adapter, ClientConfig, check_item, client};
use crate::memcached::Memcached;

/// `get`: a miss is `CacheMiss`; a hit carries key, value, flags and the server's CAS token.
pub async fn get_hit_miss_and_cas<A: Adapter>() {
    let m = Memcached::start();
    let c = client::<A>(ClientConfig::new([m.addr()]));

    expect_err!(A::get(&c, "absent").await, Error::CacheMiss, "get of a key never stored");

    expect_ok!(A::set(&c, &Item::new("k", "v1").with_flags(42)).await, "set k");
    let direct = m.get_direct_item("k").expect("set must have stored k on the server");
    assert_eq!((&direct.value[..], direct.flags), (&b"v1"[..], 42), "what the server holds after set");

    let got = expect_ok!(A::get(&c, "k").await, "get k");
    check_item(&got, "k", b"v1", 42, "get after set");
    assert_eq!(got.cas, Some(direct.cas), "get must fill the item's CAS token (gets)");

    expect_ok!(A::set(&c, &Item::new("k", "v2")).await, "second set of k");
    let got2 = expect_ok!(A::get(&c, "k").await, "get k again");
    check_item(&got2, "k", b"v2", 0, "get after the second set");
    let cas2 = m.get_direct_item("k").expect("k is stored").cas;
    assert_eq!(got2.cas, Some(cas2), "the CAS token follows the server's");
    assert_ne!(got.cas, got2.cas, "a new set gives a new CAS token");
}

/// `get_multi`: missing keys are simply absent; duplicates and an empty key list are fine.
pub async fn get_multi_skips_missing_keys<A: Adapter>() {
    let m = Memcached::start();
    let c = client::<A>(ClientConfig::new([m.addr()]));
    for (i, k) in ["a", "b", "c"].iter().enumerate() {
        expect_ok!(A::set(&c, &Item::new(*k, format!("value-{k}")).with_flags(i as u32)).await, "set {k}");
    }

    let got = expect_ok!(A::get_multi(&c, &["a", "missing1", "b", "c", "missing2"]).await, "get_multi");
    let mut keys: Vec<&str> = got.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["a", "b", "c"], "get_multi returns exactly the stored keys");
    for (i, k) in ["a", "b", "c"].iter().enumerate() {
        let item = &got[*k];
        check_item(item, k, format!("value-{k}").as_bytes(), i as u32, "get_multi");
        let cas = m.get_direct_item(k).expect("stored").cas;
        assert_eq!(item.cas, Some(cas), "get_multi items carry their CAS token (gets)");
    }

    let none = expect_ok!(A::get_multi(&c, &["x1", "x2", "x3"]).await, "get_multi of missing keys");
    assert!(none.is_empty(), "get_multi of missing keys must be an empty map, got {none:?}");
    let empty = expect_ok!(A::get_multi(&c, &[] as &[&str]).await, "get_multi of no keys");
    assert!(empty.is_empty(), "get_multi of no keys must be an empty map, got {empty:?}");
    let dup = expect_ok!(A::get_multi(&c, &["a", "a", "b"]).await, "get_multi with a duplicate key");
    assert_eq!(dup.len(), 2, "duplicates collapse into one entry: {dup:?}");
    check_item(&dup["a"], "a", b"value-a", 0, "get_multi with a duplicate key");
}

/// `add`/`replace`/`append`/`prepend` answer `NotStored` when their condition fails, and store
/// what they should when it holds.
pub async fn store_verbs_and_not_stored<A: Adapter>() {
    let m = Memcached::start();
    let c = client::<A>(ClientConfig::new([m.addr()]));
    let direct = |k: &str| m.get_direct(k);

    expect_ok!(A::add(&c, &Item::new("k", "first")).await, "add of a new key");
    assert_eq!(direct("k").as_deref(), Some(&b"first"[..]));
    expect_err!(A::add(&c, &Item::new("k", "second")).await, Error::NotStored, "add of an existing key");
    assert_eq!(direct("k").as_deref(), Some(&b"first"[..]), "a refused add changes nothing");

    expect_err!(A::replace(&c, &Item::new("nokey", "x")).await, Error::NotStored, "replace of a missing key");
    assert_eq!(direct("nokey"), None, "a refused replace stores nothing");
    expect_ok!(A::replace(&c, &Item::new("k", "replaced").with_flags(7)).await, "replace of an existing key");
    check_item(&expect_ok!(A::get(&c, "k").await, "get"), "k", b"replaced", 7, "after replace");

    expect_err!(A::append(&c, &Item::new("nokey", "x")).await, Error::NotStored, "append to a missing key");
    expect_err!(A::prepend(&c, &Item::new("nokey", "x")).await, Error::NotStored, "prepend to a missing key");
    assert_eq!(direct("nokey"), None, "refused append/prepend store nothing");
    expect_ok!(A::append(&c, &Item::new("k", "-tail")).await, "append");
    expect_ok!(A::prepend(&c, &Item::new("k", "head-")).await, "prepend");
    assert_eq!(direct("k").as_deref(), Some(&b"head-replaced-tail"[..]), "after append and prepend");
    // append/prepend keep the stored flags (memcached ignores the new ones).
    check_item(&expect_ok!(A::get(&c, "k").await, "get"), "k", b"head-replaced-tail", 7, "after append");

    expect_ok!(A::set(&c, &Item::new("k", "overwritten")).await, "set over an existing key");
    assert_eq!(direct("k").as_deref(), Some(&b"overwritten"[..]));
}

/// `compare_and_swap`: success; `EXISTS` is `CasConflict`; a deleted or never-stored key
/// (`NOT_FOUND`) is `NotStored`.
pub async fn compare_and_swap_semantics<A: Adapter>() {
    let m = Memcached::start();
    let c = client::<A>(ClientConfig::new([m.addr()]));
    expect_ok!(A::set(&c, &Item::new("k", "v1")).await, "set");

    let mut item = expect_ok!(A::get(&c, "k").await, "get");
    let stale = item.clone();
    item.value = Bytes::from_static(b"v2");
    expect_ok!(A::compare_and_swap(&c, &item).await, "cas with a fresh token");
    assert_eq!(m.get_direct("k").as_deref(), Some(&b"v2"[..]), "cas stored the new value");

    let mut again = stale.clone();
    again.value = Bytes::from_static(b"v3");
    expect_err!(A::compare_and_swap(&c, &again).await, Error::CasConflict, "cas with a used-up token");
    assert_eq!(m.get_direct("k").as_deref(), Some(&b"v2"[..]), "a conflicting cas changes nothing");

    let mut read = expect_ok!(A::get(&c, "k").await, "get");
    let reply = m.request(b"set k 0 0 5\r\nother\r\n");
    assert_eq!(reply, b"STORED\r\n", "direct set by another client");
    read.value = Bytes::from_static(b"mine");
    expect_err!(A::compare_and_swap(&c, &read).await, Error::CasConflict, "cas after another client's set");
    assert_eq!(m.get_direct("k").as_deref(), Some(&b"other"[..]), "the other client's value stays");

    let mut read = expect_ok!(A::get(&c, "k").await, "get");
    expect_ok!(A::delete(&c, "k").await, "delete");
    read.value = Bytes::from_static(b"resurrected");
    expect_err!(A::compare_and_swap(&c, &read).await, Error::NotStored, "cas on a deleted key");
    assert_eq!(m.get_direct("k"), None, "cas on a deleted key stores nothing");

    let never = Item::new("never", "x").with_cas(12345);
    expect_err!(A::compare_and_swap(&c, &never).await, Error::NotStored, "cas on a key never stored");
    assert_eq!(m.get_direct("never"), None);
}

/// `delete`: hit, miss (`CacheMiss`); `delete_lock(k, 0)` deletes; `delete_lock(k, 10)` is refused
/// by memcached 1.6 (`Client(_)`), nothing is deleted, and the client keeps working.
pub async fn delete_and_delete_lock<A: Adapter>() {
    let m = Memcached::start();
    let c = client::<A>(ClientConfig::new([m.addr()]));
    for k in ["a", "b", "c"] {
        expect_ok!(A::set(&c, &Item::new(k, "v")).await, "set {k}");
    }
    expect_ok!(A::delete(&c, "a").await, "delete of a stored key");
    assert_eq!(m.get_direct("a"), None, "delete removed the key");
    expect_err!(A::delete(&c, "a").await, Error::CacheMiss, "delete of a deleted key");
    expect_err!(A::delete(&c, "never").await, Error::CacheMiss, "delete of a key never stored");

    expect_ok!(A::delete_lock(&c, "b", 0).await, "delete_lock(b, 0)");
    assert_eq!(m.get_direct("b"), None, "delete_lock(_, 0) removed the key");
    expect_err!(A::delete_lock(&c, "b", 0).await, Error::CacheMiss, "delete_lock of a missing key");

    match A::delete_lock(&c, "c", 10).await {
        Err(Error::Client(msg)) => assert!(!msg.is_empty(), "the CLIENT_ERROR message is kept"),
        other => panic!(
            "delete_lock(c, 10): memcached 1.6 refuses a hold time, expected Err(Client(_)), got {other:?}"
        ),
    }
    assert_eq!(m.get_direct("c").as_deref(), Some(&b"v"[..]), "a refused delete_lock deletes nothing");
    check_item(
        &expect_ok!(A::get(&c, "c").await, "get after the refusal"),
        "c",
        b"v",
        0,
        "after delete_lock",
    );
    expect_ok!(A::delete(&c, "c").await, "delete after the refusal");
}

/// `increment`/`decrement`: values, clamping at 0, wrapping at 2^64, misses.
pub async fn increment_and_decrement<A: Adapter>() {
    let m = Memcached::start();
    let c = client::<A>(ClientConfig::new([m.addr()]));
    let direct_num = |k: &str| {
        let v = m.get_direct(k).expect("the counter is stored");
        String::from_utf8(v).expect("a decimal counter").trim_end().to_string()
    };

    expect_ok!(A::set(&c, &Item::new("n", "10")).await, "set n");
    assert_eq!(expect_ok!(A::increment(&c, "n", 5).await, "incr"), 15);
    assert_eq!(direct_num("n"), "15", "the server holds the incremented value");
    assert_eq!(expect_ok!(A::increment(&c, "n", 0).await, "incr by 0"), 15);
    assert_eq!(expect_ok!(A::decrement(&c, "n", 3).await, "decr"), 12);
    assert_eq!(expect_ok!(A::decrement(&c, "n", 100).await, "decr below 0"), 0, "decr clamps at 0");
    assert_eq!(direct_num("n"), "0");
    assert_eq!(expect_ok!(A::decrement(&c, "n", 1).await, "decr of 0"), 0);
    let got = expect_ok!(A::get(&c, "n").await, "get the counter");
    assert_eq!(String::from_utf8_lossy(&got.value).trim_end(), "0", "get sees the counter");

    let max = u64::MAX.to_string();
    expect_ok!(A::set(&c, &Item::new("big", max.clone())).await, "set big");
    assert_eq!(expect_ok!(A::decrement(&c, "big", 1).await, "decr of u64::MAX"), u64::MAX - 1);
    assert_eq!(expect_ok!(A::increment(&c, "big", 1).await, "incr to u64::MAX"), u64::MAX);
    assert_eq!(expect_ok!(A::increment(&c, "big", 2).await, "incr past u64::MAX"), 1, "incr wraps at 2^64");
    assert_eq!(expect_ok!(A::increment(&c, "big", u64::MAX).await, "incr by u64::MAX"), 0);
    expect_ok!(A::set(&c, &Item::new("big", max)).await, "set big again");
    assert_eq!(expect_ok!(A::decrement(&c, "big", u64::MAX).await, "decr by u64::MAX"), 0);

    expect_err!(A::increment(&c, "absent", 1).await, Error::CacheMiss, "incr of a missing key");
    expect_err!(A::decrement(&c, "absent", 1).await, Error::CacheMiss, "decr of a missing key");
    assert_eq!(m.get_direct("absent"), None, "incr/decr of a missing key create nothing");
}

/// `incr`/`decr` of a non-number is `Client(msg)`, and the connection survives: the server sees
/// no new connection from the client.
pub async fn incr_on_non_number_keeps_connection<A: Adapter>() {
    let m = Memcached::start();
    let c = client::<A>(ClientConfig::new([m.addr()]).max_conns(1));
    expect_ok!(A::set(&c, &Item::new("word", "abc")).await, "set a non-number");
    expect_ok!(A::set(&c, &Item::new("n", "1")).await, "set a number");

    // The stats request itself is one new connection; the client must add none. (No direct
    // requests to the server in between: each would be a connection too.)
    let before = m.stat_u64("total_connections");
    for round in 0..3u64 {
        match A::increment(&c, "word", 1).await {
            Err(Error::Client(msg)) => assert!(!msg.is_empty(), "the CLIENT_ERROR message is kept"),
            other => panic!("incr of a non-number: expected Err(Client(_)), got {other:?}"),
        }
        expect_err!(A::decrement(&c, "word", 1).await, Error::Client(_), "decr of a non-number");
        let n = expect_ok!(A::increment(&c, "n", 1).await, "incr after the CLIENT_ERROR");
        assert_eq!(n, round + 2, "incr of n after CLIENT_ERROR replies");
    }
    check_item(
        &expect_ok!(A::get(&c, "word").await, "get"),
        "word",
        b"abc",
        0,
        "the non-number is unchanged",
    );
    let after = m.stat_u64("total_connections");
    assert_eq!(
        after - before,
        1,
        "the client opened {} new connection(s) after CLIENT_ERROR replies; the connection must be kept",
        (after - before).saturating_sub(1)
    );
    assert_eq!(m.get_direct("n").as_deref(), Some(&b"4"[..]), "three increments of n went through");
}

/// `touch` and `get_and_touch` set the expiration the server reports; misses are `CacheMiss`;
/// a negative expiration expires the item at once.
pub async fn touch_and_get_and_touch<A: Adapter>() {
    let m = Memcached::start();
    let c = client::<A>(ClientConfig::new([m.addr()]));
    expect_ok!(A::set(&c, &Item::new("k", "v")).await, "set");
    assert_eq!(ttl(&m, "k"), Some(-1), "no expiration after a plain set");

    expect_ok!(A::touch(&c, "k", 100).await, "touch");
    let t = ttl(&m, "k").expect("touch keeps the item");
    assert!((90..=100).contains(&t), "TTL after touch(k, 100) is {t}");
    expect_err!(A::touch(&c, "absent", 100).await, Error::CacheMiss, "touch of a missing key");

    let got = expect_ok!(A::get_and_touch(&c, "k", 1000).await, "get_and_touch");
    check_item(&got, "k", b"v", 0, "get_and_touch");
    let t = ttl(&m, "k").expect("get_and_touch keeps the item");
    assert!((990..=1000).contains(&t), "TTL after get_and_touch(k, 1000) is {t}");
    expect_err!(A::get_and_touch(&c, "absent", 10).await, Error::CacheMiss, "get_and_touch of a missing key");

    expect_ok!(A::touch(&c, "k", -1).await, "touch with a negative expiration");
    expect_err!(A::get(&c, "k").await, Error::CacheMiss, "an item touched with -1 is expired");
    expect_err!(A::touch(&c, "k", 10).await, Error::CacheMiss, "touch of an expired key");
}

/// Flags up to `u32::MAX` round-trip; expirations are relative, absolute (a Unix time), or
/// negative (already expired).
pub async fn flags_and_expiration<A: Adapter>() {
    let m = Memcached::start();
    let c = client::<A>(ClientConfig::new([m.addr()]));

    let item = Item::new("f", "flagged").with_flags(u32::MAX).with_expiration(100);
    expect_ok!(A::set(&c, &item).await, "set with flags u32::MAX");
    check_item(&expect_ok!(A::get(&c, "f").await, "get"), "f", b"flagged", u32::MAX, "flags u32::MAX");
    let multi = expect_ok!(A::get_multi(&c, &["f"]).await, "get_multi");
    check_item(&multi["f"], "f", b"flagged", u32::MAX, "flags through get_multi");
    assert_eq!(m.get_direct_item("f").map(|i| i.flags), Some(u32::MAX), "the server holds the flags");
    let t = ttl(&m, "f").expect("stored");
    assert!((90..=100).contains(&t), "TTL of an item set with expiration 100 is {t}");

    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock after 1970");
    let absolute = i32::try_from(now.as_secs() + 1000).expect("a Unix time that fits i32");
    expect_ok!(A::set(&c, &Item::new("abs", "x").with_expiration(absolute)).await, "set with a Unix time");
    let t = ttl(&m, "abs").expect("an item expiring in the future is stored");
    assert!((980..=1002).contains(&t), "TTL of an item set to expire at now+1000 is {t}");

    expect_ok!(A::set(&c, &Item::new("gone", "x").with_expiration(-1)).await, "set already expired");
    expect_err!(A::get(&c, "gone").await, Error::CacheMiss, "an item set with expiration -1");
    assert_eq!(m.get_direct("gone"), None);

    for flags in [0, 1, 0x8000_0000, u32::MAX - 1] {
        expect_ok!(A::set(&c, &Item::new("f2", "v").with_flags(flags)).await, "set flags {flags}");
        check_item(&expect_ok!(A::get(&c, "f2").await, "get"), "f2", b"v", flags, flags);
    }
}

/// `Duration::MAX` as the timeout (and as the busy-polling window) means "wait as long as it
/// takes": every kind of call works, none overflows the clock.
pub async fn duration_max_timeouts_mean_no_deadline<A: Adapter>() {
    let m = Memcached::start();
    let cfg =
        ClientConfig::new([m.addr()]).timeout(std::time::Duration::MAX).busy_poll(std::time::Duration::MAX);
    let c = client::<A>(cfg);
    expect_ok!(A::set(&c, &Item::new("k", "v")).await, "set");
    check_item(&expect_ok!(A::get(&c, "k").await, "get"), "k", b"v", 0, "get");
    let multi = expect_ok!(A::get_multi(&c, &["k", "missing"]).await, "get_multi");
    assert_eq!(multi.len(), 1, "get_multi: {:?}", multi.keys());
    expect_err!(A::get(&c, "missing").await, Error::CacheMiss, "miss");
    expect_ok!(A::ping(&c).await, "ping");
    assert!(expect_ok!(A::stats(&c).await, "stats")[&m.addr()].contains_key("pid"), "stats");
}
