//! mcbench: the BENCH.md workloads (W1-W4) for the three client crates, and M2 (W2's rounds
//! as 100-key meta batches).
//!
//! ```text
//! mcbench --adapter blocking|tokio|tokio-ct|async-std|smol|libmemcached|all --addr 127.0.0.1:PORT
//!         --workload W1|W2|W3|W4|M2 [--from task|main] [--seconds 3] [--workers 32] [--conns N]
//!         [--busy-poll-us 0] [--repeat 1] [--libmemcached PATH] [--observer]
//! mcbench --tls --adapter ... --workload W1|W3 [the same flags, no --addr]
//! ```
//! Prints one JSON line per run on stdout (`--adapter all`: one per adapter, then a table on
//! stderr). W3 shares one `Client` among `--workers` workers (threads for blocking, tasks for
//! the async clients), on at most `--conns` connections per server (`max_conns_per_server`;
//! without it, the client's defaults: blocking opens one per worker, the async clients
//! pipeline on two). `--busy-poll-us N` sets the client's `busy_poll` window
//! (default 0: off), see `Builder::busy_poll`.
//!
//! `--from task` (the default) runs the workload as a task spawned on the runtime (on Tokio's
//! multi-thread runtime: on a worker) and awaits it from `block_on`; `--from main` runs it in
//! `block_on` itself, on the runtime's own thread (`#[tokio::main]`'s body, a CLI, a test),
//! which on Tokio's multi-thread runtime is not a worker. Such a run's client name ends in
//! `from main`. The blocking client runs on one thread either way.
//!
//! `--adapter libmemcached` runs W1 or W2 through libmemcached: the C program
//! `bench/libmemcached.c`, which `scripts/bench.sh` compiles (`--libmemcached PATH` names the
//! compiled program; default `libmemcached-bench` beside `mcbench`).
//!
//! `--adapter floor-blocking|floor-tokio|floor-async-std|floor-smol` runs W1 or W2 with no
//! client: the workload's request bytes over the runtime's own socket, read until the reply
//! is complete (`memcache_test_support::floor`). What a client adds to its runtime's floor is
//! the client's cost; what a runtime's floor loses to the blocking one, no client on it can win.
//!
//! `--adapter` also takes a comma-separated list. `--repeat N` runs the list N times,
//! interleaved, each round starting one entry further along (a, b, c; b, c, a; c, a, b; ...)
//! so that no entry always runs first or after the same neighbour, and ends with each entry's
//! median, min and max, then each entry's ratio to the first entry: the median (and range) of
//! the ratios taken within each round. On a machine whose speed drifts from second to second,
//! same-round ratios compare clients fairly where two back-to-back runs may not.
//!
//! An entry may carry modifiers after `+`: `observer` (an observer that only counts events,
//! `bench::CountingObserver`, as `--observer` installs in every client), `main` or `task`
//! (where it runs, as `--from`), `conns=N` (as `--conns`). So one run interleaves shapes:
//! `--adapter libmemcached,blocking,tokio,tokio+main` or `--adapter tokio,tokio+conns=32`.
//!
//! `--tls` starts its own `memcached -Z` (memcache-test-support's launcher, with certificates
//! generated for the run; `MEMCACHED_BIN` or `memcached` on the `PATH`), which listens with TLS
//! and, on a second port, without. Each adapter of the list then runs twice in a row, plain
//! and then over TLS (client name `... over TLS`), against the same server process, so that
//! `--repeat` interleaves all of them and their medians compare plain and TLS directly.

use std::process::ExitCode;

use memcache_test_support::Memcached;
use memcache_test_support::adapters::{AsyncStd, Blocking, Smol, Tokio, TokioCt};
use memcache_test_support::bench::{self, Options, Report, Workload};
use memcache_test_support::tls::{TlsServer, pki};

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
    let mut repeat = 1usize;
    let mut libmemcached = None;
    let mut tls = false;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--adapter" => adapter = value()?,
            "--addr" => addr = Some(value()?),
            "--workload" => workload = Some(value()?.parse::<Workload>()?),
            "--seconds" => opts.seconds = value()?.parse().map_err(|e| format!("--seconds: {e}"))?,
            "--workers" => opts.workers = value()?.parse().map_err(|e| format!("--workers: {e}"))?,
            "--conns" => opts.conns = Some(value()?.parse().map_err(|e| format!("--conns: {e}"))?),
            "--repeat" => repeat = value()?.parse().map_err(|e| format!("--repeat: {e}"))?,
            "--from" => opts.from = value()?.parse()?,
            "--observer" => opts.observer = true,
            "--tls" => tls = true,
            "--libmemcached" => libmemcached = Some(std::path::PathBuf::from(value()?)),
            "--busy-poll-us" => {
                let us = value()?.parse().map_err(|e| format!("--busy-poll-us: {e}"))?;
                opts.busy_poll = std::time::Duration::from_micros(us);
            }
            other => return Err(format!("unknown flag {other}")),
        }
    }
    let workload = workload.ok_or("--workload is required")?;
    let adapters: Vec<&str> = match adapter.as_str() {
        "all" => vec!["blocking", "tokio", "async-std", "smol"],
        list => list.split(',').collect(),
    };
    // Each run: where, and with what TLS.
    let (_server, runs) = if tls {
        if addr.is_some() {
            return Err("--tls starts its own memcached -Z: leave out --addr".into());
        }
        let server = Memcached::start_tls(TlsServer::plain());
        let runs = vec![(server.plain_addr(), None), (server.addr(), Some(pki().client()))];
        (Some(server), runs)
    } else {
        (None, vec![(addr.ok_or("--addr is required")?, None)])
    };
    let specs: Vec<Spec<'_>> = adapters.iter().map(|a| Spec::parse(a, &opts)).collect::<Result<_, _>>()?;
    let mut reports: Vec<Run> = Vec::new();
    for round in 0..repeat.max(1) {
        // Each round starts one entry further along the list, so that no entry always runs
        // first (or right after the same other one): order effects cancel over the rounds.
        for i in 0..specs.len() {
            let entry = (i + round) % specs.len();
            let spec = &specs[entry];
            // libmemcached's bench program speaks plain text only.
            for (addr, tls) in runs.iter().filter(|(_, tls)| tls.is_none() || spec.adapter != "libmemcached")
            {
                let opts = Options { tls: tls.clone(), ..spec.opts.clone() };
                let report = run_one(spec.adapter, workload, addr, &opts, libmemcached.as_deref())?;
                println!("{}", report.json());
                let label =
                    if tls.is_some() { format!("{} over TLS", spec.label) } else { spec.label.to_owned() };
                reports.push(Run { round, label, report });
            }
        }
    }
    if repeat > 1 {
        spread(&reports);
        ratios(&reports);
    } else if reports.len() > 1 {
        table(&reports);
    }
    Ok(())
}

/// One entry of `--adapter`: an adapter, then modifiers, each after a `+`: `observer`,
/// `main` or `task` (where it runs, as `--from`), `conns=N` (as `--conns`). So one list can
/// interleave shapes: `--adapter tokio,tokio+main,tokio+conns=32`.
struct Spec<'a> {
    label: &'a str,
    adapter: &'a str,
    opts: Options,
}

impl<'a> Spec<'a> {
    fn parse(label: &'a str, base: &Options) -> Result<Spec<'a>, String> {
        let mut parts = label.split('+');
        let adapter = parts.next().unwrap_or_default();
        let mut opts = base.clone();
        for modifier in parts {
            match (modifier, modifier.strip_prefix("conns=")) {
                ("observer", _) => opts.observer = true,
                ("main" | "task", _) => opts.from = modifier.parse()?,
                (_, Some(n)) => opts.conns = Some(n.parse().map_err(|e| format!("{label}: {e}"))?),
                _ => return Err(format!("{label}: unknown +{modifier} (observer, main, task, conns=N)")),
            }
        }
        Ok(Spec { label, adapter, opts })
    }
}

/// A run's report, with the round it ran in and its entry's label.
struct Run {
    round: usize,
    label: String,
    report: Report,
}

/// One run of `workload` by adapter `a`.
fn run_one(
    a: &str,
    workload: Workload,
    addr: &str,
    opts: &Options,
    libmemcached: Option<&std::path::Path>,
) -> Result<Report, String> {
    match a {
        "blocking" => bench::run::<Blocking>(workload, addr, opts),
        "tokio" => bench::run::<Tokio>(workload, addr, opts),
        "tokio-ct" => bench::run::<TokioCt>(workload, addr, opts),
        "async-std" => bench::run::<AsyncStd>(workload, addr, opts),
        "smol" => bench::run::<Smol>(workload, addr, opts),
        "libmemcached" => run_libmemcached(libmemcached, workload, addr),
        floor if floor.starts_with("floor-") => run_floor(floor, workload, addr, opts.from),
        other => Err(format!(
            "unknown adapter {other} (blocking, tokio, tokio-ct, async-std, smol, libmemcached, \
             floor-blocking, floor-tokio, floor-async-std, floor-smol, all)"
        )),
    }
}

/// The floor under `workload` on a runtime's own socket (see `memcache_test_support::floor`).
fn run_floor(name: &str, workload: Workload, addr: &str, from: bench::From) -> Result<Report, String> {
    use memcache_test_support::adapters::{AsyncStdExecutor, SmolExecutor, TokioMultiThread};
    use memcache_test_support::bench::From;
    use memcache_test_support::floor::{self, FuturesIo, Inline, Std};
    let addr = addr.to_owned();
    match name {
        "floor-blocking" => floor::run::<_, Inline>("std", workload, From::Task, async move {
            let s = std::net::TcpStream::connect(&addr)?;
            s.set_nodelay(true)?;
            Ok(Std(s))
        }),
        "floor-tokio" => floor::run::<_, TokioMultiThread>("tokio", workload, from, async move {
            let s = tokio::net::TcpStream::connect(&addr).await?;
            s.set_nodelay(true)?;
            Ok(floor::Tokio(s))
        }),
        "floor-async-std" => floor::run::<_, AsyncStdExecutor>("async-std", workload, from, async move {
            let s = async_std::net::TcpStream::connect(&addr).await?;
            s.set_nodelay(true)?;
            Ok(FuturesIo(s))
        }),
        "floor-smol" => floor::run::<_, SmolExecutor>("smol", workload, from, async move {
            let s = smol::net::TcpStream::connect(&addr).await?;
            s.set_nodelay(true)?;
            Ok(FuturesIo(s))
        }),
        other => {
            Err(format!("unknown floor {other} (floor-blocking, floor-tokio, floor-async-std, floor-smol)"))
        }
    }
}

/// Runs `bench/libmemcached.c`'s program (compiled by `scripts/bench.sh`) and reads its
/// JSON line back.
fn run_libmemcached(
    path: Option<&std::path::Path>,
    workload: Workload,
    addr: &str,
) -> Result<Report, String> {
    let path = match path {
        Some(p) => p.to_owned(),
        None => std::env::current_exe().map_err(|e| e.to_string())?.with_file_name("libmemcached-bench"),
    };
    let out = std::process::Command::new(&path)
        .args([addr, &format!("{workload:?}")])
        .output()
        .map_err(|e| format!("{}: {e} (scripts/bench.sh compiles it)", path.display()))?;
    if !out.status.success() {
        return Err(format!("libmemcached: {}", String::from_utf8_lossy(&out.stderr).trim()));
    }
    let line = String::from_utf8_lossy(&out.stdout);
    Report::parse(line.trim(), workload).ok_or_else(|| format!("libmemcached printed {line:?}"))
}

/// Median, min and max of each client's headline figure over the repeated runs, and the
/// median p50 and p99 latencies.
fn spread(runs: &[Run]) {
    eprintln!(
        "{:<40} {:>9} {:>5} {:>12} {:>12} {:>12} {:>9} {:>9}",
        "entry", "workload", "runs", "median", "min", "max", "p50 µs", "p99 µs"
    );
    for label in labels(runs) {
        let of = || runs.iter().filter(|r| r.label == label).map(|r| &r.report);
        let mut figures: Vec<f64> = of().map(|r| r.mb_per_s.unwrap_or(r.ops_per_s())).collect();
        figures.sort_by(f64::total_cmp);
        let (min, median, max) = (figures[0], figures[figures.len() / 2], figures[figures.len() - 1]);
        let workload = format!("{:?}", runs[0].report.workload);
        let latency = |f: fn(&Report) -> Option<f64>| median_of(of().filter_map(f).collect());
        let (p50, p99) = (latency(|r| r.p50_us), latency(|r| r.p99_us));
        eprintln!(
            "{label:<40} {workload:>9} {:>5} {median:>12.0} {min:>12.0} {max:>12.0} {p50:>9} {p99:>9}",
            figures.len()
        );
    }
}

/// Each entry's figure over the first entry's in the same round: the median of those
/// per-round ratios, and their range. A ratio from one round compares two runs a few
/// seconds apart, which a machine whose speed drifts from minute to minute needs.
fn ratios(runs: &[Run]) {
    let labels = labels(runs);
    let Some(base) = labels.first() else { return };
    eprintln!("\n{:<40} {:>14} {:>16}", format!("entry / {base}"), "median ratio", "min-max");
    let figure = |round: usize, label: &str| {
        let r = runs.iter().find(|r| r.round == round && r.label == label)?;
        Some(r.report.mb_per_s.unwrap_or(r.report.ops_per_s()))
    };
    let rounds = runs.iter().map(|r| r.round).max().map_or(0, |n| n + 1);
    for label in &labels[1..] {
        let mut per_round: Vec<f64> =
            (0..rounds).filter_map(|n| Some(figure(n, label)? / figure(n, base)?)).collect();
        per_round.sort_by(f64::total_cmp);
        let (Some(min), Some(max)) = (per_round.first(), per_round.last()) else { continue };
        let median = per_round[per_round.len() / 2];
        eprintln!("{label:<40} {median:>14.2} {:>16}", format!("{min:.2}-{max:.2}"));
    }
}

/// The entries' labels, in the order of the list (round 0 runs it in that order).
fn labels(runs: &[Run]) -> Vec<String> {
    let mut labels: Vec<String> = Vec::new();
    for r in runs {
        if !labels.contains(&r.label) {
            labels.push(r.label.clone());
        }
    }
    labels
}

fn median_of(mut v: Vec<f64>) -> String {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).map_or("-".to_owned(), |v| format!("{v:.1}"))
}

fn table(runs: &[Run]) {
    eprintln!(
        "{:<40} {:>9} {:>12} {:>9} {:>9} {:>9}",
        "client", "workload", "ops/s", "p50 µs", "p99 µs", "MB/s"
    );
    for Run { report: r, .. } in runs {
        let opt = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.1}"));
        eprintln!(
            "{:<40} {:>9} {:>12.0} {:>9} {:>9} {:>9}",
            r.client,
            format!("{:?}", r.workload),
            r.ops_per_s(),
            opt(r.p50_us),
            opt(r.p99_us),
            opt(r.mb_per_s)
        );
    }
}
