//! The observer hook and `pool_stats`: every request and every connection event is reported
//! once, for the right server and with the right reason.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use memcache_proto::observe::{CloseReason, ConnectionEvent, Observer, OperationEvent, Outcome};
use memcache_proto::{Error, FailurePolicy, Item};

use super::{Adapter, ClientConfig, client};
use crate::fault::{Fault, FaultServer, Proxy};
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
