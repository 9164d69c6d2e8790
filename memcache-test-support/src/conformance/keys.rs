//! Keys and values at their limits, malformed keys, and a Unix-socket server.

use bytes::Bytes;
use memcache_proto::{Error, Item};

use super::util::XorShift;
use super::{Adapter, ClientConfig, check_item, client, show};
use crate::fault::Proxy;
use crate::memcached::Memcached;

/// Empty values and binary values holding protocol look-alikes (`\r\nEND\r\n`, `VALUE` lines,
/// every byte value) round-trip through `get` and `get_multi`.
pub async fn empty_and_binary_values<A: Adapter>() {
    let m = Memcached::start();
    let c = client::<A>(ClientConfig::new([m.addr()]));

    expect_ok!(A::set(&c, &Item::new("empty", Bytes::new()).with_flags(3)).await, "set an empty value");
    assert_eq!(m.get_direct("empty").as_deref(), Some(&b""[..]), "the server holds an empty value");
    check_item(&expect_ok!(A::get(&c, "empty").await, "get"), "empty", b"", 3, "empty value");

    let mut binary: Vec<u8> = (0..=255u8).collect();
    binary.extend_from_slice(b"\r\nEND\r\nVALUE other 0 1\r\nx\r\nEND\r\n\r\n\0");
    let tricky: &[(&str, &[u8])] = &[
        ("bin", &binary),
        ("end", b"\r\nEND\r\n"),
        ("crlf", b"\r\n"),
        ("value", b"VALUE bin 0 3\r\nabc\r\nEND"),
        ("nul", b"\0\0\0"),
    ];
    for (k, v) in tricky {
        expect_ok!(A::set(&c, &Item::new(*k, Bytes::copy_from_slice(v))).await, "set {k}");
        assert_eq!(m.get_direct(k).as_deref(), Some(*v), "the server holds {k}'s exact bytes");
        check_item(&expect_ok!(A::get(&c, k).await, "get {k}"), k, v, 0, "binary get");
    }
    let mut keys: Vec<&str> = tricky.iter().map(|(k, _)| *k).collect();
    keys.insert(2, "empty");
    keys.push("missing");
    let got = expect_ok!(A::get_multi(&c, &keys).await, "get_multi of binary values");
    assert_eq!(got.len(), tricky.len() + 1, "get_multi: {:?}", got.keys().collect::<Vec<_>>());
    for (k, v) in tricky {
        check_item(&got[*k], k, v, 0, "binary get_multi");
    }
    check_item(&got["empty"], "empty", b"", 3, "empty value in get_multi");

    expect_ok!(A::append(&c, &Item::new("empty", "x")).await, "append to an empty value");
    assert_eq!(m.get_direct("empty").as_deref(), Some(&b"x"[..]));
}

/// A 250-byte key (the limit) and non-ASCII UTF-8 keys work with every keyed call.
pub async fn longest_and_non_ascii_keys<A: Adapter>() {
    let m = Memcached::start();
    let c = client::<A>(ClientConfig::new([m.addr()]));
    let long: String = "0123456789!#~{|}abcdefghijklmnopqrstuvwxyz".chars().cycle().take(250).collect();
    let utf8 = "ключ-Schlüssel-鍵".to_string();
    for key in [&long, &utf8] {
        let k = key.as_str();
        expect_ok!(A::set(&c, &Item::new(k, "v")).await, "set with key {k:?}");
        assert_eq!(m.get_direct(k).as_deref(), Some(&b"v"[..]), "the server holds {k:?}");
        check_item(&expect_ok!(A::get(&c, k).await, "get"), k, b"v", 0, "get");
        let multi = expect_ok!(A::get_multi(&c, &[k, "other"]).await, "get_multi");
        check_item(&multi[k], k, b"v", 0, "get_multi");
        expect_ok!(A::append(&c, &Item::new(k, "w")).await, "append");
        expect_ok!(A::touch(&c, k, 100).await, "touch");
        check_item(&expect_ok!(A::get_and_touch(&c, k, 100).await, "gat"), k, b"vw", 0, "gat");
        expect_ok!(A::delete(&c, k).await, "delete");
        expect_ok!(A::set(&c, &Item::new(k, "41")).await, "set a counter");
        assert_eq!(expect_ok!(A::increment(&c, k, 1).await, "incr"), 42);
        expect_ok!(A::delete_lock(&c, k, 0).await, "delete_lock");
        assert_eq!(m.get_direct(k), None);
    }
}

/// A 1,000,000-byte value round-trips exactly.
pub async fn large_value_round_trip<A: Adapter>() {
    let m = Memcached::start();
    let c = client::<A>(ClientConfig::new([m.addr()]));
    let value = Bytes::from(XorShift::new(1).bytes(1_000_000));
    expect_ok!(A::set(&c, &Item::new("big", value.clone()).with_flags(9)).await, "set of 1,000,000 bytes");
    let direct = m.get_direct("big").expect("the server holds the big value");
    assert!(direct == value, "the server holds {} instead of the 1,000,000 bytes sent", show(&direct));

    let got = expect_ok!(A::get(&c, "big").await, "get of 1,000,000 bytes");
    check_item(&got, "big", &value, 9, "big get");
    expect_ok!(A::set(&c, &Item::new("small", "s")).await, "set small");
    let multi = expect_ok!(A::get_multi(&c, &["small", "big", "none"]).await, "get_multi with a big value");
    assert_eq!(multi.len(), 2);
    check_item(&multi["big"], "big", &value, 9, "big get_multi");
    check_item(&multi["small"], "small", b"s", 0, "get_multi after a big value");
}

/// A 2 MiB value is refused by the server (`Server(_)`: item size limit 1 MiB), nothing is
/// stored, and the same client keeps working.
pub async fn oversized_value_refused_then_client_works<A: Adapter>() {
    let m = Memcached::start();
    let c = client::<A>(ClientConfig::new([m.addr()]).max_conns(1));
    expect_ok!(A::set(&c, &Item::new("before", "b")).await, "set before");
    let value = Bytes::from(vec![b'z'; 2 * 1024 * 1024]);
    for round in 0..2 {
        match A::set(&c, &Item::new("huge", value.clone())).await {
            Err(Error::Server(msg)) => assert!(!msg.is_empty(), "the SERVER_ERROR message is kept"),
            other => panic!("round {round}: set of 2 MiB: expected Err(Server(_)), got {other:?}"),
        }
        assert_eq!(m.get_direct("huge"), None, "a refused value is not stored");
        check_item(
            &expect_ok!(A::get(&c, "before").await, "get after the refusal"),
            "before",
            b"b",
            0,
            round,
        );
        expect_ok!(A::set(&c, &Item::new("after", format!("a{round}"))).await, "set after the refusal");
        check_item(
            &expect_ok!(A::get(&c, "after").await, "get"),
            "after",
            format!("a{round}").as_bytes(),
            0,
            round,
        );
    }
}

/// Malformed keys fail with `MalformedKey` in every keyed call (and `get_multi` with one bad key
/// among good ones) before a single byte is written: the proxy in front of the server counts what
/// clients send.
pub async fn malformed_keys_never_reach_the_wire<A: Adapter>() {
    let m = Memcached::start();
    let proxy = Proxy::start(&m.addr());
    let c = client::<A>(ClientConfig::new([proxy.addr()]));
    let too_long = "k".repeat(251);
    let bad: Vec<&str> = vec!["", &too_long, "a b", "a\nb", "a\r\nb", "a\x7fb", "a\x01b", "\t", "tab\t", " "];

    for key in &bad {
        let key: &str = key;
        let it = Item::new(key, "v").with_cas(1);
        expect_err!(A::get(&c, key).await, Error::MalformedKey(_), "get({key:?})");
        expect_err!(
            A::get_multi(&c, &["good", key, "good2"]).await,
            Error::MalformedKey(_),
            "get_multi with {key:?}"
        );
        expect_err!(A::get_multi(&c, &[key]).await, Error::MalformedKey(_), "get_multi([{key:?}])");
        expect_err!(
            A::get_multi_partial(&c, &["good", key]).await,
            Error::MalformedKey(_),
            "get_multi_partial {key:?}"
        );
        expect_err!(A::set(&c, &it).await, Error::MalformedKey(_), "set({key:?})");
        expect_err!(A::add(&c, &it).await, Error::MalformedKey(_), "add({key:?})");
        expect_err!(A::replace(&c, &it).await, Error::MalformedKey(_), "replace({key:?})");
        expect_err!(A::append(&c, &it).await, Error::MalformedKey(_), "append({key:?})");
        expect_err!(A::prepend(&c, &it).await, Error::MalformedKey(_), "prepend({key:?})");
        expect_err!(A::compare_and_swap(&c, &it).await, Error::MalformedKey(_), "compare_and_swap({key:?})");
        expect_err!(A::delete(&c, key).await, Error::MalformedKey(_), "delete({key:?})");
        expect_err!(A::delete_lock(&c, key, 0).await, Error::MalformedKey(_), "delete_lock({key:?})");
        expect_err!(A::increment(&c, key, 1).await, Error::MalformedKey(_), "increment({key:?})");
        expect_err!(A::decrement(&c, key, 1).await, Error::MalformedKey(_), "decrement({key:?})");
        expect_err!(A::touch(&c, key, 1).await, Error::MalformedKey(_), "touch({key:?})");
        expect_err!(A::get_and_touch(&c, key, 1).await, Error::MalformedKey(_), "get_and_touch({key:?})");
    }
    assert_eq!(proxy.bytes_from_clients(), 0, "calls with malformed keys wrote bytes to the server");

    // Positive control: a valid call is seen by the proxy (it counts a chunk before forwarding
    // it, so once the reply is back the count includes the request).
    expect_err!(A::get(&c, "good").await, Error::CacheMiss, "get of a valid key");
    let seen = proxy.bytes_from_clients();
    assert!(seen >= "get good\r\n".len(), "the proxy saw {seen} bytes of a valid get");

    // Bad keys on a client with an open connection write nothing either.
    expect_err!(A::get(&c, "bad key").await, Error::MalformedKey(_), "get with a space");
    expect_err!(A::get_multi(&c, &["good", ""]).await, Error::MalformedKey(_), "get_multi with an empty key");
    expect_err!(
        A::set(&c, &Item::new(too_long.as_str(), "v")).await,
        Error::MalformedKey(_),
        "set, 251 bytes"
    );
    expect_ok!(A::set(&c, &Item::new("good", "v")).await, "set of a valid key");
    check_item(&expect_ok!(A::get(&c, "good").await, "get"), "good", b"v", 0, "the connection is fine");
    assert_eq!(m.get_direct("good").as_deref(), Some(&b"v"[..]));
}

/// A server on a Unix socket (its address contains `/`): basic calls and stats.
pub async fn unix_socket_server<A: Adapter>() {
    let m = Memcached::start_unix();
    let addr = m.addr();
    assert!(addr.contains('/'), "a Unix socket address is a path: {addr}");
    let c = client::<A>(ClientConfig::new([addr.clone()]));

    expect_err!(A::get(&c, "k").await, Error::CacheMiss, "get over a Unix socket");
    expect_ok!(A::set(&c, &Item::new("k", "over unix").with_flags(5)).await, "set over a Unix socket");
    assert_eq!(m.get_direct("k").as_deref(), Some(&b"over unix"[..]), "the server holds the value");
    check_item(&expect_ok!(A::get(&c, "k").await, "get"), "k", b"over unix", 5, "unix get");
    expect_ok!(A::set(&c, &Item::new("n", "1")).await, "set n");
    assert_eq!(expect_ok!(A::increment(&c, "n", 2).await, "incr"), 3);
    let multi = expect_ok!(A::get_multi(&c, &["k", "n", "x"]).await, "get_multi over a Unix socket");
    assert_eq!(multi.len(), 2);
    check_item(&multi["k"], "k", b"over unix", 5, "unix get_multi");
    expect_ok!(A::delete(&c, "k").await, "delete");
    assert_eq!(m.get_direct("k"), None);
    expect_ok!(A::ping(&c).await, "ping over a Unix socket");
    let stats = expect_ok!(A::stats(&c).await, "stats over a Unix socket");
    let keys: Vec<&String> = stats.keys().collect();
    assert_eq!(keys, [&addr], "stats are keyed by the socket path");
    assert_eq!(stats[&addr].get("pid").map(String::as_str), m.pid().map(|p| p.to_string()).as_deref());
}
