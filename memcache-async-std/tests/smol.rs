//! The smol client over a stream smol connected: no async-std runtime anywhere.
#![cfg(feature = "smol")]

use memcache_async_std::smol::from_stream;
use memcache_async_std::{Error, Item};
use memcache_test_support::Memcached;

#[test]
fn client_runs_on_smol_through_a_connected_stream() {
    let server = Memcached::start();
    smol::block_on(async {
        let stream = smol::net::TcpStream::connect(server.addr()).await.expect("connect with smol");
        let client = from_stream(stream).expect("client");
        client.set(&Item::new("smol:key", "smol value").with_flags(7)).await.expect("set");
        let item = client.get("smol:key").await.expect("get");
        assert_eq!(&item.value[..], b"smol value");
        assert_eq!(item.flags, 7);
        assert!(matches!(client.get("smol:absent").await, Err(Error::CacheMiss)));
        let many = client.get_multi(&["smol:key", "smol:absent"]).await.expect("get_multi");
        assert_eq!(many.len(), 1);
        assert!(matches!(client.increment("smol:absent", 1).await, Err(Error::CacheMiss)));
    });
    // The server saw the client's traffic on exactly the one stream it was handed.
    assert_eq!(server.get_direct("smol:key").as_deref(), Some(&b"smol value"[..]));
}
