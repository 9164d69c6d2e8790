//! Connections to one server: at most `max_idle_conns` open at once, idle ones reused.

use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Instant;

use memcache_proto::config::Config;
use memcache_proto::{Error, ServerAddr};

use crate::conn::Conn;

/// The connections to one server. A caller takes an idle one, or opens one while fewer than
/// the bound are open, or waits (until its deadline) for one to come back.
#[derive(Debug)]
pub(crate) struct ServerPool {
    state: Mutex<PoolState>,
    returned: Condvar,
}

#[derive(Debug, Default)]
struct PoolState {
    idle: Vec<Conn>,
    /// Connections open: idle ones plus those checked out.
    open: usize,
    closed: bool,
}

impl ServerPool {
    pub(crate) fn new() -> ServerPool {
        ServerPool { state: Mutex::new(PoolState::default()), returned: Condvar::new() }
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
        deadline: Instant,
    ) -> Result<(Conn, bool), Error> {
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
                    return Ok((conn, true));
                }
                drop(conn);
                self.release();
                state = self.lock();
                continue;
            }
            if state.open < config.max_idle_conns {
                state.open += 1;
                drop(state);
                return match Conn::connect(server, config) {
                    Ok(conn) => Ok((conn, false)),
                    Err(e) => {
                        self.release();
                        Err(e)
                    }
                };
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(Error::Timeout);
            }
            state = self.returned.wait_timeout(state, left).unwrap_or_else(|p| p.into_inner()).0;
        }
    }

    /// Takes `conn` back, or closes it if `reusable` is false.
    pub(crate) fn checkin(&self, conn: Conn, reusable: bool) {
        let mut state = self.lock();
        if reusable && !state.closed {
            state.idle.push(conn);
            drop(state);
            self.returned.notify_one();
        } else {
            drop(state);
            drop(conn);
            self.release();
        }
    }

    /// One connection fewer is open.
    fn release(&self) {
        self.lock().open -= 1;
        self.returned.notify_one();
    }

    /// Closes the idle connections; later checkouts fail with [`Error::Closed`].
    pub(crate) fn close(&self) {
        let mut state = self.lock();
        state.closed = true;
        let idle = std::mem::take(&mut state.idle);
        state.open -= idle.len();
        drop(state);
        drop(idle);
        self.returned.notify_all();
    }
}
