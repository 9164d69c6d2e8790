//! The chaos soak: the three adapters, one after another, against three real memcached servers
//! behind proxies that inject stalls, resets, garbage, half replies and slow reads at random
//! (seeded), with calls cancelled at random; every answer checked against a model.
//!
//! `cargo run --release -p memcache-test-support --bin soak -- --ops 1000000 --seed 1`
//!
//! Options: `--ops N` (all adapters together, default 30,000), `--seed S` (default 1),
//! `--workers W` per adapter (default 8), `--faults PPM` (reply chunks with a fault, per
//! million, default 2,000), `--cancel PCT` (calls cancelled, default 5), `--timeout-ms T`
//! (default 100). Prints, per adapter and in all: calls, errors by kind, wrong answers, faults
//! injected; then the process's peak memory. Exits with 1 if any answer was wrong.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use memcache_test_support::adapters::{AsyncStd, Blocking, Tokio};
use memcache_test_support::conformance::Adapter;
use memcache_test_support::fault::Chaos;
use memcache_test_support::soak::{ChaosCluster, SoakConfig, SoakReport, soak};

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    match args.iter().position(|a| a == name) {
        Some(i) => args.get(i + 1).and_then(|v| v.parse().ok()).unwrap_or_else(|| {
            eprintln!("{name} needs a number");
            std::process::exit(2)
        }),
        None => default,
    }
}

fn main() {
    let (ops, seed) = (arg("--ops", 30_000), arg("--seed", 1));
    let chaos = Chaos { seed, per_million: arg("--faults", 2_000), stall: Duration::from_millis(300) };
    let cluster = ChaosCluster::start(3, chaos);
    let cfg = SoakConfig {
        ops: ops / 3,
        seed,
        workers: arg("--workers", 8),
        timeout: Duration::from_millis(arg("--timeout-ms", 100)),
        cancel_percent: arg("--cancel", 5),
        prefix: String::new(),
    };
    println!("soak: {ops} calls, seed {seed}, {chaos:?}, {cfg:?}");
    let mut total = Total::default();
    total.run::<Blocking>(&cluster, &cfg, "b");
    total.run::<Tokio>(&cluster, &cfg, "t");
    total.run::<AsyncStd>(&cluster, &cfg, "a");
    println!("all: {} calls, errors {:?}, wrong answers {}", total.ops, total.errors, total.wrong);
    println!("faults injected: {:?}", cluster.injected());
    println!("peak memory (VmHWM): {}", peak_memory());
    if total.wrong > 0 {
        std::process::exit(1);
    }
}

#[derive(Default)]
struct Total {
    ops: u64,
    errors: BTreeMap<String, u64>,
    wrong: u64,
}

impl Total {
    fn run<A: Adapter>(&mut self, cluster: &ChaosCluster, cfg: &SoakConfig, tag: &str) {
        let cfg = SoakConfig { prefix: format!("{tag}{}", cfg.seed), ..cfg.clone() };
        let before = cluster.injected();
        let start = Instant::now();
        let report: SoakReport = A::block_on(soak::<A>(cluster, &cfg));
        let secs = start.elapsed().as_secs_f64();
        let injected: BTreeMap<_, _> = cluster
            .injected()
            .into_iter()
            .map(|(k, v)| (k, v - before.get(k).copied().unwrap_or(0)))
            .collect();
        println!(
            "{}: {} calls in {secs:.1} s, errors {:?}, wrong answers {}, late cancelled writes read {}, faults {injected:?}",
            A::NAME,
            report.ops,
            report.errors,
            report.wrong,
            report.late_cancelled
        );
        for example in &report.wrong_examples {
            println!("  wrong: {example}");
        }
        self.ops += report.ops;
        for (k, v) in report.errors {
            *self.errors.entry(k).or_default() += v;
        }
        self.wrong += report.wrong;
    }
}

/// The process's peak resident memory, from `/proc/self/status`.
fn peak_memory() -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmHWM:")).map(|l| l[6..].trim().to_string()))
        .unwrap_or_else(|| "unknown".into())
}
