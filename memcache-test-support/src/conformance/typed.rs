//! Typed views (`client.typed(codec)`) against a real server: every typed call, CAS tokens
//! carried by typed items, values other clients stored refused without harm, and the flag
//! conventions shared with pymemcache as memcached itself keeps them.

use memcache_proto::codec::{CodecError, Compressed, Integer, Json, Text, TypedItem, flags};
use memcache_proto::{Error, Item};
use serde::{Deserialize, Serialize};

use super::{Adapter, ClientConfig, client};
use crate::memcached::Memcached;
use crate::typed_view::TypedView;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct User {
    id: u64,
    name: String,
    roles: Vec<String>,
}

fn user(id: u64, name: &str) -> User {
    User { id, name: name.into(), roles: vec!["reader".into()] }
}

/// get, get_multi, set, add and replace through the JSON codec: what the server holds, what
/// comes back, and the raw calls' errors unchanged.
pub async fn typed_calls_store_and_read<A: Adapter>() {
    let m = Memcached::start();
    let c = client::<A>(ClientConfig::new([m.addr()]));
    let users = A::typed::<Json, User>(&c, Json::default());

    expect_err!(users.get("u1").await, Error::CacheMiss, "typed get of an absent key");
    expect_ok!(users.set(&TypedItem::new("u1", user(1, "Ada"))).await, "typed set");
    let held = m.get_direct_item("u1").expect("typed set stored u1");
    assert_eq!(held.flags, flags::JSON, "the server holds the JSON codec's flags");
    assert_eq!(held.value, br#"{"id":1,"name":"Ada","roles":["reader"]}"#, "the server holds JSON");

    let got = expect_ok!(users.get("u1").await, "typed get");
    assert_eq!((got.key.as_str(), &got.value), ("u1", &user(1, "Ada")), "typed get returns the value");
    assert_eq!(got.cas, Some(held.cas), "a typed read carries the CAS token");

    expect_err!(
        users.add(&TypedItem::new("u1", user(9, "x"))).await,
        Error::NotStored,
        "add of a present key"
    );
    expect_ok!(users.add(&TypedItem::new("u2", user(2, "Bo"))).await, "add of an absent key");
    expect_err!(
        users.replace(&TypedItem::new("u3", user(3, "x"))).await,
        Error::NotStored,
        "replace of an absent key"
    );
    expect_ok!(users.replace(&TypedItem::new("u2", user(2, "Bob"))).await, "replace of a present key");
    assert_eq!(m.get_direct("u3"), None, "a refused replace stores nothing");

    let many = expect_ok!(users.get_multi(&["u1", "missing", "u2"]).await, "typed get_multi");
    assert_eq!(many.len(), 2, "missing keys are absent: {many:?}");
    assert_eq!(many["u2"].value, user(2, "Bob"), "get_multi decodes each value");
    assert_eq!(many["u1"].cas, Some(held.cas), "get_multi items carry their CAS token");

    expect_err!(users.get("bad key").await, Error::MalformedKey(_), "a bad key, as for raw calls");
    let expiring = TypedItem::new("u4", user(4, "Cy")).with_expiration(-1);
    expect_ok!(users.set(&expiring).await, "typed set with an expiration in the past");
    expect_err!(users.get("u4").await, Error::CacheMiss, "the typed item's expiration reached the server");
}

/// compare_and_swap: the CAS token read with a typed item decides, as for raw items.
pub async fn typed_compare_and_swap<A: Adapter>() {
    let m = Memcached::start();
    let c = client::<A>(ClientConfig::new([m.addr()]));
    let users = A::typed::<Json, User>(&c, Json::default());
    expect_ok!(users.set(&TypedItem::new("u", user(1, "Ada"))).await, "typed set");

    let mut first = expect_ok!(users.get("u").await, "first typed read");
    let mut second = expect_ok!(users.get("u").await, "second typed read");
    assert!(first.cas.is_some() && first.cas == second.cas, "both reads carry the same token");
    first.value.roles.push("admin".into());
    expect_ok!(users.compare_and_swap(&first).await, "cas with a fresh token");
    second.value.name = "lost update".into();
    expect_err!(users.compare_and_swap(&second).await, Error::CasConflict, "cas with a stale token");
    let now = expect_ok!(users.get("u").await, "read after the race");
    assert_eq!(now.value.roles, ["reader", "admin"], "the winning update is stored, the stale one is not");
    assert_ne!(now.cas, first.cas, "a successful cas gives a new token");

    expect_ok!(A::delete(&c, "u").await, "delete");
    expect_err!(users.compare_and_swap(&now).await, Error::NotStored, "cas of a deleted key");
}

/// A value stored raw and read through the JSON codec is `Error::Codec`, never a value; the
/// connection is kept and the next calls on the same client work.
pub async fn typed_flag_mismatch_keeps_the_client<A: Adapter>() {
    let m = Memcached::start();
    let c = client::<A>(ClientConfig::new([m.addr()]).max_conns(1));
    let users = A::typed::<Json, User>(&c, Json::default());
    // Valid JSON for User, but stored raw (flags 0): the flags decide, not the bytes.
    let raw = Item::new("raw", r#"{"id":5,"name":"raw","roles":[]}"#);
    expect_ok!(A::set(&c, &raw).await, "raw set");
    expect_ok!(users.set(&TypedItem::new("typed", user(1, "Ada"))).await, "typed set");

    let before = m.stat_u64("total_connections");
    for round in 0..3 {
        match users.get("raw").await {
            Err(Error::Codec(CodecError::FlagsMismatch { codec: "json", flags: 0 })) => {}
            other => {
                panic!("round {round}: raw value read as JSON: expected a flags mismatch, got {other:?}")
            }
        }
        let next = expect_ok!(users.get("typed").await, "the next typed call on the same client");
        assert_eq!(next.value, user(1, "Ada"));
        let mixed = users.get_multi(&["typed", "raw"]).await;
        expect_err!(mixed, Error::Codec(CodecError::FlagsMismatch { .. }), "get_multi with a raw value");
        let item = expect_ok!(A::get(&c, "raw").await, "a raw call after the mismatch");
        assert_eq!(item.value, raw.value, "the raw value is untouched");
    }
    let after = m.stat_u64("total_connections");
    assert_eq!(after - before, 1, "only the stats request connected: codec errors keep the connection");

    // The other way round: a typed JSON value is not raw text either.
    let text = A::typed::<Text, String>(&c, Text::with_flags(0));
    expect_err!(
        text.get("typed").await,
        Error::Codec(CodecError::FlagsMismatch { .. }),
        "JSON read as raw text"
    );
    assert_eq!(expect_ok!(text.get("raw").await, "raw text").value, r#"{"id":5,"name":"raw","roles":[]}"#);
}

/// pymemcache's conventions as memcached keeps them: an integer stored with flag `1 << 1` is
/// a counter `incr`/`decr` work on (memcached keeps the flags and pads a shortened number
/// with spaces), text is `1 << 4`, and large text is zlib-compressed under `1 << 3`.
pub async fn typed_values_share_pymemcache_flags<A: Adapter>() {
    let m = Memcached::start();
    let c = client::<A>(ClientConfig::new([m.addr()]));
    let counters = A::typed::<Integer, u64>(&c, Integer::default());
    expect_ok!(counters.set(&TypedItem::new("n", 10)).await, "typed integer set");
    assert_eq!(expect_ok!(A::decrement(&c, "n", 1).await, "decr"), 9);
    let held = m.get_direct_item("n").expect("n is stored");
    assert_eq!(
        (&held.value[..], held.flags),
        (&b"9 "[..], flags::INTEGER),
        "memcached pads in place, keeps flags"
    );
    assert_eq!(expect_ok!(counters.get("n").await, "typed read after decr").value, 9);
    assert_eq!(expect_ok!(A::increment(&c, "n", 33).await, "incr"), 42);
    assert_eq!(expect_ok!(counters.get("n").await, "typed read after incr").value, 42);

    // A value pymemcache's CompressedSerde stored for a long str: flags TEXT | COMPRESSED.
    let texts = A::typed::<Compressed<Text>, String>(&c, Compressed::zlib(Text::default()));
    let long = "a shared cache, many languages. ".repeat(40);
    expect_ok!(texts.set(&TypedItem::new("long", long.clone())).await, "compressed text set");
    let held = m.get_direct_item("long").expect("long is stored");
    assert_eq!(held.flags, flags::TEXT | flags::ZLIB, "pymemcache's flags for compressed text");
    assert!(held.value.len() < long.len() / 4, "stored compressed: {} bytes", held.value.len());
    assert_eq!(expect_ok!(texts.get("long").await, "compressed text read").value, long);
    expect_ok!(texts.set(&TypedItem::new("short", "tiny".to_string())).await, "short text set");
    let held = m.get_direct_item("short").expect("short is stored");
    assert_eq!((&held.value[..], held.flags), (&b"tiny"[..], flags::TEXT), "below the threshold: plain text");
    let plain = A::typed::<Text, String>(&c, Text::default());
    assert_eq!(expect_ok!(plain.get("short").await, "plain text reader").value, "tiny");
    expect_err!(plain.get("long").await, Error::Codec(_), "a reader without zlib refuses compressed text");
}
