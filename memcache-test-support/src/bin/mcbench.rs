//! mcbench: the BENCH.md workloads (W1-W4) for the three client crates.
//!
//! ```text
//! mcbench --adapter blocking|tokio|tokio-ct|async-std|all --addr 127.0.0.1:PORT --workload W1|W2|W3|W4
//!         [--seconds 3] [--workers 32] [--conns 2] [--busy-poll-us 0]
//! ```
//! Prints one JSON line per run on stdout (`--adapter all`: one per adapter, then a table on
//! stderr). W3 shares one `Client` among `--workers` workers (threads for blocking, tasks for
//! the async clients), pipelining on `--conns` connections per server (blocking: a pool of
//! that many idle connections). `--busy-poll-us N` sets the client's `busy_poll` window
//! (default 0: off), see `Builder::busy_poll`.

use std::process::ExitCode;

use memcache_test_support::adapters::{AsyncStd, Blocking, Tokio, TokioCt};
use memcache_test_support::bench::{self, Options, Report, Workload};

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("BENCH FAILURE: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), String> {
    let mut adapter = "tokio".to_owned();
    let mut addr = None;
    let mut workload = None;
    let mut opts = Options::default();
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--adapter" => adapter = value()?,
            "--addr" => addr = Some(value()?),
            "--workload" => workload = Some(value()?.parse::<Workload>()?),
            "--seconds" => opts.seconds = value()?.parse().map_err(|e| format!("--seconds: {e}"))?,
            "--workers" => opts.workers = value()?.parse().map_err(|e| format!("--workers: {e}"))?,
            "--conns" => opts.conns = value()?.parse().map_err(|e| format!("--conns: {e}"))?,
            "--busy-poll-us" => {
                let us = value()?.parse().map_err(|e| format!("--busy-poll-us: {e}"))?;
                opts.busy_poll = std::time::Duration::from_micros(us);
            }
            other => return Err(format!("unknown flag {other}")),
        }
    }
    let addr = addr.ok_or("--addr is required")?;
    let workload = workload.ok_or("--workload is required")?;
    let adapters: Vec<&str> = match adapter.as_str() {
        "all" => vec!["blocking", "tokio", "async-std"],
        one => vec![one],
    };
    let mut reports = Vec::new();
    for a in &adapters {
        let report = match *a {
            "blocking" => bench::run::<Blocking>(workload, &addr, &opts),
            "tokio" => bench::run::<Tokio>(workload, &addr, &opts),
            "tokio-ct" => bench::run::<TokioCt>(workload, &addr, &opts),
            "async-std" => bench::run::<AsyncStd>(workload, &addr, &opts),
            other => {
                return Err(format!("unknown adapter {other} (blocking, tokio, tokio-ct, async-std, all)"));
            }
        }?;
        println!("{}", report.json());
        reports.push(report);
    }
    if reports.len() > 1 {
        table(&reports);
    }
    Ok(())
}

fn table(reports: &[Report]) {
    eprintln!(
        "{:<34} {:>9} {:>12} {:>9} {:>9} {:>9}",
        "client", "workload", "ops/s", "p50 µs", "p99 µs", "MB/s"
    );
    for r in reports {
        let opt = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.1}"));
        eprintln!(
            "{:<34} {:>9} {:>12.0} {:>9} {:>9} {:>9}",
            r.client,
            format!("{:?}", r.workload),
            r.ops_per_s(),
            opt(r.p50_us),
            opt(r.p99_us),
            opt(r.mb_per_s)
        );
    }
}
