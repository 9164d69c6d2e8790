//! Many tasks sharing one client: their requests are pipelined on a few connections.
//!
//! Run against a local memcached: `cargo run --release -p memcache-tokio --example tokio_concurrent -- 127.0.0.1:11211`

use std::time::Instant;

use memcache_tokio::{Client, Error, Item};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:11211".to_owned());
    let client = Client::builder().servers([addr.as_str()]).max_conns_per_server(2).build()?;
    let (tasks, ops) = (64, 2_000);
    let start = Instant::now();
    let mut handles = Vec::new();
    for t in 0..tasks {
        let client = client.clone();
        handles.push(tokio::spawn(async move {
            for i in 0..ops {
                let key = format!("concurrent:{t}:{}", i % 50);
                let value = format!("{t}-{i}");
                client.set(&Item::new(key.as_str(), value.clone())).await?;
                let got = client.get(&key).await?;
                assert_eq!(got.value, value.as_bytes(), "every answer is for its own key");
            }
            Ok::<(), Error>(())
        }));
    }
    for h in handles {
        h.await.expect("task panicked")?;
    }
    let secs = start.elapsed().as_secs_f64();
    let total = tasks * ops * 2;
    println!("{total} ops from {tasks} tasks in {secs:.2}s: {:.0} ops/s", total as f64 / secs);
    Ok(())
}
