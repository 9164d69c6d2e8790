//! Connections to one server: idle ones reused (at most `max_idle_conns` kept), at most
//! `max_conns_per_server` open if that is set.

use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Instant;

use memcache_proto::config::Config;
use memcache_proto::observe::{CloseReason, ConnectionEvent, PoolCounters, PoolStats};
use memcache_proto::{Error, ServerAddr};

use crate::conn::Conn;
use crate::socket::Connector;

/// What [`ServerPool::reserve`] got.
#[allow(clippy::large_enum_variant)] // one per server of a call, moved once: boxing buys nothing
pub(crate) enum Checkout {
    /// A pooled connection, checked alive.
    Idle(Conn),
    /// The right to open one ([`ServerPool::open`]).
    Open,
}

/// The connections to one server. A caller takes an idle one, or opens one while fewer than
/// the bound are open, or waits (until its deadline) for one to come back.
#[derive(Debug)]
pub(crate) struct ServerPool {
    state: Mutex<PoolState>,
    returned: Condvar,
    counters: PoolCounters,
}

#[derive(Debug, Default)]
struct PoolState {
    idle: Vec<Conn>,
    /// Connections open: idle ones plus those checked out.
    open: usize,
    /// Callers waiting for a connection to come back.
    waiting: usize,
    closed: bool,
}

impl ServerPool {
    pub(crate) fn new() -> ServerPool {
        ServerPool {
            state: Mutex::new(PoolState::default()),
            returned: Condvar::new(),
            counters: PoolCounters::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, PoolState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A connection to `server` (`true`: reused from the pool) or a new one. Idle connections
    /// that the server closed are dropped on the way.
    pub(crate) fn checkout(
        &self,
        server: &ServerAddr,
        config: &Config,
        connector: Option<&Connector>,
        deadline: Instant,
    ) -> Result<(Conn, bool), Error> {
        match self.reserve(server, config, deadline)? {
            Checkout::Idle(conn) => Ok((conn, true)),
            Checkout::Open => self.connect(server, config, connector),
        }
    }

    /// Opens the connection a [`Checkout::Open`] reserved; the reservation is given back if
    /// that fails.
    pub(crate) fn open(
        &self,
        server: &ServerAddr,
        config: &Config,
        connector: Option<&Connector>,
    ) -> Result<Conn, Error> {
        self.connect(server, config, connector).map(|(conn, _)| conn)
    }

    /// An idle connection, or the right to open one (counted as open from now on), waiting
    /// until `deadline` while every connection is busy. Opening is left to the caller, so a
    /// call to several servers can first send on the connections it already has: a slow
    /// connect or TLS handshake to one server then does not hold up the others' requests.
    pub(crate) fn reserve(
        &self,
        server: &ServerAddr,
        config: &Config,
        deadline: Instant,
    ) -> Result<Checkout, Error> {
        let mut state = self.lock();
        loop {
            if state.closed {
                return Err(Error::Closed);
            }
            if let Some(mut conn) = state.idle.pop() {
                drop(state);
                // A connection that died while idle is replaced before anything is written
                // to it, so that the request can't be lost with it (see `memcache_proto::retry`).
                if conn.is_alive() && conn.reset_timeout(config.timeout).is_ok() {
                    return Ok(Checkout::Idle(conn));
                }
                self.close_one(server, config, conn, CloseReason::ServerClosed);
                state = self.lock();
                continue;
            }
            if config.max_conns_per_server.is_none_or(|cap| state.open < cap) {
                state.open += 1;
                return Ok(Checkout::Open);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(Error::Timeout);
            }
            state.waiting += 1;
            let waited = Instant::now();
            state = self.returned.wait_timeout(state, left).unwrap_or_else(|p| p.into_inner()).0;
            state.waiting -= 1;
            if let Some(observer) = &config.observer {
                observer.connection(&ConnectionEvent::Waited { server, waited: waited.elapsed() });
            }
        }
    }

    /// Opens a connection the pool already counted as open.
    fn connect(
        &self,
        server: &ServerAddr,
        config: &Config,
        connector: Option<&Connector>,
    ) -> Result<(Conn, bool), Error> {
        let started = Instant::now();
        let result = Conn::connect(server, config, connector);
        let observer = config.observer.as_deref();
        match &result {
            Ok(_) => {
                self.counters.opened();
                if let Some(o) = observer {
                    o.connection(&ConnectionEvent::Opened { server, connect_time: started.elapsed() });
                }
            }
            Err(e) => {
                self.release();
                if let Some(o) = observer {
                    o.connection(&ConnectionEvent::ConnectFailed { server, error: e.kind() });
                }
            }
        }
        result.map(|conn| (conn, false))
    }

    /// Closes `conn` for `reason`.
    fn close_one(&self, server: &ServerAddr, config: &Config, conn: Conn, reason: CloseReason) {
        drop(conn);
        self.release();
        self.counters.closed(reason);
        if let Some(o) = &config.observer {
            o.connection(&ConnectionEvent::Closed { server, reason });
        }
    }

    /// Takes `conn` back to keep it idle, or closes it: when `broken` says why, when the pool
    /// was closed, or when it already keeps `max_idle_conns` idle ones.
    pub(crate) fn checkin(
        &self,
        server: &ServerAddr,
        config: &Config,
        conn: Conn,
        broken: Option<CloseReason>,
    ) {
        let mut state = self.lock();
        let reason = match broken {
            Some(reason) => reason,
            None if state.closed => CloseReason::ClientClosed,
            None if state.idle.len() >= config.max_idle_conns => CloseReason::Idle,
            None => {
                state.idle.push(conn);
                let waiting = state.waiting > 0;
                drop(state);
                self.wake_one(waiting);
                return;
            }
        };
        drop(state);
        self.close_one(server, config, conn, reason);
    }

    /// What `pool_stats` reports for this server.
    pub(crate) fn stats(&self) -> PoolStats {
        let state = self.lock();
        let mut stats = PoolStats::default();
        stats.open = state.open;
        stats.idle = state.idle.len();
        stats.in_use = state.open - state.idle.len();
        stats.in_flight = stats.in_use;
        stats.waiting = state.waiting;
        stats.created = self.counters.created();
        stats.closed = self.counters.closed_by_reason();
        stats
    }

    /// One connection fewer is open.
    fn release(&self) {
        let mut state = self.lock();
        state.open -= 1;
        let waiting = state.waiting > 0;
        drop(state);
        self.wake_one(waiting);
    }

    /// Wakes one caller waiting in [`reserve`](Self::reserve), if `waiting` (read under the
    /// lock that the change it announces was made under) says there is one. A waiter counts
    /// itself under that lock before it sleeps, so none is missed; and when nobody waits, as
    /// on almost every call, no `futex` system call is made (std's `notify_one` makes one
    /// whether or not a thread waits).
    fn wake_one(&self, waiting: bool) {
        if waiting {
            self.returned.notify_one();
        }
    }

    /// Closes the idle connections; later checkouts fail with [`Error::Closed`].
    pub(crate) fn close(&self) {
        let mut state = self.lock();
        state.closed = true;
        let idle = std::mem::take(&mut state.idle);
        state.open -= idle.len();
        drop(state);
        (0..idle.len()).for_each(|_| self.counters.closed(CloseReason::ClientClosed));
        drop(idle);
        self.returned.notify_all();
    }
}
