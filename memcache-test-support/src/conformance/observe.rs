//! The observer hook and `pool_stats`: every request and every connection event is reported
//! once, for the right server and with the right reason.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use memcache_proto::observe::{CloseReason, ConnectionEvent, Observer, OperationEvent, Outcome};
use memcache_proto::{Error, FailurePolicy, Item};

use super::util::keys_owned_by;
use super::{Adapter, ClientConfig, client};
use crate::fault::{Fault, FaultServer, Proxy, ProxyMode};
use crate::memcached::Memcached;

/// An observer that writes every event down as one line, for exact comparison.
#[derive(Debug, Default)]
pub struct Recorder(Mutex<Vec<String>>);

impl Recorder {
    /// The events since the last call, sorted: the order of a request's event and its
    /// connection's close differs between adapters (both come before the call returns).
    pub fn take(&self) -> Vec<String> {
        let mut events = std::mem::take(&mut *self.0.lock().unwrap_or_else(|p| p.into_inner()));
        events.sort();
        events
    }

    fn push(&self, line: String) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).push(line);
    }
}

impl Observer for Recorder {
    fn operation(&self, e: &OperationEvent<'_>) {
        let outcome = match e.outcome {
            Outcome::Hit(n) => format!("hit {n}"),
            Outcome::Error(kind) => format!("error {kind}"),
            other => format!("{other:?}").to_lowercase(),
        };
        self.push(format!("op {} {} keys={} {outcome}", e.operation, e.server, e.keys));
    }

    fn connection(&self, e: &ConnectionEvent<'_>) {
        match e {
            ConnectionEvent::Opened { server, .. } => self.push(format!("opened {server}")),
            ConnectionEvent::ConnectFailed { server, error } => {
                self.push(format!("connect_failed {server} {error}"))
            }
            ConnectionEvent::Closed { server, reason } => self.push(format!("closed {server} {reason}")),
            // Whether a caller waits depends on scheduling: not part of these checks.
            ConnectionEvent::Waited { .. } => {}
            ConnectionEvent::MarkedDown { server } => self.push(format!("down {server}")),
            ConnectionEvent::MarkedUp { server } => self.push(format!("up {server}")),
            _ => self.push(format!("{e:?}")),
        }
    }
}

fn recorded<A: Adapter>(cfg: ClientConfig) -> (A::Client, Arc<Recorder>) {
    let recorder = Arc::new(Recorder::default());
    let c = client::<A>(cfg.failure_policy(FailurePolicy::disabled()).observer(recorder.clone()));
    (c, recorder)
}

/// A hit and a miss are one event each, on the connection the first call opened (`get` asks
/// with `gets`, the command the event names).
pub async fn observer_hears_hits_and_misses<A: Adapter>() {
    let m = Memcached::start();
    let addr = m.addr();
    let (c, events) = recorded::<A>(ClientConfig::new([addr.clone()]));
    expect_ok!(A::set(&c, &Item::new("k", "v")).await, "set");
    assert_eq!(events.take(), [format!("op set {addr} keys=1 stored"), format!("opened {addr}")], "a set");
    expect_ok!(A::get(&c, "k").await, "get of a stored key");
    assert_eq!(events.take(), [format!("op gets {addr} keys=1 hit 1")], "a hit");
    expect_err!(A::get(&c, "absent").await, Error::CacheMiss, "get of a missing key");
    assert_eq!(events.take(), [format!("op gets {addr} keys=1 miss")], "a miss");
    let stats = A::pool_stats(&c);
    let stats = stats.get(&addr).unwrap_or_else(|| panic!("{}: pool_stats has {addr}: {stats:?}", A::NAME));
    assert_eq!((stats.open, stats.idle, stats.in_use, stats.in_flight), (1, 1, 0, 0), "{stats:?}");
    assert_eq!((stats.created, stats.closed.len()), (1, 0), "{stats:?}");
}

/// A stalled server: the request fails with a timeout and its connection closes for it.
pub async fn observer_hears_timeouts<A: Adapter>() {
    let stall = FaultServer::start(Fault::Stall);
    let addr = stall.addr();
    let cfg = ClientConfig::new([addr.clone()]).timeout(Duration::from_millis(300));
    let (c, events) = recorded::<A>(cfg);
    expect_err!(A::get(&c, "k").await, Error::Timeout, "get from a stalled server");
    let expected = [
        format!("closed {addr} timeout"),
        format!("op gets {addr} keys=1 error timeout"),
        format!("opened {addr}"),
    ];
    assert_eq!(events.take(), expected, "{}: a timeout", A::NAME);
    let stats = &A::pool_stats(&c)[&addr];
    assert_eq!((stats.open, stats.created, stats.closed_for(CloseReason::Timeout)), (0, 1, 1), "{stats:?}");
}

/// A server that answers garbage: a protocol error, and the connection closes for it.
pub async fn observer_hears_protocol_errors<A: Adapter>() {
    let garbage = FaultServer::start(Fault::Garbage);
    let addr = garbage.addr();
    let (c, events) = recorded::<A>(ClientConfig::new([addr.clone()]));
    let kind = match A::get(&c, "k").await {
        Err(e @ Error::Protocol(_)) => e.kind(),
        other => panic!("{}: get from a garbage server: expected a protocol error, got {other:?}", A::NAME),
    };
    let expected = [
        format!("closed {addr} protocol_error"),
        format!("op gets {addr} keys=1 error {kind}"),
        format!("opened {addr}"),
    ];
    assert_eq!(events.take(), expected, "{}: a protocol error", A::NAME);
    let stats = &A::pool_stats(&c)[&addr];
    assert_eq!((stats.open, stats.created, stats.closed_for(CloseReason::Protocol)), (0, 1, 1), "{stats:?}");
}

/// The server closes an idle connection: the next call reconnects, and the old connection is
/// reported closed by the server, once.
pub async fn observer_hears_reconnects<A: Adapter>() {
    let m = Memcached::start();
    let proxy = Proxy::start(&m.addr());
    let addr = proxy.addr();
    let (c, events) = recorded::<A>(ClientConfig::new([addr.clone()]));
    expect_ok!(A::set(&c, &Item::new("k", "v")).await, "set");
    events.take();
    proxy.close_all();
    expect_ok!(A::get(&c, "k").await, "get after the server closed the connection");
    let got = events.take();
    let count = |line: &str| got.iter().filter(|e| *e == line).count();
    assert_eq!(
        count(&format!("closed {addr} server_closed")),
        1,
        "{}: one close by the server: {got:?}",
        A::NAME
    );
    assert_eq!(count(&format!("opened {addr}")), 1, "{}: one reconnect: {got:?}", A::NAME);
    assert_eq!(count(&format!("op gets {addr} keys=1 hit 1")), 1, "{}: the get hit: {got:?}", A::NAME);
    let stats = &A::pool_stats(&c)[&addr];
    assert_eq!(
        (stats.open, stats.created, stats.closed_for(CloseReason::ServerClosed)),
        (1, 2, 1),
        "{stats:?}"
    );
}

/// A caller that gives up on a call (its future dropped while the reply is on its way) is
/// heard as one cancelled request; its connection stays open (the late reply is read and
/// discarded) and serves the next call, so nothing is closed or reopened. A blocking call
/// cannot be abandoned: it finishes, and is heard as the hit it is.
pub async fn observer_hears_dropped_futures<A: Adapter>() {
    let m = Memcached::start();
    let proxy = Proxy::start(&m.addr());
    let addr = proxy.addr();
    // One connection: the next call must share it with the abandoned request.
    let (c, events) = recorded::<A>(ClientConfig::new([addr.clone()]).max_conns(1));
    expect_ok!(A::set(&c, &Item::new("k", "v")).await, "set");
    events.take();
    proxy.set_mode(ProxyMode::DelayReplies(Duration::from_millis(300)));
    let dropped = A::timeout(Duration::from_millis(30), A::get(&c, "k")).await;
    let expected = match dropped {
        None => format!("op gets {addr} keys=1 cancelled"),
        Some(got) => {
            assert_eq!(A::NAME, "memcache-blocking", "an async get outlived a 30 ms timeout: {got:?}");
            expect_ok!(got, "a blocking get through a slow proxy");
            format!("op gets {addr} keys=1 hit 1")
        }
    };
    assert_eq!(events.take(), [expected], "{}: a dropped future", A::NAME);
    proxy.set_mode(ProxyMode::Pass);
    expect_ok!(A::get(&c, "k").await, "get after a dropped one");
    assert_eq!(events.take(), [format!("op gets {addr} keys=1 hit 1")], "{}: the next get", A::NAME);
    let stats = &A::pool_stats(&c)[&addr];
    assert_eq!((stats.open, stats.created, stats.closed.len()), (1, 1, 0), "{stats:?}");
}

/// A `get_multi` over two servers dropped while both replies are on their way: one cancelled
/// request per server, no connection closed.
pub async fn observer_hears_dropped_fan_outs<A: Adapter>() {
    let (m1, m2) = (Memcached::start(), Memcached::start());
    let (p1, p2) = (Proxy::start(&m1.addr()), Proxy::start(&m2.addr()));
    let (a1, a2) = (p1.addr(), p2.addr());
    let (c, events) = recorded::<A>(ClientConfig::new([a1.clone(), a2.clone()]));
    let servers = [a1.clone(), a2.clone()];
    let keys: Vec<String> = (0..2).flat_map(|i| keys_owned_by(&servers, i, "fan", 1)).collect();
    for k in &keys {
        expect_ok!(A::set(&c, &Item::new(k.as_str(), "v")).await, "set {k}");
    }
    events.take();
    p1.set_mode(ProxyMode::DelayReplies(Duration::from_millis(300)));
    p2.set_mode(ProxyMode::DelayReplies(Duration::from_millis(300)));
    let dropped = A::timeout(Duration::from_millis(30), A::get_multi(&c, &keys)).await;
    let outcome = match dropped {
        None => "cancelled".to_owned(),
        Some(got) => {
            assert_eq!(A::NAME, "memcache-blocking", "an async get_multi outlived a 30 ms timeout: {got:?}");
            assert_eq!(expect_ok!(got, "a blocking get_multi").len(), 2);
            "hit 1".to_owned()
        }
    };
    let mut expected = [format!("op gets {a1} keys=1 {outcome}"), format!("op gets {a2} keys=1 {outcome}")];
    expected.sort();
    assert_eq!(events.take(), expected, "{}: a dropped get_multi", A::NAME);
    for stats in A::pool_stats(&c).values() {
        assert_eq!((stats.created, stats.closed.len()), (1, 0), "{stats:?}");
    }
}

/// A server that dies is marked down once, after the policy's consecutive failures, and
/// marked up once, when a probe finds it back; the calls between fail fast and reach no
/// connection.
pub async fn observer_hears_servers_marked_down_and_up<A: Adapter>() {
    let mut m = Memcached::start();
    let addr = m.addr();
    let retry_after = Duration::from_millis(100);
    let policy =
        FailurePolicy { failure_limit: 3, retry_after, max_retry_after: retry_after * 4, eject: false };
    let recorder = Arc::new(Recorder::default());
    let cfg = ClientConfig::new([addr.clone()]).timeout(Duration::from_secs(1)).failure_policy(policy);
    let c = client::<A>(cfg.observer(recorder.clone()));
    expect_ok!(A::set(&c, &Item::new("k", "v")).await, "set");
    m.stop();
    let mut failures = 0;
    loop {
        match A::get(&c, "k").await {
            Err(Error::ServerUnavailable { .. }) => break,
            Err(e) if e.is_transport_failure() => failures += 1,
            other => panic!("{}: get from a stopped server: {other:?}", A::NAME),
        }
        assert!(failures <= 3, "{}: not down after {failures} failures", A::NAME);
    }
    let got = recorder.take();
    let count = |got: &[String], line: &str| got.iter().filter(|e| *e == line).count();
    assert_eq!(count(&got, &format!("down {addr}")), 1, "{}: marked down once: {got:?}", A::NAME);
    assert_eq!(count(&got, &format!("up {addr}")), 0, "{}: {got:?}", A::NAME);

    m.restart();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match A::get(&c, "k").await {
            Ok(_) | Err(Error::CacheMiss) => break,
            Err(e) => assert!(Instant::now() < deadline, "{}: never back: {e:?}", A::NAME),
        }
        super::util::yield_now().await;
        std::thread::sleep(Duration::from_millis(5));
    }
    let got = recorder.take();
    assert_eq!(count(&got, &format!("up {addr}")), 1, "{}: marked up once: {got:?}", A::NAME);
    assert_eq!(count(&got, &format!("down {addr}")), 0, "{}: {got:?}", A::NAME);
}
