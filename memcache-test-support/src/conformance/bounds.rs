//! Bounds a call keeps under failure: a connection found out of sync after decoding is closed,
//! a call's reads and writes are bounded by its own deadline (not the connect timeout, not a
//! peer that never stops sending), and a `get_multi` is split so that no reply passes the
//! decoder's limits.

use std::time::Duration;

use bytes::Bytes;
use memcache_proto::{Error, FailurePolicy, Item, Limits, ProtoError};

use super::util::store_direct;
use super::{Adapter, ClientConfig, client, timed};
use crate::fault::{Fault, FaultServer, HUGE_VALUE_LEN, Proxy, ProxyMode};
use crate::memcached::Memcached;

/// A reply that decodes but answers another key is a desync: the call fails with `Protocol`
/// and the connection is closed, so the next call opens a fresh one (the next call reused the
/// connection before).
pub async fn desync_found_after_decoding_closes_the_connection<A: Adapter>() {
    let server = FaultServer::start(Fault::WrongKey);
    // Four failures in a row: the dead-server policy would fail the later calls fast.
    let cfg = ClientConfig::new([server.addr()]).max_conns(1).failure_policy(FailurePolicy::disabled());
    let c = client::<A>(cfg);
    for call in 0..4 {
        let res = if call % 2 == 0 {
            A::get(&c, "k").await.map(drop)
        } else {
            A::get_multi(&c, &["k", "k2"]).await.map(drop)
        };
        expect_err!(res, Error::Protocol(_), "call {call}: a value for a key nobody asked for");
        assert!(
            server.wait_connections(call + 1, Duration::from_secs(5)),
            "call {call}: the next call reused a connection that answered the wrong key"
        );
        assert_eq!(server.connections(), call + 1, "call {call}: one connection per call");
    }
}

/// A fresh connection waits for its reply as long as the call's timeout, not the connect
/// timeout: with a 20 ms connect timeout, a reply delayed 300 ms still arrives within a 5 s
/// call timeout (the first call on a connection failed with `Timeout` before).
pub async fn fresh_connections_read_with_the_call_timeout<A: Adapter>() {
    let m = Memcached::start();
    let proxy = Proxy::start(&m.addr());
    let cfg = ClientConfig {
        connect_timeout: Some(Duration::from_millis(20)),
        ..ClientConfig::new([proxy.addr()])
    };
    let c = client::<A>(cfg);
    proxy.set_mode(ProxyMode::DelayReplies(Duration::from_millis(300)));
    expect_ok!(
        A::set(&c, &Item::new("k", "v")).await,
        "a set whose reply is delayed 300 ms, on a fresh connection"
    );
    expect_ok!(A::get(&c, "k").await, "a get whose reply is delayed 300 ms");
}

/// A write that cannot complete (the server never reads) fails with `Timeout` at the call's
/// deadline, not after the connect timeout.
pub async fn writes_are_bounded_by_the_call_deadline<A: Adapter>() {
    let deaf = FaultServer::start(Fault::Deaf);
    let timeout = Duration::from_millis(300);
    let cfg =
        ClientConfig { connect_timeout: Some(Duration::from_secs(30)), ..ClientConfig::new([deaf.addr()]) };
    let c = client::<A>(cfg.timeout(timeout));
    let item = Item::new("big", Bytes::from(vec![b'w'; 32 * 1024 * 1024]));
    let (res, took) = timed(|| A::set(&c, &item)).await;
    expect_err!(res, Error::Timeout, "a 32 MiB set to a server that never reads");
    assert!(
        took < Duration::from_secs(10),
        "the blocked write took {took:?}; the call timeout is {timeout:?}"
    );
}

/// A server that sends an endless reply, as fast as the client reads: the call ends with
/// `Timeout` at its deadline. Reading on past the deadline, as long as bytes are there, ran
/// into the reply bound instead (hundreds of MiB later).
pub async fn an_endless_reply_is_cut_at_the_deadline<A: Adapter>() {
    let flood = FaultServer::start(Fault::Flood);
    let timeout = Duration::from_millis(50);
    let c = client::<A>(ClientConfig::new([flood.addr()]).timeout(timeout));
    let (res, took) = timed(|| A::get(&c, "k")).await;
    // `Timeout` at the deadline. A machine so loaded that the reply bound (256 MiB) is read
    // before a late timer fires ends the call with `ReplyTooLarge` instead: still bounded.
    // Without either bound (before issue 11) the call read on for ever.
    match res {
        Err(Error::Timeout | Error::Protocol(ProtoError::ReplyTooLarge { .. })) => {}
        other => {
            panic!("a get answered by an endless stream of values: expected Err(Timeout), got {other:?}")
        }
    }
    assert!(took < Duration::from_secs(3), "a 50 ms call against a flood took {took:?}");
}

/// A server that streams faster than the client reads (one huge value written by several
/// threads at once): the call still ends at its deadline, within 20 times its timeout. The
/// drain after the deadline read until the socket was empty (before issue 11), and against this
/// server that took seconds for a 50 ms call, the client's buffer growing by hundreds of MiB.
pub async fn a_reply_streamed_faster_than_read_is_cut_at_the_deadline<A: Adapter>() {
    let flood = FaultServer::start(Fault::HugeValueFlood);
    let timeout = Duration::from_millis(50);
    // The value fits the limits, so only the deadline (or the reply bound) can end the call.
    let limits = Limits::default().with_max_value_len(HUGE_VALUE_LEN);
    let c = client::<A>(ClientConfig::new([flood.addr()]).timeout(timeout).limits(limits));
    let (res, took) = timed(|| A::get(&c, "k")).await;
    assert!(took < 20 * timeout, "a {timeout:?} call against a server out-streaming it took {took:?}");
    // A machine fast enough to read the whole value within the timeout finds the stream out of
    // sync after it; one so loaded that a late timer lets the reply bound pass ends with
    // `ReplyTooLarge`. Both are still bounded.
    match res {
        Err(Error::Timeout)
        | Err(Error::Protocol(ProtoError::ReplyTooLarge { .. } | ProtoError::BadValueTerminator)) => {}
        other => {
            panic!("a get answered by a value streamed without end: expected Err(Timeout), got {other:?}")
        }
    }
}

/// More keys than one reply may hold values (`Limits::max_values`) all hitting: `get_multi`
/// splits them into several commands and returns every item (one command's reply failed
/// with `TooManyValues` and closed the connection before).
pub async fn get_multi_beyond_the_reply_limits_is_split<A: Adapter>() {
    let m = Memcached::start();
    let n = Limits::default().max_values + 1000;
    let items: Vec<(String, Vec<u8>)> =
        (0..n).map(|i| (format!("k{i}"), vec![b'0' + (i % 10) as u8])).collect();
    store_direct(&m, &items);
    let c = client::<A>(ClientConfig::new([m.addr()]));
    let keys: Vec<&str> = items.iter().map(|(k, _)| k.as_str()).collect();
    let got = expect_ok!(A::get_multi(&c, &keys).await, "get_multi of {n} hits");
    assert_eq!(got.len(), n, "every key of the get_multi came back");
    for (k, v) in items.iter().step_by(997) {
        assert_eq!(&got[k].value[..], &v[..], "value of {k}");
    }
    expect_ok!(A::get(&c, "k0").await, "the connection is still usable");
}
