//! The chaos soak: workers call a client through [`ChaosProxy`]s in front of real memcached
//! servers, cancel calls at random, and check every answer against a model.
//!
//! The model: each key is written by one worker only, with a sequence number in its value, so
//! the worker knows every value it may read back. A read must return a value that was written
//! (its bytes exactly), never one older than the last acknowledged write of that key, and a
//! miss only before any write of it was acknowledged. A counter must equal the acknowledged
//! `incr`s plus at most the `incr`s that failed or were cancelled (whose outcome is unknown);
//! every value an `incr` returns must lie in the same range.
//!
//! Used by the bounded conformance test [`conformance::chaos_soak_finds_no_wrong_answer`] and
//! the `soak` binary (`--ops N --seed S`).
//!
//! [`conformance::chaos_soak_finds_no_wrong_answer`]: crate::conformance::chaos_soak_finds_no_wrong_answer

use std::collections::BTreeMap;
use std::time::Duration;

use memcache_proto::{Error, FailurePolicy, Item, ServerList, ServerSelector};

use crate::conformance::{Adapter, ClientConfig, XorShift};
use crate::fault::{Chaos, ChaosProxy};
use crate::memcached::Memcached;

/// Keys each worker owns (besides its counter).
const KEYS_PER_WORKER: u64 = 8;

/// What one soak runs.
#[derive(Debug, Clone)]
pub struct SoakConfig {
    /// Calls in all, split over the workers.
    pub ops: u64,
    /// Seed of the workers' choices (the proxies' faults have their own seed).
    pub seed: u64,
    /// Concurrent workers sharing one client.
    pub workers: u64,
    /// The client's call timeout.
    pub timeout: Duration,
    /// Percent of calls cancelled (their future dropped) after a random 0-500 µs.
    pub cancel_percent: u64,
    /// A prefix for this run's keys, so runs on the same servers do not meet.
    pub prefix: String,
}

/// What a soak saw.
#[derive(Debug, Default)]
pub struct SoakReport {
    /// Calls made.
    pub ops: u64,
    /// Failed or cancelled calls, by kind (`Timeout`, `Io`, `Protocol`, `cancelled`, ...).
    pub errors: BTreeMap<String, u64>,
    /// Answers the model says are wrong.
    pub wrong: u64,
    /// The first few wrong answers, described.
    pub wrong_examples: Vec<String>,
    /// Reads that returned a write whose caller had cancelled it, applied after a later
    /// acknowledged write of the same key: a dropped call's request may still reach the server
    /// (on another connection than the later write), so this is not counted as wrong.
    pub late_cancelled: u64,
}

impl SoakReport {
    fn merge(&mut self, other: SoakReport) {
        self.ops += other.ops;
        for (k, v) in other.errors {
            *self.errors.entry(k).or_default() += v;
        }
        self.wrong += other.wrong;
        self.late_cancelled += other.late_cancelled;
        self.wrong_examples.extend(other.wrong_examples);
        self.wrong_examples.truncate(10);
    }

    fn error(&mut self, e: &Error) {
        let kind = format!("{e:?}");
        let kind = kind.split(['(', ' ', '{']).next().unwrap_or("?").to_string();
        *self.errors.entry(kind).or_default() += 1;
    }

    fn wrong(&mut self, what: String) {
        self.wrong += 1;
        if self.wrong_examples.len() < 10 {
            self.wrong_examples.push(what);
        }
    }
}

/// Three real servers, each behind a [`ChaosProxy`].
#[derive(Debug)]
pub struct ChaosCluster {
    /// The servers, in the order of `proxies`.
    pub servers: Vec<Memcached>,
    /// The proxies the clients talk to.
    pub proxies: Vec<ChaosProxy>,
}

impl ChaosCluster {
    /// Starts `n` memcached servers and a proxy in front of each.
    pub fn start(n: usize, chaos: Chaos) -> ChaosCluster {
        let servers: Vec<Memcached> = (0..n).map(|_| Memcached::start()).collect();
        let proxies = servers
            .iter()
            .enumerate()
            .map(|(i, m)| {
                ChaosProxy::start(&m.addr(), Chaos { seed: chaos.seed.wrapping_add(i as u64), ..chaos })
            })
            .collect();
        ChaosCluster { servers, proxies }
    }

    /// The proxies' addresses, for a client.
    pub fn addrs(&self) -> Vec<String> {
        self.proxies.iter().map(ChaosProxy::addr).collect()
    }

    /// Faults injected so far, summed over the proxies.
    pub fn injected(&self) -> BTreeMap<&'static str, usize> {
        let mut all = BTreeMap::new();
        for p in &self.proxies {
            for (name, n) in p.injected() {
                *all.entry(name).or_default() += n;
            }
        }
        all
    }

    /// The counter `key` as the server holding it says, bypassing the proxies.
    fn counter(&self, key: &str) -> Option<u64> {
        let list = ServerList::new(self.addrs()).ok()?;
        let picked = list.pick_server(key.as_bytes()).ok()?.to_string();
        let i = self.proxies.iter().position(|p| p.addr() == picked)?;
        let raw = self.servers[i].get_direct(key)?;
        String::from_utf8_lossy(&raw).trim().parse().ok()
    }
}

/// Runs `cfg.workers` workers on one client of adapter `A` against `cluster`.
pub async fn soak<A: Adapter>(cluster: &ChaosCluster, cfg: &SoakConfig) -> SoakReport {
    // Faults are frequent here: the dead-server policy would turn them into fail-fast errors.
    let client_cfg =
        ClientConfig::new(cluster.addrs()).timeout(cfg.timeout).failure_policy(FailurePolicy::disabled());
    let client = A::connect(client_cfg).expect("a client for the chaos cluster");
    let mut handles = Vec::new();
    for w in 0..cfg.workers {
        let (c, cfg) = (client.clone(), cfg.clone());
        handles.push(A::spawn(async move { Worker::new(&cfg, w).run::<A>(&c, &cfg).await }));
    }
    let mut report = SoakReport::default();
    for h in handles {
        let (r, counter, acked, unknown) = h.await;
        report.merge(r);
        match cluster.counter(&counter) {
            Some(n) if acked <= n && n <= acked + unknown => {}
            got => {
                report.wrong(format!("counter {counter}: {got:?}, expected {acked}..={}", acked + unknown))
            }
        }
    }
    A::close(&client).await;
    report
}

/// One worker's model of its keys.
struct Worker {
    rng: XorShift,
    prefix: String,
    /// Per key: the last acknowledged sequence number, and the highest one attempted.
    acked: Vec<Option<u64>>,
    attempted: Vec<u64>,
    /// Per key: writes whose call was cancelled (they may still be applied, at any time).
    cancelled: Vec<Vec<u64>>,
    counter_acked: u64,
    counter_unknown: u64,
    report: SoakReport,
}

/// The value written with sequence number `seq`: its number, then bytes derived from it, of a
/// length that varies from a few bytes to several KiB (replies then cross read boundaries).
fn value_of(seq: u64) -> Vec<u8> {
    let mut v = format!("s{seq}:").into_bytes();
    let len = (seq.wrapping_mul(2_654_435_761) % 6000) as usize;
    v.extend((0..len).map(|i| b'a' + ((seq as usize + i) % 26) as u8));
    v
}

fn seq_of(value: &[u8]) -> Option<u64> {
    let rest = value.strip_prefix(b"s")?;
    let end = rest.iter().position(|&b| b == b':')?;
    std::str::from_utf8(&rest[..end]).ok()?.parse().ok()
}

impl Worker {
    fn new(cfg: &SoakConfig, w: u64) -> Worker {
        Worker {
            rng: XorShift::new(cfg.seed.wrapping_mul(1000).wrapping_add(w)),
            prefix: format!("{}-w{w}", cfg.prefix),
            acked: vec![None; KEYS_PER_WORKER as usize],
            attempted: vec![0; KEYS_PER_WORKER as usize],
            cancelled: vec![Vec::new(); KEYS_PER_WORKER as usize],
            counter_acked: 0,
            counter_unknown: 0,
            report: SoakReport::default(),
        }
    }

    fn key(&self, j: u64) -> String {
        format!("{}-k{j}", self.prefix)
    }

    /// Runs its share of the calls; returns its report, its counter key, and the counter's
    /// acknowledged and unknown `incr`s.
    async fn run<A: Adapter>(mut self, c: &A::Client, cfg: &SoakConfig) -> (SoakReport, String, u64, u64) {
        let counter = format!("{}-n", self.prefix);
        while A::set(c, &Item::new(counter.clone(), "0")).await.is_err() {}
        for _ in 0..cfg.ops / cfg.workers {
            // Most calls take well under a millisecond: a cancellation drawn over the whole
            // timeout would rarely catch one in flight.
            let cancel = (self.rng.below(100) < cfg.cancel_percent)
                .then(|| Duration::from_micros(self.rng.below(500)));
            let j = self.rng.below(KEYS_PER_WORKER);
            match self.rng.below(100) {
                0..40 => self.set::<A>(c, j, cancel).await,
                40..70 => self.get::<A>(c, j, cancel).await,
                70..80 => self.get_multi::<A>(c, cancel).await,
                _ => self.incr::<A>(c, &counter, cancel).await,
            }
            self.report.ops += 1;
        }
        (self.report, counter, self.counter_acked, self.counter_unknown)
    }

    /// `Err(None)`: cancelled.
    async fn call<A: Adapter, T>(
        fut: impl std::future::Future<Output = Result<T, Error>> + Send,
        cancel: Option<Duration>,
    ) -> Result<T, Option<Error>> {
        match cancel {
            None => fut.await.map_err(Some),
            Some(d) => match A::timeout(d, fut).await {
                Some(r) => r.map_err(Some),
                None => Err(None),
            },
        }
    }

    fn failed(&mut self, e: Option<Error>) {
        match e {
            Some(e) => self.report.error(&e),
            None => *self.report.errors.entry("cancelled".into()).or_default() += 1,
        }
    }

    async fn set<A: Adapter>(&mut self, c: &A::Client, j: u64, cancel: Option<Duration>) {
        let seq = self.attempted[j as usize] + 1;
        self.attempted[j as usize] = seq;
        let item = Item::new(self.key(j), value_of(seq));
        match Self::call::<A, _>(A::set(c, &item), cancel).await {
            Ok(()) => self.acked[j as usize] = Some(seq),
            Err(None) => {
                self.cancelled[j as usize].push(seq);
                self.failed(None);
            }
            Err(e) => self.failed(e),
        }
    }

    async fn get<A: Adapter>(&mut self, c: &A::Client, j: u64, cancel: Option<Duration>) {
        let key = self.key(j);
        match Self::call::<A, _>(A::get(c, &key), cancel).await {
            Ok(item) => self.check(j, Some(&item.value)),
            Err(Some(Error::CacheMiss)) => self.check(j, None),
            Err(e) => self.failed(e),
        }
    }

    async fn get_multi<A: Adapter>(&mut self, c: &A::Client, cancel: Option<Duration>) {
        let js: Vec<u64> = (0..3).map(|_| self.rng.below(KEYS_PER_WORKER)).collect();
        let keys: Vec<String> = js.iter().map(|&j| self.key(j)).collect();
        let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
        match Self::call::<A, _>(A::get_multi(c, &refs), cancel).await {
            Ok(items) => {
                for (&j, key) in js.iter().zip(&keys) {
                    self.check(j, items.get(key).map(|i| &i.value[..]));
                }
            }
            Err(e) => self.failed(e),
        }
    }

    async fn incr<A: Adapter>(&mut self, c: &A::Client, counter: &str, cancel: Option<Duration>) {
        match Self::call::<A, _>(A::increment(c, counter, 1), cancel).await {
            Ok(n) => {
                self.counter_acked += 1;
                let (lo, hi) = (self.counter_acked, self.counter_acked + self.counter_unknown);
                if n < lo || n > hi {
                    self.report.wrong(format!("incr {counter} returned {n}, expected {lo}..={hi}"));
                }
            }
            Err(e) => {
                self.counter_unknown += 1;
                self.failed(e);
            }
        }
    }

    /// Checks a read of key `j` against the model.
    fn check(&mut self, j: u64, got: Option<&[u8]>) {
        let (acked, attempted) = (self.acked[j as usize], self.attempted[j as usize]);
        let key = self.key(j);
        match (got, acked) {
            (None, None) => {}
            (None, Some(a)) => self.report.wrong(format!("{key}: miss after write {a} was acknowledged")),
            (Some(v), _) => match seq_of(v) {
                Some(s) if s <= attempted && acked.is_none_or(|a| s >= a) && v == value_of(s) => {}
                Some(s) if self.cancelled[j as usize].contains(&s) && v == value_of(s) => {
                    self.report.late_cancelled += 1;
                }
                s => self.report.wrong(format!(
                    "{key}: read seq {s:?} ({} bytes), acknowledged {acked:?}, attempted {attempted}",
                    v.len()
                )),
            },
        }
    }
}
