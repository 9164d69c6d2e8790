//! The blocking `Client`: a pool of connections per server, and gomemcache's calls.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use memcache_proto::config::{Config, FromConfig, deadline};
use memcache_proto::fleet::Fleet;
use memcache_proto::observe::{self, CloseReason, PoolStats};
use memcache_proto::op::{KeyedOp, Op};
use memcache_proto::retry::{self, Attempt};
use memcache_proto::trace::{self, ServerSpan};
use memcache_proto::{Error, Limits, Response, ServerAddr};

use crate::conn::Conn;
use crate::pool::{Checkout, ServerPool};
use crate::socket::Connector;

/// A memcached client over `std::net`. Cheap to clone (clones share the pools) and safe to
/// share across threads.
///
/// Each call takes an idle connection to the key's server (or opens one, or, while
/// `max_conns_per_server` are open, waits for one within its timeout), writes the request,
/// reads the reply within the timeout, and gives the connection back only if the exchange
/// left it in sync (see [`Error::is_connection_broken`]).
#[derive(Clone, Debug)]
pub struct Client {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: Config,
    fleet: Arc<Fleet>,
    connector: Option<Connector>,
    pools: Mutex<HashMap<ServerAddr, Arc<ServerPool>>>,
    closed: AtomicBool,
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Conn")
    }
}

/// One server's part of a multi-server call after its slot was taken.
#[allow(clippy::large_enum_variant)] // one per server of a call, moved once: boxing buys nothing
enum Leg {
    /// Sent (or failed to send) on a pooled connection.
    Sent(Result<(), Error>, (Conn, bool, Arc<ServerPool>)),
    /// A new connection is to be opened in the pool.
    ToOpen(Arc<ServerPool>),
}

/// Expands the calls of [`memcache_proto::client_calls!`] as blocking methods.
macro_rules! blocking_calls {
    (@this $this:ident $(. $aw:ident)?; $(
        $(#[$doc:meta])*
        fn $name:ident $([$($generics:tt)*])? ($($arg:ident: $ty:ty),* $(,)?) -> $out:ty $body:block
    )*) => {$(
        $(#[$doc])*
        pub fn $name $(<$($generics)*>)? (&self, $($arg: $ty),*) -> $out {
            let $this = self;
            memcache_proto::__call_span!(stringify!($name)).run(|| -> $out { $body })
        }
    )*};
}

pub(crate) use blocking_calls;

impl FromConfig for Client {
    /// One connection per concurrent caller, kept for reuse: a pool of threads keeps its
    /// connections instead of reconnecting on every call.
    const DEFAULT_MAX_IDLE_CONNS: usize = 64;

    type Connector = Connector;

    fn from_config(config: Config, connector: Option<Connector>) -> Result<Self, Error> {
        let fleet = Arc::new(Fleet::from_config(&config, Instant::now()));
        let pools = Mutex::new(HashMap::new());
        let inner = Inner { config, fleet, connector, pools, closed: AtomicBool::new(false) };
        Ok(Client { inner: Arc::new(inner) })
    }
}

impl Client {
    memcache_proto::client_constructors!();

    memcache_proto::client_calls!(blocking_calls; this);

    /// Each server's connections (open, idle, in use, created, closed by reason, callers
    /// waiting), keyed by server address.
    pub fn pool_stats(&self) -> HashMap<String, PoolStats> {
        self.lock_pools().iter().map(|(server, pool)| (server.to_string(), pool.stats())).collect()
    }

    fn fleet(&self) -> &Fleet {
        &self.inner.fleet
    }

    fn limits(&self) -> &Limits {
        &self.inner.config.limits
    }

    fn now(&self) -> Instant {
        Instant::now()
    }

    fn with_fleet(&self, f: impl FnOnce(&Fleet) -> Result<(), Error>) -> Result<(), Error> {
        let result = f(&self.inner.fleet);
        self.follow_fleet();
        result
    }

    /// Drops the pools of servers that left the list (their connections close once the calls
    /// using them are done: each holds the pool until then), and starts a periodic
    /// re-resolution on its own thread when one is due.
    fn follow_fleet(&self) {
        let forget = |gone: &[ServerAddr]| gone.iter().for_each(|s| drop(self.lock_pools().remove(s)));
        if let Some(refresh) = self.inner.fleet.tend(Instant::now(), forget) {
            std::thread::spawn(refresh);
        }
    }

    fn shut_down(&self) {
        self.inner.closed.store(true, Ordering::Release);
        let pools = std::mem::take(&mut *self.lock_pools());
        pools.values().for_each(|p| p.close());
    }

    fn keyed<O: KeyedOp>(&self, op: O) -> Result<O::Output, Error> {
        self.follow_fleet();
        let (server, permit) = self.inner.fleet.route(op.key().as_bytes(), Instant::now())?;
        trace::route(&self.inner.config, &server, op.key());
        let result = self.request(&server, op, false);
        self.inner.fleet.record(&server, permit, &result, Instant::now());
        result
    }

    /// One request and its reply, under the call's deadline (`resent`: this is the one resend
    /// the retry rule allows).
    fn request<O: Op>(&self, server: &ServerAddr, mut op: O, resent: bool) -> Result<O::Output, Error> {
        let started = Instant::now();
        let deadline = deadline(started, self.inner.config.timeout);
        let (mut conn, reused, pool) = match self.checkout(server, deadline) {
            Ok(lease) => lease,
            Err(e) => {
                let observer = self.inner.config.observer.as_deref();
                observe::report(observer, server, op.command(), started.elapsed(), &Err(e.clone()));
                return Err(e);
            }
        };
        let reply = conn.send(op.command(), deadline).and_then(|()| {
            op.prepare();
            conn.receive(deadline)
        });
        self.settle(server, op, (conn, reused, pool), (started, reply), resent)
    }

    /// Ends an attempt: the op's result from its reply, the connection back to its pool only
    /// if that result leaves it in sync, and, if the exchange failed and
    /// [`retry::may_resend`] allows it, the request once more on another connection.
    fn settle<O: Op>(
        &self,
        server: &ServerAddr,
        op: O,
        (conn, reused, pool): (Conn, bool, Arc<ServerPool>),
        (started, reply): (Instant, Result<Response, Error>),
        resent: bool,
    ) -> Result<O::Output, Error> {
        let observer = self.inner.config.observer.as_deref();
        observe::report(observer, server, op.command(), started.elapsed(), &reply);
        let e = match reply {
            Ok(response) => {
                let result = op.finish(response);
                self.checkin(server, &pool, conn, result.as_ref().err());
                return result;
            }
            Err(e) => e,
        };
        let attempt = Attempt::on(reused).written(conn.wrote_any()).resent(resent);
        self.checkin(server, &pool, conn, Some(&e));
        self.resend_or(server, op, attempt, e)
    }

    /// The request again on a fresh connection if the retry rule allows it, or `e`.
    fn resend_or<O: Op>(
        &self,
        server: &ServerAddr,
        op: O,
        attempt: Attempt,
        e: Error,
    ) -> Result<O::Output, Error> {
        if retry::may_resend(op.command(), attempt, &e) { self.request(server, op, true) } else { Err(e) }
    }

    /// Sends every op to its server, then reads every reply: all servers work concurrently.
    /// A server that is down answers its [`Error::ServerUnavailable`] without a connection.
    /// Ops for the same server (a `get_multi` split into several commands) are pipelined on
    /// one connection.
    fn fan_out<O: Op>(&self, mut plan: Vec<(ServerAddr, O)>) -> Vec<(ServerAddr, Result<O::Output, Error>)> {
        self.follow_fleet();
        let started = Instant::now();
        let deadline = deadline(started, self.inner.config.timeout);
        // One order for taking connections to several servers, so two calls can't each hold
        // one server's last connection while waiting for the other's.
        plan.sort_by(|a, b| a.0.as_str().cmp(b.0.as_str()));
        let mut groups: Vec<(ServerAddr, Vec<O>)> = Vec::new();
        for (server, op) in plan {
            match groups.last_mut() {
                Some((s, ops)) if *s == server => ops.push(op),
                _ => groups.push((server, vec![op])),
            }
        }
        // Every slot first, in that order; requests on pooled connections leave at once.
        let reserved: Vec<_> = groups
            .into_iter()
            .map(|(server, ops)| {
                let span = ServerSpan::new(&self.inner.config, &server, ops[0].command());
                let admitted = self.inner.fleet.admit(&server, Instant::now());
                let lease = admitted.and_then(|permit| {
                    let (checkout, pool) = self.reserve(&server, deadline)?;
                    let leg = match checkout {
                        Checkout::Idle(mut conn) => {
                            let sent = ops.iter().try_for_each(|op| conn.send(op.command(), deadline));
                            Leg::Sent(sent, (conn, true, pool))
                        }
                        Checkout::Open => Leg::ToOpen(pool),
                    };
                    Ok((permit, leg))
                });
                (server, ops, lease, span)
            })
            .collect();
        // Then the new connections: a connect or TLS handshake to a stalled server may take
        // the whole deadline, and the other servers' requests are already on their way.
        let mut sent: Vec<_> = reserved
            .into_iter()
            .map(|(server, ops, lease, span)| {
                let lease = lease.and_then(|(permit, leg)| match leg {
                    Leg::Sent(sent, held) => Ok((permit, sent, held)),
                    Leg::ToOpen(pool) => {
                        let mut conn =
                            pool.open(&server, &self.inner.config, self.inner.connector.as_ref())?;
                        let sent = ops.iter().try_for_each(|op| conn.send(op.command(), deadline));
                        Ok((permit, sent, (conn, false, pool)))
                    }
                });
                (server, ops, lease, span)
            })
            .collect();
        // Every request is on its way: what can be done before the replies, while they come.
        for (_, ops, lease, _) in &mut sent {
            if matches!(lease, Ok((_, Ok(()), _))) {
                ops.iter_mut().for_each(|op| {
                    op.prepare();
                });
            }
        }
        let mut results = Vec::new();
        for (server, ops, lease, span) in sent {
            let answers = match lease {
                Ok((permit, sent, lease)) => {
                    let answers =
                        span.in_scope(|| self.settle_all(&server, ops, lease, (started, sent), deadline));
                    let first_error = answers.iter().find_map(|r| r.as_ref().err().cloned());
                    span.finish(&first_error.clone().map_or(Ok(()), Err));
                    self.inner.fleet.record(
                        &server,
                        permit,
                        &first_error.map_or(Ok(()), Err),
                        Instant::now(),
                    );
                    answers
                }
                Err(e) => {
                    span.finish::<()>(&Err(e.clone()));
                    ops.iter().map(|_| Err(e.clone())).collect()
                }
            };
            results.extend(answers.into_iter().map(|r| (server.clone(), r)));
        }
        results
    }

    /// [`settle`](Self::settle) for several ops pipelined on one connection: reads their
    /// replies in order, gives the connection back (only if every result leaves it in sync),
    /// and then resends the failed ops that the retry rule allows.
    fn settle_all<O: Op>(
        &self,
        server: &ServerAddr,
        ops: Vec<O>,
        (mut conn, reused, pool): (Conn, bool, Arc<ServerPool>),
        (started, sent): (Instant, Result<(), Error>),
        deadline: Instant,
    ) -> Vec<Result<O::Output, Error>> {
        let observer = self.inner.config.observer.as_deref();
        let mut failure = sent.err();
        let mut broken: Option<Error> = failure.clone();
        let mut answers = Vec::with_capacity(ops.len());
        for op in ops {
            let reply = match &failure {
                Some(e) => Err(e.clone()),
                None => conn.receive(deadline),
            };
            observe::report(observer, server, op.command(), started.elapsed(), &reply);
            answers.push(match reply {
                Ok(response) => {
                    let result = op.finish(response);
                    match &result {
                        Err(e) if broken.is_none() && e.is_connection_broken() => broken = Some(e.clone()),
                        _ => {}
                    }
                    Ok(result)
                }
                Err(e) => {
                    failure = Some(e.clone());
                    broken.get_or_insert_with(|| e.clone());
                    Err((op, e))
                }
            });
        }
        let attempt = Attempt::on(reused).written(conn.wrote_any());
        self.checkin(server, &pool, conn, broken.as_ref());
        answers
            .into_iter()
            .map(|answer| answer.unwrap_or_else(|(op, e)| self.resend_or(server, op, attempt, e)))
            .collect()
    }

    /// An idle connection to `server` or the right to open one, and the pool they belong to.
    fn reserve(&self, server: &ServerAddr, deadline: Instant) -> Result<(Checkout, Arc<ServerPool>), Error> {
        let pool = self.pool(server)?;
        Ok((pool.reserve(server, &self.inner.config, deadline)?, pool))
    }

    fn pool(&self, server: &ServerAddr) -> Result<Arc<ServerPool>, Error> {
        if self.inner.closed.load(Ordering::Acquire) {
            return Err(Error::Closed);
        }
        Ok(self.lock_pools().entry(server.clone()).or_insert_with(|| Arc::new(ServerPool::new())).clone())
    }

    /// A connection to `server` (`true`: reused from the pool) and the pool it goes back to.
    fn checkout(
        &self,
        server: &ServerAddr,
        deadline: Instant,
    ) -> Result<(Conn, bool, Arc<ServerPool>), Error> {
        let pool = self.pool(server)?;
        let (conn, reused) =
            pool.checkout(server, &self.inner.config, self.inner.connector.as_ref(), deadline)?;
        Ok((conn, reused, pool))
    }

    /// Returns `conn` to its pool, or closes it if `error` (the call's final error, after
    /// [`Op::finish`]) or its own state says it is out of sync.
    fn checkin(&self, server: &ServerAddr, pool: &ServerPool, conn: Conn, error: Option<&Error>) {
        let broken = match error {
            Some(e) if e.is_connection_broken() => Some(CloseReason::of(e)),
            _ if !conn.reusable() => Some(CloseReason::Protocol),
            _ => None,
        };
        pool.checkin(server, &self.inner.config, conn, broken);
    }

    fn lock_pools(&self) -> std::sync::MutexGuard<'_, HashMap<ServerAddr, Arc<ServerPool>>> {
        self.inner.pools.lock().unwrap_or_else(|p| p.into_inner())
    }
}
