//! A thundering herd tamed with a lease: 64 tasks ask for the same missing key at once, and
//! exactly one of them computes the value; the others wait for it instead of all hitting the
//! backend.
//!
//! Run against a local memcached (1.6.10 or newer):
//! `cargo run -p memcache-tokio --example thundering_herd -- 127.0.0.1:11211`

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use memcache_tokio::meta::{Leased, MetaSet};
use memcache_tokio::{Client, Error};

/// The expensive computation the cache protects (a database query, a render...).
async fn compute(key: &str) -> Bytes {
    tokio::time::sleep(Duration::from_millis(50)).await;
    Bytes::from(format!("value of {key}"))
}

/// The lease recipe: a hit is served; the one caller that wins the lease computes and stores
/// with the lease's CAS; the others back off briefly and ask again.
async fn get_or_compute(client: &Client, key: &str, computed: &AtomicUsize) -> Result<Bytes, Error> {
    loop {
        match client.get_or_lease(key, 30).await? {
            Leased::Hit(item) => return Ok(item.value),
            Leased::Fill { cas } => {
                computed.fetch_add(1, Ordering::Relaxed);
                let value = compute(key).await;
                client.meta_set(MetaSet::new(key, value.clone())?.cas(cas).exptime(300)).await?;
                return Ok(value);
            }
            // Busy: someone else is computing it.
            _ => tokio::time::sleep(Duration::from_millis(5)).await,
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:11211".to_owned());
    let client = Client::new([addr.as_str()])?;
    let stamp = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    let key = format!("herd:{}:{stamp}", std::process::id());
    let computed = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..64)
        .map(|_| {
            let (client, key, computed) = (client.clone(), key.clone(), computed.clone());
            tokio::spawn(async move { get_or_compute(&client, &key, &computed).await })
        })
        .collect();
    for task in tasks {
        let value = task.await.expect("task panicked")?;
        assert_eq!(value, format!("value of {key}").as_bytes(), "every task gets the value");
    }
    let n = computed.load(Ordering::Relaxed);
    println!("64 tasks asked for one missing key; {n} computed it");
    Ok(())
}
