//! The smol client opening its connections through a connector: here smol's own TCP sockets,
//! counted; a connector could as well go through a proxy or pick a Unix socket per server.
//! The client calls it for every new connection, so it reconnects after failures.
//!
//! Run against a local memcached:
//! `cargo run -p memcache-async-std --features smol --example async_std_connector -- 127.0.0.1:11211`

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use memcache_async_std::smol::Client;
use memcache_async_std::{Error, Item, ServerAddr, connector};

fn main() -> Result<(), Error> {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:11211".to_owned());
    let opened = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&opened);
    let client = Client::builder()
        .servers([addr])
        .connector(connector(move |server: &ServerAddr| {
            counter.fetch_add(1, Ordering::Relaxed);
            smol::net::TcpStream::connect(server.to_string())
        }))
        .build()?;
    smol::block_on(async {
        client.set(&Item::new("demo:connector", "via my connector").with_flags(1)).await?;
        let item = client.get("demo:connector").await?;
        println!("get -> {:?} (cas {:?})", String::from_utf8_lossy(&item.value), item.cas);
        println!("connections opened by the connector: {}", opened.load(Ordering::Relaxed));
        Ok(())
    })
}
