//! An observer that counts hits, misses and errors and keeps each server's latencies, then
//! prints a summary (p50, p99) and the pool statistics after a short workload.
//!
//! Run against a local memcached (`MEMCACHED` names another):
//! `MEMCACHED=127.0.0.1:11211 cargo run -p memcache-blocking --example metrics`

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use memcache_blocking::observe::{ConnectionEvent, Observer, OperationEvent, Outcome};
use memcache_blocking::{Client, Error, Item};

/// What the client reported. Observer methods run inline on the calling thread: a counter
/// and a push under a short lock are fine; anything slow belongs on a channel.
#[derive(Default)]
struct Metrics {
    hits: AtomicU64,
    misses: AtomicU64,
    errors: AtomicU64,
    latencies: Mutex<HashMap<String, Vec<Duration>>>,
}

impl Observer for Metrics {
    fn operation(&self, e: &OperationEvent<'_>) {
        match e.outcome {
            Outcome::Hit(_) => self.hits.fetch_add(1, Relaxed),
            Outcome::Miss => self.misses.fetch_add(1, Relaxed),
            Outcome::Error(_) | Outcome::Cancelled => self.errors.fetch_add(1, Relaxed),
            _ => 0,
        };
        let mut latencies = self.latencies.lock().unwrap_or_else(|p| p.into_inner());
        latencies.entry(e.server.to_string()).or_default().push(e.duration);
    }

    fn connection(&self, e: &ConnectionEvent<'_>) {
        if let ConnectionEvent::Closed { server, reason } = e {
            eprintln!("connection to {server} closed: {reason}");
        }
    }
}

/// The `p`-th percentile of sorted `values`.
fn percentile(sorted: &[Duration], p: usize) -> Duration {
    sorted.get((sorted.len().saturating_sub(1)) * p / 100).copied().unwrap_or_default()
}

fn main() -> Result<(), Error> {
    let addr = std::env::var("MEMCACHED").unwrap_or_else(|_| "127.0.0.1:11211".to_owned());
    let metrics = Arc::new(Metrics::default());
    let client = Client::builder().servers([addr.as_str()]).observer(metrics.clone()).build()?;

    // Every other key is stored, so about half the reads miss.
    for i in 0..2_000 {
        let key = format!("metrics:{i}");
        if i % 2 == 0 {
            client.set(&Item::new(key.as_str(), "value").with_expiration(60))?;
        }
        match client.get(&key) {
            Ok(_) | Err(Error::CacheMiss) => {}
            Err(e) => eprintln!("get {key}: {e}"),
        }
    }

    println!(
        "hits {}, misses {}, errors {}",
        metrics.hits.load(Relaxed),
        metrics.misses.load(Relaxed),
        metrics.errors.load(Relaxed)
    );
    let mut latencies = metrics.latencies.lock().unwrap_or_else(|p| p.into_inner());
    for (server, values) in latencies.iter_mut() {
        values.sort();
        let (p50, p99) = (percentile(values, 50), percentile(values, 99));
        println!("{server}: {} requests, p50 {p50:?}, p99 {p99:?}", values.len());
    }
    for (server, stats) in client.pool_stats() {
        println!(
            "{server}: {} open ({} idle), {} created, closed {:?}",
            stats.open, stats.idle, stats.created, stats.closed
        );
    }
    Ok(())
}
