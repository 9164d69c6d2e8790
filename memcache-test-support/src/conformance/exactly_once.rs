//! The retry rule: a request that may have reached the server is sent again only if applying
//! it twice is applying it once. A server that applied a write and then lost the connection
//! before its answer arrived must see that write once, and the caller gets the error.

use memcache_proto::{Error, Item};

use super::{Adapter, ClientConfig, Res, check_item, client};
use crate::fault::CountingProxy;
use crate::memcached::Memcached;

/// The write verbs whose replies are lost, each after the server applied it.
const WRITES: [&str; 8] = ["incr", "decr", "append", "prepend", "add", "cas", "set", "delete"];

/// For each write verb, on a pooled connection that has served a call: the server applies the
/// command and the connection closes before its answer arrives. The client must have sent it
/// exactly once (the proxy counts arrivals), return `Io` or `Timeout`, and the server must hold
/// the value of one application.
pub async fn written_writes_are_sent_exactly_once<A: Adapter>() {
    let m = Memcached::start();
    let proxy = CountingProxy::start(&m.addr());
    let c = client::<A>(ClientConfig::new([proxy.addr()]).max_conns(1));
    for verb in WRITES {
        let key = format!("once-{verb}");
        let cas_item = prepare::<A>(&c, verb, &key).await;
        let before = proxy.arrivals(verb);
        proxy.cut_next_reply();
        let res = write::<A>(&c, verb, &key, cas_item).await;
        match res {
            Err(Error::Io(_) | Error::Timeout) => {}
            other => panic!("{verb} whose reply was lost: expected Err(Io or Timeout), got {other:?}"),
        }
        let sent = proxy.arrivals(verb) - before;
        assert_eq!(sent, 1, "{verb} whose reply was lost reached the server {sent} times");
        let expected: Option<&[u8]> = match verb {
            "incr" => Some(b"11"),
            "decr" => Some(b"9"),
            "append" => Some(b"ab+"),
            "prepend" => Some(b"+ab"),
            "delete" => None,
            _ => Some(b"new"),
        };
        // memcached pads a decremented counter with spaces where digits were.
        let stored = m.get_direct(&key).map(|v| v.trim_ascii_end().to_vec());
        assert_eq!(stored.as_deref(), expected, "{verb} applied once");
    }
    // And the client goes on working, on a fresh connection.
    expect_ok!(A::set(&c, &Item::new("after", "v")).await, "set after the lost replies");
}

/// A read is safe to send twice: on a pooled connection whose answer is lost, `get` (and
/// `get_multi`) are resent once on a fresh connection and succeed, as they did before.
pub async fn written_reads_are_resent_once<A: Adapter>() {
    let m = Memcached::start();
    let proxy = CountingProxy::start(&m.addr());
    let c = client::<A>(ClientConfig::new([proxy.addr()]).max_conns(1));
    expect_ok!(A::set(&c, &Item::new("k", "v")).await, "set");
    let before = proxy.arrivals("gets");
    proxy.cut_next_reply();
    check_item(&expect_ok!(A::get(&c, "k").await, "get whose first reply was lost"), "k", b"v", 0, 0);
    assert_eq!(proxy.arrivals("gets") - before, 2, "the get was sent twice: once lost, once answered");
    proxy.cut_next_reply();
    let items = expect_ok!(A::get_multi(&c, &["k", "k2"]).await, "get_multi whose first reply was lost");
    assert_eq!(items.len(), 1, "get_multi after a lost reply: {items:?}");
}

/// Leaves `key` as `verb`'s test needs it, through `c` (so its connection is pooled and has
/// served a call); for `cas`, returns the item with its token.
async fn prepare<A: Adapter>(c: &A::Client, verb: &str, key: &str) -> Option<Item> {
    let initial = match verb {
        "incr" | "decr" => "10",
        "append" | "prepend" => "ab",
        _ => "old",
    };
    if verb == "add" {
        expect_err!(A::get(c, key).await, Error::CacheMiss, "{verb}: {key} is absent");
        return None;
    }
    expect_ok!(A::set(c, &Item::new(key, initial)).await, "{verb}: set {key}");
    if verb != "cas" {
        return None;
    }
    Some(expect_ok!(A::get(c, key).await, "{verb}: gets {key}"))
}

async fn write<A: Adapter>(c: &A::Client, verb: &str, key: &str, cas_item: Option<Item>) -> Res<()> {
    match verb {
        "incr" => A::increment(c, key, 1).await.map(drop),
        "decr" => A::decrement(c, key, 1).await.map(drop),
        "append" => A::append(c, &Item::new(key, "+")).await,
        "prepend" => A::prepend(c, &Item::new(key, "+")).await,
        "add" => A::add(c, &Item::new(key, "new")).await,
        "cas" => {
            let Some(mut item) = cas_item else { panic!("cas needs the item it read") };
            item.value = "new".into();
            A::compare_and_swap(c, &item).await
        }
        "set" => A::set(c, &Item::new(key, "new")).await,
        "delete" => A::delete(c, key).await,
        other => panic!("no write {other}"),
    }
}
