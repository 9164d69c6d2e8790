//! Connect, set, get, multi-get and a compare-and-swap loop on Tokio.
//!
//! Run against a local memcached: `cargo run -p memcache-tokio --example tokio_basic -- 127.0.0.1:11211`

use memcache_tokio::{Client, Error, Item};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:11211".to_owned());
    let client = Client::new([addr.as_str()])?;
    client.ping().await?;

    client.set(&Item::new("demo:greeting", "hello from tokio").with_expiration(300)).await?;
    let item = client.get("demo:greeting").await?;
    println!("get demo:greeting -> {:?}", String::from_utf8_lossy(&item.value));

    for i in 0..3 {
        client.set(&Item::new(format!("demo:k{i}"), format!("value {i}"))).await?;
    }
    let found = client.get_multi(&["demo:k0", "demo:k1", "demo:k2", "demo:absent"]).await?;
    println!("get_multi -> {} of 4 keys", found.len());

    client.set(&Item::new("demo:counter", "0")).await?;
    for _ in 0..5 {
        loop {
            let mut item = client.get("demo:counter").await?;
            let n: u64 = String::from_utf8_lossy(&item.value).parse().unwrap_or(0);
            item.value = (n + 1).to_string().into();
            match client.compare_and_swap(&item).await {
                Ok(()) => break,
                Err(Error::CasConflict) => continue,
                Err(e) => return Err(e),
            }
        }
    }
    println!(
        "cas loop -> demo:counter = {}",
        String::from_utf8_lossy(&client.get("demo:counter").await?.value)
    );
    Ok(())
}
