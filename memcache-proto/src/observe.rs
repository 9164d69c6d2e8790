//! What the clients report while they work: plain data for metrics, logs and tracing.
//!
//! An [`Observer`] given to `Builder::observer` hears one [`OperationEvent`] per request
//! answered (or failed) by a server, and a [`ConnectionEvent`] whenever a connection opens,
//! closes, or a caller waits for one. Nothing here depends on a metrics or tracing crate, and
//! a client without an observer pays one `Option` check per event. Keys are never part of an
//! event: they can hold personal data.
//!
//! [`PoolCounters`] are the lifetime counters behind each client's `pool_stats()`.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use crate::response::Response;
use crate::{Command, Error, ServerAddr};

/// Receives the clients' events. Every method defaults to doing nothing. Called on the
/// caller's thread or task, inline: keep it cheap (count, or hand off to a channel).
pub trait Observer: Send + Sync + 'static {
    /// A request finished: answered, failed, or given up on.
    fn operation(&self, event: &OperationEvent<'_>) {
        let _ = event;
    }
    /// A connection opened or closed, or a caller waited for one.
    fn connection(&self, event: &ConnectionEvent<'_>) {
        let _ = event;
    }
}

/// One request to one server (a `get_multi` over three servers is three events).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct OperationEvent<'a> {
    /// The memcached command, as OpenTelemetry's `db.operation.name`: `get`, `gets`, `set`,
    /// `cas`, `incr`, `delete`, `touch`, `gat`, `flush_all`, `version`, `stats`, ...
    pub operation: &'static str,
    /// The server that was asked.
    pub server: &'a ServerAddr,
    /// How many keys the request carried (OpenTelemetry's `db.operation.batch.size`).
    pub keys: usize,
    /// Value bytes sent (the data block of a storage command).
    pub bytes_out: usize,
    /// Value bytes received (the data blocks of a retrieval).
    pub bytes_in: usize,
    /// From the request's submission to its answer (or failure).
    pub duration: Duration,
    /// What came of it.
    pub outcome: Outcome,
}

/// What a request came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Outcome {
    /// A retrieval found values: how many.
    Hit(usize),
    /// A retrieval found nothing, or `delete`/`touch`/`incr` found no item.
    Miss,
    /// A storage command stored its value.
    Stored,
    /// A conditional store did not happen (`NOT_STORED`).
    NotStored,
    /// A compare-and-swap lost (`EXISTS`).
    Exists,
    /// Any other success (`DELETED`, `TOUCHED`, a counter, `OK`, a version, stats).
    Done,
    /// A failure, by [`Error::kind`] (OpenTelemetry's `error.type`).
    Error(&'static str),
    /// The caller dropped its future before the answer came (async clients). The request
    /// may still reach the server; its reply is read and discarded, and the connection
    /// stays open.
    Cancelled,
}

impl Outcome {
    /// The outcome of a request that got `response`.
    pub fn of_response(response: &Response) -> Outcome {
        match response {
            Response::Values(v) if v.is_empty() => Outcome::Miss,
            Response::Values(v) => Outcome::Hit(v.len()),
            Response::Stored => Outcome::Stored,
            Response::NotStored => Outcome::NotStored,
            Response::Exists => Outcome::Exists,
            Response::NotFound => Outcome::Miss,
            Response::ServerError(_) => Outcome::Error("server_error"),
            Response::ClientError(_) => Outcome::Error("client_error"),
            Response::Error => Outcome::Error("unknown_command"),
            _ => Outcome::Done,
        }
    }

    /// The outcome of a request answered by `result`.
    pub fn of(result: &Result<Response, Error>) -> Outcome {
        match result {
            Ok(response) => Outcome::of_response(response),
            Err(e) => Outcome::Error(e.kind()),
        }
    }
}

/// Reports one request of `command` to `server`, answered by `reply` after `duration`, to
/// `observer` if there is one: the one place both clients turn a request into an event.
pub fn report(
    observer: Option<&dyn Observer>,
    server: &ServerAddr,
    command: &Command,
    duration: Duration,
    reply: &Result<Response, Error>,
) {
    let Some(observer) = observer else { return };
    let bytes_in = match reply {
        Ok(Response::Values(values)) => values.iter().map(|v| v.data.len()).sum(),
        _ => 0,
    };
    observer.operation(&OperationEvent {
        operation: command.name(),
        server,
        keys: command.key_count(),
        bytes_out: command.value_len(),
        bytes_in,
        duration,
        outcome: Outcome::of(reply),
    });
}

/// A request under way, as an observer will hear of it: what [`Unanswered`] needs to report
/// it if its caller gives up.
#[derive(Debug)]
pub struct Started {
    server: ServerAddr,
    operation: &'static str,
    keys: usize,
    bytes_out: usize,
    at: Instant,
}

impl Started {
    /// `command` to `server`, sent at `at`.
    pub fn new(server: &ServerAddr, command: &Command, at: Instant) -> Started {
        let (operation, keys, bytes_out) = (command.name(), command.key_count(), command.value_len());
        Started { server: server.clone(), operation, keys, bytes_out, at }
    }
}

/// Requests whose end the observer has not heard yet, held by the future that awaits them: if
/// that future is dropped first (the caller gave up), each is reported then as
/// [`Outcome::Cancelled`], so a dropped future leaves a trace. Once the answers are in, the
/// client reports them itself and [`disarm`](Self::disarm)s this. Holds nothing (and costs
/// nothing) without an observer.
pub struct Unanswered<'a, P: AsMut<[Option<Started>]>> {
    observer: Option<&'a dyn Observer>,
    now: fn() -> Instant,
    parts: P,
}

impl<'a, P: AsMut<[Option<Started>]>> Unanswered<'a, P> {
    /// Watches `parts` for `observer`, timing them with the client's clock `now`.
    pub fn new(observer: Option<&'a dyn Observer>, now: fn() -> Instant, parts: P) -> Self {
        Unanswered { observer, now, parts }
    }

    /// The answers came: nothing to report on drop.
    pub fn disarm(&mut self) {
        self.parts.as_mut().iter_mut().for_each(|p| *p = None);
    }
}

impl Unanswered<'_, Vec<Option<Started>>> {
    /// Watches one more request (if an observer listens: `started` is `None` otherwise).
    pub fn push(&mut self, started: Option<Started>) {
        if started.is_some() {
            self.parts.push(started);
        }
    }
}

impl<P: AsMut<[Option<Started>]>> Drop for Unanswered<'_, P> {
    fn drop(&mut self) {
        let Some(observer) = self.observer else { return };
        for part in self.parts.as_mut().iter_mut().filter_map(Option::take) {
            observer.operation(&OperationEvent {
                operation: part.operation,
                server: &part.server,
                keys: part.keys,
                bytes_out: part.bytes_out,
                bytes_in: 0,
                duration: (self.now)().saturating_duration_since(part.at),
                outcome: Outcome::Cancelled,
            });
        }
    }
}

impl<P: AsMut<[Option<Started>]>> fmt::Debug for Unanswered<'_, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Unanswered").field("observer", &self.observer.is_some()).finish_non_exhaustive()
    }
}

/// A connection's life.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum ConnectionEvent<'a> {
    /// A connection was established (TCP connect, and TLS handshake where configured).
    Opened {
        /// To this server.
        server: &'a ServerAddr,
        /// How long connecting took.
        connect_time: Duration,
    },
    /// A connection attempt failed.
    ConnectFailed {
        /// To this server.
        server: &'a ServerAddr,
        /// Why, by [`Error::kind`].
        error: &'static str,
    },
    /// A connection was closed.
    Closed {
        /// To this server.
        server: &'a ServerAddr,
        /// Why.
        reason: CloseReason,
    },
    /// A caller waited for a connection (every one allowed was busy).
    Waited {
        /// For this server.
        server: &'a ServerAddr,
        /// How long.
        waited: Duration,
    },
    /// The server was marked down after consecutive transport failures (see
    /// [`FailurePolicy`](crate::FailurePolicy)): calls for it fail fast until a probe answers.
    MarkedDown {
        /// This server.
        server: &'a ServerAddr,
    },
    /// A server marked down answered a probe: it is back.
    MarkedUp {
        /// This server.
        server: &'a ServerAddr,
    },
}

/// Why a connection was closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CloseReason {
    /// A request on it outlived the timeout (the server may be stalled).
    Timeout,
    /// A socket error.
    Io,
    /// The server sent bytes that are not the protocol.
    Protocol,
    /// A caller dropped its future mid-request, so the reply can't be matched any more.
    DroppedFuture,
    /// The server closed it (restart, idle timeout, a proxy).
    ServerClosed,
    /// The client was closed, or the server left the server list.
    ClientClosed,
    /// The pool already held as many idle connections as it keeps.
    Idle,
}

impl CloseReason {
    /// Every reason, in a fixed order (for counters and reports).
    pub const ALL: [CloseReason; 7] = [
        CloseReason::Timeout,
        CloseReason::Io,
        CloseReason::Protocol,
        CloseReason::DroppedFuture,
        CloseReason::ServerClosed,
        CloseReason::ClientClosed,
        CloseReason::Idle,
    ];

    /// The reason a connection that failed with `error` is closed.
    pub fn of(error: &Error) -> CloseReason {
        match error {
            Error::Timeout => CloseReason::Timeout,
            Error::Protocol(_) => CloseReason::Protocol,
            Error::Closed => CloseReason::ClientClosed,
            Error::Io(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => CloseReason::ServerClosed,
            _ => CloseReason::Io,
        }
    }

    /// A short name for logs and metrics labels.
    pub fn as_str(self) -> &'static str {
        match self {
            CloseReason::Timeout => "timeout",
            CloseReason::Io => "io_error",
            CloseReason::Protocol => "protocol_error",
            CloseReason::DroppedFuture => "dropped_future",
            CloseReason::ServerClosed => "server_closed",
            CloseReason::ClientClosed => "client_closed",
            CloseReason::Idle => "idle_limit",
        }
    }

    fn index(self) -> usize {
        CloseReason::ALL.iter().position(|r| *r == self).unwrap_or(0)
    }
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Lifetime counters of one server's connections, shared by a pool and its connections.
#[derive(Debug, Default)]
pub struct PoolCounters {
    created: AtomicU64,
    closed: [AtomicU64; CloseReason::ALL.len()],
}

impl PoolCounters {
    /// A connection was opened.
    pub fn opened(&self) {
        self.created.fetch_add(1, Relaxed);
    }

    /// A connection was closed for `reason`.
    pub fn closed(&self, reason: CloseReason) {
        self.closed[reason.index()].fetch_add(1, Relaxed);
    }

    /// Connections opened so far.
    pub fn created(&self) -> u64 {
        self.created.load(Relaxed)
    }

    /// Connections closed so far, by reason (only reasons that occurred).
    pub fn closed_by_reason(&self) -> Vec<(CloseReason, u64)> {
        CloseReason::ALL
            .iter()
            .map(|r| (*r, self.closed[r.index()].load(Relaxed)))
            .filter(|(_, n)| *n > 0)
            .collect()
    }
}

/// One server's connections, as `Client::pool_stats()` reports them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PoolStats {
    /// Connections open now.
    pub open: usize,
    /// Of those, idle (no request in flight).
    pub idle: usize,
    /// Of those, carrying requests.
    pub in_use: usize,
    /// Connections opened since the client was built.
    pub created: u64,
    /// Connections closed since the client was built, by reason.
    pub closed: Vec<(CloseReason, u64)>,
    /// Requests written or queued and not yet answered.
    pub in_flight: usize,
    /// Callers waiting for a connection (or for room on one).
    pub waiting: usize,
}

impl PoolStats {
    /// Connections closed for `reason` so far.
    pub fn closed_for(&self, reason: CloseReason) -> u64 {
        self.closed.iter().find(|(r, _)| *r == reason).map_or(0, |(_, n)| *n)
    }
}
