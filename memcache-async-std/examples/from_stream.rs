//! The client over a stream you connect yourself (here async-std's; any futures-io stream
//! works, TLS included), then the usual calls.
//!
//! Run against a local memcached: `cargo run -p memcache-async-std --example from_stream -- 127.0.0.1:11211`

use memcache_async_std::{Error, Item, from_stream};

fn main() -> Result<(), Error> {
    async_std::task::block_on(run())
}

async fn run() -> Result<(), Error> {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:11211".to_owned());
    let stream = async_std::net::TcpStream::connect(&addr).await?;
    let client = from_stream(stream)?;

    client.set(&Item::new("demo:async-std", "over a stream I connected").with_flags(1)).await?;
    let item = client.get("demo:async-std").await?;
    println!("get -> {:?} (cas {:?})", String::from_utf8_lossy(&item.value), item.cas);

    let counter = client.increment("demo:async-std-hits", 1).await;
    println!("incr of a missing counter -> {counter:?}");

    match client.delete("demo:async-std-absent").await {
        Err(Error::CacheMiss) => println!("delete of an absent key -> cache miss"),
        other => println!("delete -> {other:?}"),
    }
    Ok(())
}
