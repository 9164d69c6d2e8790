//! The BENCH.md workloads W1-W4, written once for every adapter (through the conformance
//! suite's [`Adapter`] trait), and their JSON report.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use memcache_proto::Item;

use crate::conformance::{Adapter, ClientConfig};

/// A workload of BENCH.md.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workload {
    /// 20,000 x (set, get) of 100-byte values on one connection.
    W1,
    /// 2,000 rounds of a 100-key `get_multi` over 10,000 preloaded keys.
    W2,
    /// Many workers doing random `get`s for a fixed time on one shared client.
    W3,
    /// 200 x (set, get) of 512 KiB values on one connection.
    W4,
    /// W2 through the meta protocol: each round is a 100-key `meta_batch` of `mg`s (one quiet
    /// batch per server) instead of a `get_multi`. Not a BENCH.md workload; its figure goes
    /// beside W2's.
    M2,
}

impl std::str::FromStr for Workload {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_uppercase().as_str() {
            "W1" => Ok(Workload::W1),
            "W2" => Ok(Workload::W2),
            "W3" => Ok(Workload::W3),
            "W4" => Ok(Workload::W4),
            "M2" => Ok(Workload::M2),
            _ => Err(format!("unknown workload {s:?} (W1, W2, W3, W4 or M2)")),
        }
    }
}

/// Knobs beyond BENCH.md's contract.
#[derive(Debug, Clone)]
pub struct Options {
    /// W3 duration.
    pub seconds: f64,
    /// W3 workers.
    pub workers: usize,
    /// Connections per server for W3 (`max_conns_per_server`); `None`: the client's default.
    pub conns: Option<usize>,
    /// The client's busy-polling window (`Builder::busy_poll`), zero for off.
    pub busy_poll: Duration,
    /// Where the workload runs.
    pub from: From,
    /// Installs a [`CountingObserver`] (`mcbench --observer`, or an adapter name ending in
    /// `+observer`): what an observer that only counts costs.
    pub observer: bool,
    /// TLS (`Builder::tls`) for the client, `None` for plain text. A TLS run's client name
    /// ends in `over TLS`.
    pub tls: Option<memcache_proto::tls::TlsConfig>,
}

/// The cheapest useful observer: counts operations and connection events in two atomics.
/// What `mcbench --observer` measures the cost of reporting with.
#[derive(Debug, Default)]
pub struct CountingObserver {
    /// Operation events heard.
    pub operations: std::sync::atomic::AtomicU64,
    /// Connection events heard.
    pub connections: std::sync::atomic::AtomicU64,
}

impl memcache_proto::observe::Observer for CountingObserver {
    fn operation(&self, _: &memcache_proto::observe::OperationEvent<'_>) {
        self.operations.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
    fn connection(&self, _: &memcache_proto::observe::ConnectionEvent<'_>) {
        self.connections.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
}

impl Default for Options {
    fn default() -> Self {
        Options {
            seconds: 3.0,
            workers: 32,
            conns: None,
            busy_poll: Duration::ZERO,
            from: From::Task,
            observer: false,
            tls: None,
        }
    }
}

/// Where a workload's calls are made from (`mcbench --from`): both are how applications call
/// an async client, and they cost different hand-offs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum From {
    /// A task spawned on the runtime (Tokio: a worker thread), awaited by `block_on`.
    Task,
    /// The runtime's own `block_on` thread (a CLI's or test's body, `#[tokio::main]`'s
    /// function), which on Tokio's multi-thread runtime is not a worker.
    Main,
}

impl std::str::FromStr for From {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "task" => Ok(From::Task),
            "main" => Ok(From::Main),
            _ => Err(format!("unknown --from {s:?} (task or main)")),
        }
    }
}

/// One JSON line of results.
#[derive(Debug, Clone)]
pub struct Report {
    /// Client name.
    pub client: String,
    /// Workload id.
    pub workload: Workload,
    /// Operations (W2: keys) done in the timed part.
    pub ops: u64,
    /// Timed seconds.
    pub secs: f64,
    /// Median latency of one command (W2: one round; W3: one get, over every worker), µs.
    pub p50_us: Option<f64>,
    /// 99th percentile latency, µs.
    pub p99_us: Option<f64>,
    /// W4 only: 2 x 200 x 524,288 bytes / secs / 1e6.
    pub mb_per_s: Option<f64>,
}

impl Report {
    /// Operations per second.
    pub fn ops_per_s(&self) -> f64 {
        self.ops as f64 / self.secs
    }

    /// The BENCH.md JSON line.
    pub fn json(&self) -> String {
        let opt = |v: Option<f64>| v.map_or("null".to_owned(), |v| format!("{v:.1}"));
        let mut s = format!(
            r#"{{"client":"{}","workload":"{:?}","ops":{},"secs":{:.3},"ops_per_s":{:.1},"p50_us":{},"p99_us":{}"#,
            self.client,
            self.workload,
            self.ops,
            self.secs,
            self.ops_per_s(),
            opt(self.p50_us),
            opt(self.p99_us)
        );
        if let Some(mb) = self.mb_per_s {
            let _ = write!(s, r#","mb_per_s":{mb:.1}"#);
        }
        s.push('}');
        s
    }

    /// Reads back a line in the shape of [`Report::json`] (another program's, such as
    /// `bench/libmemcached.c`'s), for `workload`; `None` if a field is missing.
    pub fn parse(line: &str, workload: Workload) -> Option<Report> {
        let field = |name: &str| -> Option<&str> {
            let rest = &line[line.find(&format!("\"{name}\":"))? + name.len() + 3..];
            let end = rest.find([',', '}'])?;
            Some(rest[..end].trim_matches('"'))
        };
        let number = |name: &str| field(name).and_then(|v| v.parse::<f64>().ok());
        Some(Report {
            client: field("client")?.to_owned(),
            workload,
            ops: field("ops")?.parse().ok()?,
            secs: number("secs")?,
            p50_us: number("p50_us"),
            p99_us: number("p99_us"),
            mb_per_s: number("mb_per_s"),
        })
    }
}

/// `bench:%06d`.
pub fn key(i: usize) -> String {
    format!("bench:{i:06}")
}

/// `v%08d|` then the alphabet rotated by `i % 26`, repeated, cut at `n` bytes.
pub fn value(i: usize, n: usize) -> Vec<u8> {
    let mut v = format!("v{i:08}|").into_bytes();
    v.extend((0..).map(|k| b'a' + ((i + k) % 26) as u8).take(n.saturating_sub(10)));
    v.truncate(n);
    v
}

/// Runs `workload` with adapter `A` against `addr`, from a spawned task or from the
/// `block_on` thread as `opts.from` says (the blocking client: always the calling thread).
pub fn run<A: Adapter>(workload: Workload, addr: &str, opts: &Options) -> Result<Report, String> {
    let work = workload_future::<A>(workload, addr, opts);
    match opts.from {
        From::Task => A::block_on(async { A::spawn(work).await }),
        From::Main => A::block_on(work),
    }
}

fn workload_future<A: Adapter>(
    workload: Workload,
    addr: &str,
    opts: &Options,
) -> impl std::future::Future<Output = Result<Report, String>> + Send + 'static {
    let addr = addr.to_owned();
    let opts = opts.clone();
    async move {
        let mut cfg = ClientConfig::new([addr]).timeout(Duration::from_secs(5)).busy_poll(opts.busy_poll);
        cfg.max_conns = if workload == Workload::W3 { opts.conns } else { Some(1) };
        if opts.observer {
            cfg = cfg.observer(std::sync::Arc::new(CountingObserver::default()));
        }
        cfg.tls = opts.tls.clone();
        let client = A::connect(cfg).map_err(|e| format!("connect: {e}"))?;
        let report = match workload {
            Workload::W1 => sequential::<A>(&client, Workload::W1, 0, 20_000, 100).await,
            Workload::W2 => w2::<A>(&client).await,
            Workload::M2 => m2::<A>(&client).await,
            Workload::W3 => w3::<A>(&client, &opts).await,
            Workload::W4 => sequential::<A>(&client, Workload::W4, 100_000, 200, 524_288).await,
        };
        report.map(|mut r| {
            r.client = A::NAME.to_owned();
            if opts.from == From::Main && A::NAME != crate::adapters::Blocking::NAME {
                r.client.push_str(" from main");
            }
            if opts.observer {
                r.client.push_str(" +observer");
            }
            if opts.tls.is_some() {
                r.client.push_str(" over TLS");
            }
            r
        })
    }
}

/// W1 and W4: set then get-and-check each key on one connection.
async fn sequential<A: Adapter>(
    c: &A::Client,
    workload: Workload,
    first: usize,
    count: usize,
    len: usize,
) -> Result<Report, String> {
    let items: Vec<Item> = (first..first + count).map(|i| Item::new(key(i), value(i, len))).collect();
    let mut lat = Vec::with_capacity(2 * count);
    let mut progress = Progress::new(workload);
    let start = Instant::now();
    for item in &items {
        let t = Instant::now();
        A::set(c, item).await.map_err(|e| format!("set {}: {e}", item.key))?;
        lat.push(t.elapsed());
        let t = Instant::now();
        let got = A::get(c, &item.key).await.map_err(|e| format!("get {}: {e}", item.key))?;
        lat.push(t.elapsed());
        if got.value != item.value {
            return Err(format!("get {}: wrong value", item.key));
        }
        progress.tick(lat.len());
    }
    let secs = start.elapsed().as_secs_f64();
    let mb = (workload == Workload::W4).then(|| (2 * count * len) as f64 / secs / 1e6);
    Ok(report(workload, lat.len() as u64, secs, &mut lat, mb))
}

async fn preload<A: Adapter>(c: &A::Client) -> Result<Arc<Vec<Vec<u8>>>, String> {
    let values: Vec<Vec<u8>> = (0..10_000).map(|i| value(i, 100)).collect();
    for (i, v) in values.iter().enumerate() {
        A::set(c, &Item::new(key(i), v.clone())).await.map_err(|e| format!("preload {}: {e}", key(i)))?;
    }
    Ok(Arc::new(values))
}

async fn w2<A: Adapter>(c: &A::Client) -> Result<Report, String> {
    let values = preload::<A>(c).await?;
    let rounds: Vec<Vec<String>> =
        (0..2_000).map(|r| (0..100).map(|k| key((r * 7919 + k) % 10_000)).collect()).collect();
    let mut lat = Vec::with_capacity(rounds.len());
    let mut progress = Progress::new(Workload::W2);
    let start = Instant::now();
    for (r, keys) in rounds.iter().enumerate() {
        let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
        let t = Instant::now();
        let got = A::get_multi(c, &refs).await.map_err(|e| format!("get_multi round {r}: {e}"))?;
        lat.push(t.elapsed());
        if got.len() != 100 {
            return Err(format!("round {r}: {} of 100 keys", got.len()));
        }
        for (k, key) in keys.iter().enumerate() {
            let i = (r * 7919 + k) % 10_000;
            if got.get(key).map(|it| &it.value[..]) != Some(&values[i][..]) {
                return Err(format!("round {r}: wrong value for {key}"));
            }
        }
        progress.tick(lat.len() * 100);
    }
    let secs = start.elapsed().as_secs_f64();
    Ok(report(Workload::W2, 200_000, secs, &mut lat, None))
}

/// The 100 keys of W2's round `r`, and their indices.
fn round_keys(r: usize) -> impl Iterator<Item = (usize, String)> {
    (0..100).map(move |k| {
        let i = (r * 7919 + k) % 10_000;
        (i, key(i))
    })
}

async fn m2<A: Adapter>(c: &A::Client) -> Result<Report, String> {
    use memcache_proto::meta::{GetOutcome, MetaGet, MetaOutcome, MetaRequest};
    let values = preload::<A>(c).await?;
    let rounds: Vec<Vec<(usize, MetaRequest)>> = (0..2_000)
        .map(|r| {
            round_keys(r).map(|(i, k)| (i, MetaGet::new(k).expect("bench keys are valid").into())).collect()
        })
        .collect();
    let mut lat = Vec::with_capacity(rounds.len());
    let mut progress = Progress::new(Workload::M2);
    let start = Instant::now();
    for (r, round) in rounds.into_iter().enumerate() {
        let (indices, requests): (Vec<usize>, Vec<MetaRequest>) = round.into_iter().unzip();
        let t = Instant::now();
        let got = A::meta_batch(c, requests).await;
        lat.push(t.elapsed());
        for (i, result) in indices.iter().zip(got) {
            match result {
                Ok(MetaOutcome::Get(GetOutcome::Hit(item))) if item.value[..] == values[*i][..] => {}
                other => return Err(format!("round {r}: {} read as {other:?}", key(*i))),
            }
        }
        progress.tick(lat.len() * 100);
    }
    let secs = start.elapsed().as_secs_f64();
    Ok(report(Workload::M2, 200_000, secs, &mut lat, None))
}

async fn w3<A: Adapter>(c: &A::Client, opts: &Options) -> Result<Report, String> {
    let values = preload::<A>(c).await?;
    let limit = Duration::from_secs_f64(opts.seconds);
    let start = Instant::now();
    let workers: Vec<_> = (0..opts.workers)
        .map(|w| {
            let (c, values) = (c.clone(), values.clone());
            A::spawn(async move {
                let mut rng = 0x9E37_79B9_7F4A_7C15u64 ^ (w as u64 + 1).wrapping_mul(0xBF58_476D_1CE4_E5B9);
                let mut progress = Progress::new(Workload::W3);
                let mut n = 0u64;
                let mut lat = Vec::with_capacity(1 << 16);
                while n < 5_000_000 && (n % 64 != 0 || start.elapsed() < limit) {
                    rng ^= rng << 13;
                    rng ^= rng >> 7;
                    rng ^= rng << 17;
                    let i = (rng % 10_000) as usize;
                    let k = key(i);
                    let t = Instant::now();
                    let got = A::get(&c, &k).await.map_err(|e| format!("get {k}: {e}"))?;
                    lat.push(t.elapsed());
                    if got.value[..] != values[i][..] {
                        return Err(format!("get {k}: wrong value"));
                    }
                    n += 1;
                    if w == 0 {
                        progress.tick(n as usize);
                    }
                }
                Ok(lat)
            })
        })
        .collect();
    let mut lat = Vec::new();
    for worker in workers {
        lat.extend(worker.await?);
    }
    let secs = start.elapsed().as_secs_f64();
    Ok(report(Workload::W3, lat.len() as u64, secs, &mut lat, None))
}

pub(crate) fn report(
    workload: Workload,
    ops: u64,
    secs: f64,
    lat: &mut [Duration],
    mb: Option<f64>,
) -> Report {
    lat.sort_unstable();
    let pct = |p: f64| -> Option<f64> {
        let i = ((lat.len() as f64 * p) as usize).min(lat.len().checked_sub(1)?);
        Some(lat[i].as_secs_f64() * 1e6)
    };
    Report { client: String::new(), workload, ops, secs, p50_us: pct(0.50), p99_us: pct(0.99), mb_per_s: mb }
}

/// A progress line on stderr about once a second for long runs.
struct Progress {
    workload: Workload,
    start: Instant,
    next: Duration,
}

impl Progress {
    fn new(workload: Workload) -> Progress {
        Progress { workload, start: Instant::now(), next: Duration::from_secs(1) }
    }

    fn tick(&mut self, done: usize) {
        if done % 256 == 0 && self.start.elapsed() >= self.next {
            eprintln!("mcbench: {:?} {:.0}s, {done} ops", self.workload, self.start.elapsed().as_secs_f64());
            self.next += Duration::from_secs(1);
        }
    }
}
