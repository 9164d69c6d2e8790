//! Connect, set, get, multi-get and a compare-and-swap loop.
//!
//! Run against a local memcached: `cargo run -p memcache-blocking --example basic -- 127.0.0.1:11211`

use memcache_blocking::{Client, Error, Item};

fn main() -> Result<(), Error> {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:11211".to_owned());
    let client = Client::new([addr.as_str()])?;
    client.ping()?;

    client.set(&Item::new("demo:greeting", "hello, memcached").with_flags(42).with_expiration(300))?;
    let item = client.get("demo:greeting")?;
    println!("get demo:greeting -> {:?} (flags {})", String::from_utf8_lossy(&item.value), item.flags);

    for i in 0..3 {
        client.set(&Item::new(format!("demo:k{i}"), format!("value {i}")))?;
    }
    let found = client.get_multi(&["demo:k0", "demo:k1", "demo:k2", "demo:absent"])?;
    let mut keys: Vec<_> = found.keys().collect();
    keys.sort();
    println!("get_multi -> {} of 4 keys: {keys:?}", found.len());

    // A compare-and-swap loop: read, modify, write back only if nobody changed it meanwhile.
    client.set(&Item::new("demo:counter", "0"))?;
    for _ in 0..5 {
        loop {
            let mut item = client.get("demo:counter")?;
            let n: u64 = String::from_utf8_lossy(&item.value).parse().unwrap_or(0);
            item.value = (n + 1).to_string().into();
            match client.compare_and_swap(&item) {
                Ok(()) => break,
                Err(Error::CasConflict) => continue,
                Err(e) => return Err(e),
            }
        }
    }
    let counter = client.get("demo:counter")?;
    println!("cas loop -> demo:counter = {}", String::from_utf8_lossy(&counter.value));

    match client.get("demo:absent") {
        Err(Error::CacheMiss) => println!("get demo:absent -> cache miss"),
        other => println!("get demo:absent -> {other:?}"),
    }
    println!("incr -> {}", {
        client.set(&Item::new("demo:hits", "10"))?;
        client.increment("demo:hits", 5)?
    });
    Ok(())
}
