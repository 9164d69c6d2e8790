//! Many workers on one client: every answer checked against a per-worker model; connection
//! bounds; cancelled calls never cross answers.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use memcache_proto::{Error, Item};

use super::util::{XorShift, store_direct};
use super::{Adapter, ClientConfig, check_item, client, show};
use crate::fault::{Proxy, ProxyMode};
use crate::memcached::Memcached;

const KEYS_PER_WORKER: usize = 6;
const COUNTERS_PER_WORKER: usize = 2;

/// One worker's keys and what the server must hold for them (no one else touches them).
struct Model {
    id: usize,
    keys: Vec<String>,
    values: Vec<Option<Bytes>>,
    counters: Vec<String>,
    counts: Vec<Option<u64>>,
    seq: u64,
}

impl Model {
    fn new(id: usize) -> Model {
        Model {
            id,
            keys: (0..KEYS_PER_WORKER).map(|j| format!("w{id}:k{j}")).collect(),
            values: vec![None; KEYS_PER_WORKER],
            counters: (0..COUNTERS_PER_WORKER).map(|j| format!("w{id}:n{j}")).collect(),
            counts: vec![None; COUNTERS_PER_WORKER],
            seq: 0,
        }
    }

    /// A value never used before, naming its worker, key and version.
    fn fresh(&mut self, j: usize) -> Bytes {
        self.seq += 1;
        Bytes::from(format!("w{}:k{j}#{}", self.id, self.seq))
    }
}

fn check_counter(got: &Item, key: &str, expected: u64, ctx: &str) {
    assert_eq!(got.key, key, "{ctx}: counter item key");
    let text = String::from_utf8_lossy(&got.value);
    assert_eq!(text.trim_end(), expected.to_string(), "{ctx}: counter {key} holds {text:?}");
}

/// Runs `ops` random operations on the worker's own keys, checking every answer; panics on the
/// first wrong one.
async fn mixed_worker<A: Adapter>(c: A::Client, id: usize, ops: usize, seed: u64) -> usize {
    let mut rng = XorShift::new(seed ^ (id as u64).wrapping_mul(0x1000_0000_01B3));
    let mut m = Model::new(id);
    for op in 0..ops {
        let j = rng.below(KEYS_PER_WORKER as u64) as usize;
        let n = rng.below(COUNTERS_PER_WORKER as u64) as usize;
        let key = m.keys[j].clone();
        let ctx = format!("{}: worker {id} op {op} key {key}", A::NAME);
        let roll = rng.below(100);
        match roll {
            0..=29 => match (&m.values[j], A::get(&c, &key).await) {
                (Some(v), Ok(item)) => check_item(&item, &key, v, 0, &ctx),
                (None, Err(Error::CacheMiss)) => {}
                (want, got) => panic!("{ctx}: get: expected {:?}, got {got:?}", want.as_deref().map(show)),
            },
            30..=49 => {
                let v = m.fresh(j);
                expect_ok!(A::set(&c, &Item::new(key.as_str(), v.clone())).await, "{ctx}: set");
                m.values[j] = Some(v);
            }
            50..=57 => {
                let res = A::delete(&c, &key).await;
                match m.values[j].take() {
                    Some(_) => expect_ok!(res, "{ctx}: delete of a stored key"),
                    None => expect_err!(res, Error::CacheMiss, "{ctx}: delete of a missing key"),
                }
            }
            58..=65 => {
                let v = m.fresh(j);
                let res = A::add(&c, &Item::new(key.as_str(), v.clone())).await;
                if m.values[j].is_some() {
                    expect_err!(res, Error::NotStored, "{ctx}: add of a stored key");
                } else {
                    expect_ok!(res, "{ctx}: add of a missing key");
                    m.values[j] = Some(v);
                }
            }
            66..=73 => {
                let Some(current) = m.values[j].clone() else {
                    expect_err!(A::get(&c, &key).await, Error::CacheMiss, "{ctx}: get before cas");
                    continue;
                };
                let mut item = expect_ok!(A::get(&c, &key).await, "{ctx}: get before cas");
                check_item(&item, &key, &current, 0, &ctx);
                if rng.below(2) == 0 {
                    item.value = m.fresh(j);
                    expect_ok!(A::compare_and_swap(&c, &item).await, "{ctx}: cas with a fresh token");
                    m.values[j] = Some(item.value);
                } else {
                    let between = m.fresh(j);
                    expect_ok!(A::set(&c, &Item::new(key.as_str(), between.clone())).await, "{ctx}: set");
                    item.value = m.fresh(j);
                    expect_err!(A::compare_and_swap(&c, &item).await, Error::CasConflict, "{ctx}: stale cas");
                    m.values[j] = Some(between);
                }
            }
            74..=77 => {
                let tail = format!("+{op}");
                let res = A::append(&c, &Item::new(key.as_str(), tail.clone())).await;
                match &mut m.values[j] {
                    Some(v) => {
                        expect_ok!(res, "{ctx}: append");
                        *v = Bytes::from([&v[..], tail.as_bytes()].concat());
                    }
                    None => expect_err!(res, Error::NotStored, "{ctx}: append to a missing key"),
                }
            }
            78..=91 => {
                let counter = m.counters[n].clone();
                let delta = rng.below(1000);
                let up = roll < 86;
                let res = if up {
                    A::increment(&c, &counter, delta).await
                } else {
                    A::decrement(&c, &counter, delta).await
                };
                match m.counts[n] {
                    Some(v) => {
                        let want = if up { v + delta } else { v.saturating_sub(delta) };
                        let got = expect_ok!(res, "{ctx}: incr/decr of {counter}");
                        assert_eq!(got, want, "{ctx}: {counter} {v} {} {delta}", if up { "+" } else { "-" });
                        m.counts[n] = Some(want);
                    }
                    None => {
                        expect_err!(res, Error::CacheMiss, "{ctx}: incr/decr of missing {counter}");
                        let start = rng.below(1_000_000);
                        expect_ok!(
                            A::set(&c, &Item::new(counter.as_str(), start.to_string())).await,
                            "{ctx}: set"
                        );
                        m.counts[n] = Some(start);
                    }
                }
            }
            _ => {
                let other = m.keys[(j + 1) % KEYS_PER_WORKER].clone();
                let counter = m.counters[n].clone();
                let asked = [key.as_str(), other.as_str(), counter.as_str()];
                let got = expect_ok!(A::get_multi(&c, &asked).await, "{ctx}: get_multi");
                let want_len = [&m.values[j], &m.values[(j + 1) % KEYS_PER_WORKER]]
                    .iter()
                    .filter(|v| v.is_some())
                    .count()
                    + usize::from(m.counts[n].is_some());
                assert_eq!(got.len(), want_len, "{ctx}: get_multi {asked:?} returned {:?}", got.keys());
                for (k, v) in [(&key, &m.values[j]), (&other, &m.values[(j + 1) % KEYS_PER_WORKER])] {
                    if let Some(v) = v {
                        let item = got.get(k.as_str()).unwrap_or_else(|| panic!("{ctx}: get_multi lost {k}"));
                        check_item(item, k, v, 0, &ctx);
                    }
                }
                if let Some(count) = m.counts[n] {
                    let item = got.get(&counter).unwrap_or_else(|| panic!("{ctx}: get_multi lost {counter}"));
                    check_counter(item, &counter, count, &ctx);
                }
            }
        }
    }
    ops
}

async fn run_workers<A: Adapter>(c: &A::Client, workers: usize, ops: usize, seed: u64) {
    let handles: Vec<_> =
        (0..workers).map(|w| A::spawn(mixed_worker::<A>(c.clone(), w, ops, seed))).collect();
    let mut done = 0;
    for h in handles {
        done += h.await;
    }
    assert_eq!(done, workers * ops, "every worker finished its operations");
}

/// 16 workers share one client for 2,000 mixed operations each (set, get, delete, add, cas,
/// append, incr, decr, get_multi), every answer checked against the worker's own model.
pub async fn sixteen_workers_share_one_client<A: Adapter>() {
    let servers = [Memcached::start(), Memcached::start()];
    let c = client::<A>(ClientConfig::new(servers.iter().map(Memcached::addr)));
    run_workers::<A>(&c, 16, 2_000, 16).await;
    expect_ok!(A::ping(&c).await, "ping after the workers");
}

/// 64 workers x 5,000 mixed operations with `max_conns_per_server(4)`: zero wrong answers, and each
/// server sees at most 4 connections from the client (`total_connections`).
pub async fn bounded_connections_under_64_workers<A: Adapter>() {
    const BOUND: usize = 4;
    let servers = [Memcached::start(), Memcached::start()];
    // Each stats request is one connection of its own, counted in the figure it reports.
    let before: Vec<u64> = servers.iter().map(|s| s.stat_u64("total_connections")).collect();
    let c = client::<A>(ClientConfig::new(servers.iter().map(Memcached::addr)).max_conns(BOUND));
    run_workers::<A>(&c, 64, 5_000, 64).await;
    for (i, s) in servers.iter().enumerate() {
        let opened = s.stat_u64("total_connections") - before[i] - 1;
        assert!(opened >= 1, "server {i} was used");
        assert!(
            opened <= BOUND as u64,
            "{}: the client opened {opened} connections to server {} with max_conns_per_server({BOUND})",
            A::NAME,
            s.addr()
        );
    }
}

/// 1,000 calls with tiny random deadlines (0-3 ms) through a proxy that slows every reply, while
/// other workers keep calling: whatever completes is its own key's answer, never another's, and
/// the client works normally afterwards.
pub async fn cancelled_calls_never_cross_answers<A: Adapter>() {
    const CALLS: usize = 1_000;
    const BACKGROUND: usize = 3;
    let m = Memcached::start();
    let proxy = Proxy::start(&m.addr());
    let value = |k: &str| format!("value-of-{k}").into_bytes();
    let keys: Vec<String> = (0..CALLS + BACKGROUND * 20).map(|i| format!("cancel:{i}")).collect();
    store_direct(&m, &keys.iter().map(|k| (k.clone(), value(k))).collect::<Vec<_>>());
    let c = client::<A>(ClientConfig::new([proxy.addr()]));
    proxy.set_mode(ProxyMode::SlowWrites(Duration::from_millis(1)));

    let stop = Arc::new(AtomicBool::new(false));
    let background: Vec<_> = (0..BACKGROUND)
        .map(|w| {
            let (c, stop) = (c.clone(), Arc::clone(&stop));
            let mine: Vec<String> = keys[CALLS + w * 20..CALLS + (w + 1) * 20].to_vec();
            A::spawn(async move {
                let (mut ok, mut broken) = (0usize, 0usize);
                let mut i = 0;
                while !stop.load(Ordering::SeqCst) {
                    let k = &mine[i % mine.len()];
                    i += 1;
                    match A::get(&c, k).await {
                        Ok(item) => {
                            check_item(&item, k, &value(k), 0, format!("background worker {w}"));
                            ok += 1;
                        }
                        Err(e) if e.is_connection_broken() => broken += 1,
                        Err(e) => panic!("background worker {w}: get {k}: {e:?}"),
                    }
                }
                (ok, broken)
            })
        })
        .collect();

    let mut rng = XorShift::new(1000);
    let (mut completed, mut cancelled, mut broken) = (0usize, 0usize, 0usize);
    for (i, k) in keys[..CALLS].iter().enumerate() {
        let deadline = Duration::from_micros(rng.below(3_001));
        if i % 4 == 3 {
            let other = &keys[(i + 7) % CALLS];
            match A::timeout(deadline, A::get_multi(&c, &[k, other])).await {
                None => cancelled += 1,
                Some(Ok(map)) => {
                    assert_eq!(map.len(), 2, "call {i}: get_multi of {k}, {other}: {:?}", map.keys());
                    for key in [k, other] {
                        let item = map.get(key).unwrap_or_else(|| panic!("call {i}: get_multi lost {key}"));
                        check_item(item, key, &value(key), 0, format!("call {i}"));
                    }
                    completed += 1;
                }
                Some(Err(e)) if e.is_connection_broken() => broken += 1,
                Some(Err(e)) => panic!("call {i}: get_multi({k}, {other}) failed with {e:?}"),
            }
        } else {
            match A::timeout(deadline, A::get(&c, k)).await {
                None => cancelled += 1,
                Some(Ok(item)) => {
                    check_item(&item, k, &value(k), 0, format!("call {i} (deadline {deadline:?})"));
                    completed += 1;
                }
                Some(Err(e)) if e.is_connection_broken() => broken += 1,
                Some(Err(e)) => panic!("call {i}: get({k}) failed with {e:?}"),
            }
        }
    }
    let summary = format!("{completed} completed, {cancelled} cancelled, {broken} connection errors");

    // Still slowed, no deadlines: every call must now complete with its own answer.
    for (i, k) in keys[..CALLS].iter().enumerate().step_by(25) {
        let item = expect_ok!(A::get(&c, k).await, "get {i} after the cancellations ({summary})");
        check_item(&item, k, &value(k), 0, format!("get {i} after the cancellations ({summary})"));
    }
    stop.store(true, Ordering::SeqCst);
    let mut background_ok = 0;
    for h in background {
        background_ok += h.await.0;
    }
    assert!(background_ok > 0, "the background workers made progress ({summary})");

    proxy.set_mode(ProxyMode::Pass);
    let asked: Vec<&str> = keys[..CALLS].iter().step_by(37).map(String::as_str).collect();
    let got = expect_ok!(A::get_multi(&c, &asked).await, "get_multi after the cancellations");
    assert_eq!(got.len(), asked.len(), "get_multi after the cancellations");
    for k in &asked {
        check_item(&got[*k], k, &value(k), 0, "get_multi after the cancellations");
    }
    expect_ok!(A::set(&c, &Item::new("after", "fine")).await, "set after the cancellations");
    check_item(&expect_ok!(A::get(&c, "after").await, "get"), "after", b"fine", 0, "after the cancellations");
}
