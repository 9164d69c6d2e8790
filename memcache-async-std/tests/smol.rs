//! The smol client over streams a smol connector opens: no async-std runtime anywhere.
#![cfg(feature = "smol")]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use memcache_async_std::smol::Client;
use memcache_async_std::{Error, Item, ServerAddr, connector};
use memcache_test_support::Memcached;

#[test]
fn client_runs_on_smol_through_a_connector() {
    let mut server = Memcached::start();
    let opened = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&opened);
    let client = Client::builder()
        .servers([server.addr()])
        .connector(connector(move |addr: &ServerAddr| {
            counter.fetch_add(1, Ordering::SeqCst);
            smol::net::TcpStream::connect(addr.to_string())
        }))
        .build()
        .expect("client");
    smol::block_on(async {
        client.set(&Item::new("smol:key", "smol value").with_flags(7)).await.expect("set");
        let item = client.get("smol:key").await.expect("get");
        assert_eq!(&item.value[..], b"smol value");
        assert_eq!(item.flags, 7);
        assert!(matches!(client.get("smol:absent").await, Err(Error::CacheMiss)));
        let many = client.get_multi(&["smol:key", "smol:absent"]).await.expect("get_multi");
        assert_eq!(many.len(), 1);
        assert!(matches!(client.increment("smol:absent", 1).await, Err(Error::CacheMiss)));
    });
    assert_eq!(server.get_direct("smol:key").as_deref(), Some(&b"smol value"[..]));
    let before = opened.load(Ordering::SeqCst);
    assert!(before >= 1, "the connector opened the connections");

    // Unlike a stream handed over once, the connector reconnects after the server restarts.
    server.restart();
    smol::block_on(async {
        assert!(
            matches!(client.get("smol:key").await, Err(Error::CacheMiss)),
            "the restarted server is empty"
        );
        client.set(&Item::new("smol:key", "again")).await.expect("set after restart");
    });
    assert!(opened.load(Ordering::SeqCst) > before, "a new connection through the connector");
    assert_eq!(server.get_direct("smol:key").as_deref(), Some(&b"again"[..]));
}
