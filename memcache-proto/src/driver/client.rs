//! The async [`Client`] and the [`Runtime`] an adapter supplies.
//!
//! `memcache-tokio` and `memcache-async-std` are this [`Client`] with their [`Runtime`]:
//! a socket type, a way to spawn a task, a timer and a clock. Everything else (pooling,
//! pipelining, timeouts, cancellation, multi-server calls) is here, so the two behave
//! identically. Nothing here blocks, spawns, sleeps or reads the time by itself: the runtime
//! does, through the trait.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::io;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use super::pipeline::{Clock, Pipe, Ticket, Transport};
use super::pool::{Lease, ServerPool};
use crate::config::{Config, FromConfig, deadline};
use crate::fleet::Fleet;
use crate::health::Permit;
use crate::observe::{self, ConnectionEvent, PoolStats};
use crate::op::{KeyedOp, Op};
use crate::resolve;
use crate::retry::{Attempt, may_resend};
use crate::{Endpoint, Error, ServerAddr};

/// What an async adapter supplies: its socket, task spawning, timer and clock.
pub trait Runtime: Send + Sync + 'static {
    /// The connected stream.
    type Io: Transport;
    /// Opens a connection to `endpoint` (TCP with `TCP_NODELAY`, or a Unix socket).
    fn connect(endpoint: &Endpoint) -> impl Future<Output = io::Result<Self::Io>> + Send;
    /// Runs `task` in the background.
    fn spawn<F: Future<Output = ()> + Send + 'static>(task: F);
    /// Runs `f` for at most `d`; `None` if it did not finish (then `f` is dropped).
    fn timeout<F: Future + Send>(d: Duration, f: F) -> impl Future<Output = Option<F::Output>> + Send;
    /// The current instant on the runtime's clock (the one its timers follow). Every deadline
    /// the client enforces is measured with it; nothing in the client reads the system clock.
    fn now() -> Instant;
    /// Runs blocking work (a server name lookup) where it cannot stall the executor, and
    /// resolves to its result. The default runs it on a new OS thread ([`on_thread`]); a
    /// runtime with a blocking pool (Tokio's `spawn_blocking`) should use that.
    ///
    /// [`on_thread`]: super::on_thread
    fn spawn_blocking<T: Send + 'static>(
        f: impl FnOnce() -> T + Send + 'static,
    ) -> impl Future<Output = T> + Send {
        super::on_thread(f)
    }
    /// Runs the TLS handshake for `server` over `io` (a fresh connection) and returns the
    /// secured stream. The client calls it within the connect timeout. The default refuses:
    /// an adapter built without its `tls` feature.
    #[cfg(any(feature = "tls", feature = "tls-aws-lc-rs"))]
    fn handshake(
        tls: &crate::tls::TlsConfig,
        server: &ServerAddr,
        io: Self::Io,
    ) -> impl Future<Output = Result<Self::Io, Error>> + Send {
        let _ = (tls, io);
        let message =
            format!("cannot connect to {server} with TLS: this adapter was built without its `tls` feature");
        std::future::ready(Err(Error::Tls(crate::TlsError::new(crate::TlsFailure::Config, message, None))))
    }
}

/// Opens a transport for a server: lets a client run over any stream (a proxy, a stream
/// connected by another runtime, a Unix socket chosen per server) instead of
/// [`Runtime::connect`]. Called for every new connection, within the connect timeout; TLS, when
/// configured, handshakes over what it returns. Set it with
/// [`Builder::connector`](crate::config::Builder::connector).
pub type Connector<Io> =
    Arc<dyn Fn(&ServerAddr) -> Pin<Box<dyn Future<Output = io::Result<Io>> + Send>> + Send + Sync>;

/// An async memcached client: cheap to clone, safe to share across tasks and threads.
///
/// Requests to one server are pipelined on at most `max_conns_per_server` connections (default
/// [`PIPES_PER_SERVER`]; callers are packed onto the open ones, and a new one is opened only
/// when every open one is saturated, so a high cap costs nothing until the load needs it); at
/// most `max_in_flight` requests ride on each,
/// and callers beyond that wait in FIFO order. A call that times out closes its connection
/// (the server may be stalled), and a call whose future is dropped leaves its reply to be
/// read and discarded, so a reply never reaches a caller it was not meant for.
pub struct Client<R: Runtime> {
    inner: Arc<Inner<R>>,
}

struct Inner<R: Runtime> {
    config: Config,
    fleet: Arc<Fleet>,
    pools: RwLock<HashMap<ServerAddr, Arc<ServerPool>>>,
    connector: Option<Connector<R::Io>>,
    closed: AtomicBool,
    runtime: PhantomData<fn() -> R>,
}

impl<R: Runtime> Clone for Client<R> {
    fn clone(&self) -> Self {
        Client { inner: self.inner.clone() }
    }
}

impl<R: Runtime> fmt::Debug for Client<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client").field("config", &self.inner.config).finish()
    }
}

impl<R: Runtime> FromConfig for Client<R> {
    type Connector = Connector<R::Io>;

    fn from_config(config: Config, connector: Option<Connector<R::Io>>) -> Result<Self, Error> {
        Ok(Client::with_parts(config, connector))
    }
}

/// Expands the calls of [`client_calls!`](crate::client_calls) as `async fn`s.
macro_rules! async_calls {
    (@this $this:ident $(. $aw:ident)?; $(
        $(#[$doc:meta])*
        fn $name:ident $([$($generics:tt)*])? ($($arg:ident: $ty:ty),* $(,)?) -> $out:ty $body:block
    )*) => {$(
        $(#[$doc])*
        pub async fn $name $(<$($generics)*>)? (&self, $($arg: $ty),*) -> $out {
            let $this = self;
            // Without the feature, the body as it is: no wrapper in the future's state.
            #[cfg(not(feature = "tracing"))]
            let out: $out = $body;
            #[cfg(feature = "tracing")]
            let out: $out = {
                let span = crate::__call_span!(stringify!($name));
                let out: $out = span.instrument(async { $body }).await;
                span.record(&out);
                out
            };
            out
        }
    )*};
}

pub(crate) use async_calls;

/// Connections per server when `max_conns_per_server` is not set: pipelining carries many
/// callers on each, so a second one is only for when the first is busy writing.
pub const PIPES_PER_SERVER: usize = 2;

/// A request submitted to a server, awaiting its reply.
struct Sent<O> {
    server: ServerAddr,
    op: O,
    /// How the fleet admitted the call (`None`: not at all, the server is down).
    permit: Option<Permit>,
    ticket: Result<(Ticket, Lease), Error>,
    reply: Option<Result<crate::Response, Error>>,
    /// When the request started, if an observer listens.
    started: Option<Instant>,
    /// Its span, a child of the call's (feature `tracing`).
    span: crate::trace::ServerSpan,
}

impl<R: Runtime> Client<R> {
    crate::client_constructors!();

    fn with_parts(config: Config, connector: Option<Connector<R::Io>>) -> Self {
        let inner = Inner {
            fleet: Arc::new(Fleet::from_config(&config, R::now())),
            config,
            pools: RwLock::new(HashMap::new()),
            connector,
            closed: AtomicBool::new(false),
            runtime: PhantomData,
        };
        Client { inner: Arc::new(inner) }
    }

    crate::client_calls!(async_calls; this.await);

    /// Each server's connections (open, idle, in use, created, closed by reason, requests in
    /// flight, callers waiting), keyed by server address.
    pub fn pool_stats(&self) -> HashMap<String, PoolStats> {
        let pools = self.inner.pools.read().unwrap_or_else(|p| p.into_inner());
        pools.iter().map(|(server, pool)| (server.to_string(), pool.stats())).collect()
    }

    fn observer(&self) -> Option<&dyn observe::Observer> {
        self.inner.config.observer.as_deref()
    }

    /// The start of a request, read from the clock only if an observer will hear of it.
    fn started(&self) -> Option<Instant> {
        self.observer().map(|_| R::now())
    }

    /// Reports a request started at `started` (see [`Client::started`]) and its `reply`.
    fn report(
        &self,
        server: &ServerAddr,
        command: &crate::Command,
        started: Option<Instant>,
        reply: &Result<crate::Response, Error>,
    ) {
        if let Some(started) = started {
            let duration = R::now().saturating_duration_since(started);
            observe::report(self.observer(), server, command, duration, reply);
        }
    }

    fn fleet(&self) -> &Fleet {
        &self.inner.fleet
    }

    fn now(&self) -> Instant {
        R::now()
    }

    async fn with_fleet<F>(&self, f: F) -> Result<(), Error>
    where
        F: FnOnce(&Fleet) -> Result<(), Error> + Send + 'static,
    {
        let fleet = self.inner.fleet.clone();
        let result = R::spawn_blocking(move || f(&fleet)).await;
        self.follow_fleet();
        result
    }

    /// Drops the pools of servers that left the list (their connections close once the
    /// requests in flight on them are done: each holds the pool until then), and starts a
    /// periodic re-resolution on a blocking thread when one is due.
    fn follow_fleet(&self) {
        let forget = |gone: &[ServerAddr]| {
            let mut pools = self.inner.pools.write().unwrap_or_else(|p| p.into_inner());
            gone.iter().for_each(|s| drop(pools.remove(s)));
        };
        if let Some(refresh) = self.inner.fleet.tend(R::now(), forget) {
            R::spawn(R::spawn_blocking(refresh));
        }
    }

    fn limits(&self) -> &crate::Limits {
        &self.inner.config.limits
    }

    async fn shut_down(&self) {
        self.inner.closed.store(true, Ordering::Release);
        let pools = std::mem::take(&mut *self.inner.pools.write().unwrap_or_else(|p| p.into_inner()));
        pools.values().for_each(|p| p.close());
    }

    async fn keyed<O: KeyedOp>(&self, op: O) -> Result<O::Output, Error> {
        self.follow_fleet();
        let (server, permit) = self.inner.fleet.route(op.key().as_bytes(), R::now())?;
        crate::trace::route(&self.inner.config, &server, op.key());
        let deadline = deadline(R::now(), self.inner.config.timeout);
        let result = self.call(&server, op, deadline).await;
        self.inner.fleet.record(&server, permit, &result, R::now());
        result
    }

    /// One operation on `server`, answered by `deadline`. A failed request is sent again on
    /// a fresh connection only as [`retry::may_resend`] allows: a write that may have reached
    /// the server never is, and its caller gets the error, because whether the server
    /// applied it is unknown.
    async fn call<O: Op>(&self, server: &ServerAddr, op: O, deadline: Instant) -> Result<O::Output, Error> {
        self.call_with(server, op, deadline, false).await
    }

    /// [`call`](Self::call), as a resend already (`resent`: on a fresh connection, and never
    /// again) or a first attempt.
    async fn call_with<O: Op>(
        &self,
        server: &ServerAddr,
        mut op: O,
        deadline: Instant,
        mut resent: bool,
    ) -> Result<O::Output, Error> {
        loop {
            let started = self.started();
            // Reports the request cancelled if this future is dropped before its answer.
            let watch = started.map(|at| observe::Started::new(server, op.command(), at));
            let mut unanswered = observe::Unanswered::new(self.observer(), R::now, [watch]);
            let (mut ticket, lease) = match self.submit(server, op.command(), deadline, resent).await {
                Ok(sent) => sent,
                Err(e) => {
                    unanswered.disarm();
                    self.report(server, op.command(), started, &Err(e.clone()));
                    return Err(e);
                }
            };
            // No timer per call: the pipe's driver fails the pipe, and so this ticket, when
            // its oldest request outlives its deadline.
            // The first time the reply is not in yet, this task has polled the socket and is
            // the one it wakes: then, and only for a request already on the wire, it does what
            // can be done before the reply ([`Op::prepare`]) and looks again. Preparing before
            // that first poll would leave the wake-up, and the read, to the driver task.
            let mut prepared = !ticket.sent();
            let reply = std::future::poll_fn(|cx| match Pin::new(&mut ticket).poll(cx) {
                Poll::Pending if !prepared => {
                    prepared = true;
                    if op.prepare() { Pin::new(&mut ticket).poll(cx) } else { Poll::Pending }
                }
                polled => polled,
            })
            .await;
            unanswered.disarm();
            self.report(server, op.command(), started, &reply);
            match reply {
                Ok(response) => return finish(op, response, &lease),
                Err(e) if may_resend(op.command(), attempt(&ticket, &lease, resent), &e) => resent = true,
                Err(e) => return Err(e),
            }
        }
    }

    /// Submits every op to its server, then awaits every reply at once: the servers work
    /// concurrently, under the call's one deadline, and each reply is taken as it comes, so a
    /// stalled server costs the call only its own part (its pipe's driver fails it at the
    /// deadline), never the replies or the connections of the healthy ones.
    async fn fan_out<O: Op + Send>(
        &self,
        plan: Vec<(ServerAddr, O)>,
    ) -> Vec<(ServerAddr, Result<O::Output, Error>)> {
        self.follow_fleet();
        let deadline = deadline(R::now(), self.inner.config.timeout);
        let mut sent = Vec::with_capacity(plan.len());
        // Reports the parts sent so far cancelled if this future is dropped before the answers.
        let mut unanswered = observe::Unanswered::new(self.observer(), R::now, Vec::new());
        for (server, op) in plan {
            let permit = self.inner.fleet.admit(&server, R::now());
            let started = permit.is_ok().then(|| self.started()).flatten();
            unanswered.push(started.map(|at| observe::Started::new(&server, op.command(), at)));
            let ticket = match permit {
                Ok(_) => self.submit(&server, op.command(), deadline, false).await,
                Err(ref unavailable) => Err(unavailable.clone()),
            };
            let span = crate::trace::ServerSpan::new(&self.inner.config, &server, op.command());
            sent.push(Sent { server, op, permit: permit.ok(), ticket, reply: None, started, span });
        }
        // Once every request is out and this task is the one its sockets wake: what can be
        // done before the replies, while they come (see `call_with`).
        let mut prepared = false;
        std::future::poll_fn(|cx| match poll_replies(cx, &mut sent) {
            Poll::Pending if !prepared => {
                prepared = true;
                let on_the_wire = |s: &&mut Sent<O>| s.ticket.as_ref().is_ok_and(|(t, _)| t.sent());
                let worked = sent.iter_mut().filter(on_the_wire).fold(false, |w, s| s.op.prepare() | w);
                if worked { poll_replies(cx, &mut sent) } else { Poll::Pending }
            }
            polled => polled,
        })
        .await;
        unanswered.disarm();
        let mut results = Vec::with_capacity(sent.len());
        for s in sent {
            if let Some(reply) = &s.reply {
                s.span.in_scope(|| self.report(&s.server, s.op.command(), s.started, reply));
            }
            let result = match (s.reply, s.ticket) {
                (Some(Ok(response)), Ok((_, lease))) => finish(s.op, response, &lease),
                (Some(Err(e)), Ok((ticket, lease)))
                    if may_resend(s.op.command(), attempt(&ticket, &lease, false), &e) =>
                {
                    drop((ticket, lease));
                    self.call_with(&s.server, s.op, deadline, true).await
                }
                (Some(Err(e)), _) | (_, Err(e)) => Err(e),
                (None, Ok(_)) => Err(Error::Closed),
            };
            s.span.finish(&result);
            if let Some(permit) = s.permit {
                self.inner.fleet.record(&s.server, permit, &result, R::now());
            }
            results.push((s.server, result));
        }
        results
    }

    /// Waits for admission to `server`'s pool (until `deadline`), opens a connection if the
    /// pool says so, and queues `command` on it. A `fresh` request (a resend) goes to a new
    /// connection while the pool's bound allows ([`ServerPool::admit_fresh`]).
    async fn submit(
        &self,
        server: &ServerAddr,
        command: &crate::Command,
        deadline: Instant,
        mut fresh: bool,
    ) -> Result<(Ticket, Lease), Error> {
        let pool = self.pool(server)?;
        let mut refused = false;
        loop {
            let mut lease = admit::<R>(&pool, deadline, server, self.observer(), fresh).await?;
            let pipe = match lease.pipe() {
                Some(pipe) => pipe.clone(),
                None => {
                    let pipe = self.open(server, &pool).await?;
                    lease.opened(pipe.clone());
                    pipe
                }
            };
            match pipe.submit(command, deadline) {
                Ok(ticket) => return Ok((ticket, lease)),
                // A pooled pipe found dead before anything was written (its server closed it
                // while it idled): the request goes to a fresh one, at no cost to the caller.
                // A new one, not another pooled pipe, which likely died the same way.
                Err(_) if lease.reused() && !refused => (refused, fresh) = (true, true),
                Err(e) => return Err(e),
            }
        }
    }

    /// Opens a connection for `pool` and starts its driver; counts and reports the opening
    /// (or the failure), and has the pipe count and report its own closing.
    async fn open(&self, server: &ServerAddr, pool: &ServerPool) -> Result<Arc<Pipe>, Error> {
        let started = R::now();
        let observer = self.observer();
        let io = match R::timeout(self.inner.config.connect_timeout, self.connect(server))
            .await
            .ok_or(Error::Timeout)
            .and_then(|r| r)
        {
            Ok(io) => io,
            Err(e) => {
                if let Some(o) = observer {
                    o.connection(&ConnectionEvent::ConnectFailed { server, error: e.kind() });
                }
                return Err(e);
            }
        };
        pool.counters().opened();
        if let Some(o) = observer {
            let connect_time = R::now().saturating_duration_since(started);
            o.connection(&ConnectionEvent::Opened { server, connect_time });
        }
        let (pipe, driver) = Pipe::new(io, &self.inner.config, Clock { now: R::now, sleep: sleep::<R> });
        let (counters, observer, server) =
            (pool.counters().clone(), self.inner.config.observer.clone(), server.clone());
        pipe.on_close(Box::new(move |reason| {
            counters.closed(reason);
            if let Some(o) = observer {
                o.connection(&ConnectionEvent::Closed { server: &server, reason });
            }
        }));
        R::spawn(driver);
        Ok(pipe)
    }

    /// A new stream to `server` (the connector's, or the runtime's socket to the first of its
    /// addresses that accepts), then the TLS handshake if configured.
    async fn connect(&self, server: &ServerAddr) -> Result<R::Io, Error> {
        let io = match &self.inner.connector {
            Some(connect) => connect(server).await?,
            None => self.connect_endpoints(server).await?,
        };
        #[cfg(any(feature = "tls", feature = "tls-aws-lc-rs"))]
        if let Some(tls) = &self.inner.config.tls {
            return R::handshake(tls, server, io).await;
        }
        Ok(io)
    }

    /// Connects to the first of `server`'s addresses that accepts, within the connect timeout
    /// shared between them (see [`resolve::attempt_timeout`]); the last failure otherwise.
    async fn connect_endpoints(&self, server: &ServerAddr) -> Result<R::Io, Error> {
        let start = R::now();
        let total = self.inner.config.connect_timeout;
        let endpoints = server.endpoints();
        let mut failure = Error::Timeout;
        for (i, endpoint) in endpoints.iter().enumerate() {
            let left = total.saturating_sub(R::now().saturating_duration_since(start));
            if left.is_zero() {
                break;
            }
            match R::timeout(resolve::attempt_timeout(left, endpoints.len() - i), R::connect(endpoint)).await
            {
                Some(Ok(io)) => return Ok(io),
                Some(Err(e)) => failure = e.into(),
                None => failure = Error::Timeout,
            }
        }
        Err(failure)
    }

    fn pool(&self, server: &ServerAddr) -> Result<Arc<ServerPool>, Error> {
        if self.inner.closed.load(Ordering::Acquire) {
            return Err(Error::Closed);
        }
        if let Some(pool) = self.inner.pools.read().unwrap_or_else(|p| p.into_inner()).get(server) {
            return Ok(pool.clone());
        }
        let mut pools = self.inner.pools.write().unwrap_or_else(|p| p.into_inner());
        let config = &self.inner.config;
        let pool = pools.entry(server.clone()).or_insert_with(|| {
            Arc::new(ServerPool::new(
                config.max_conns_per_server.unwrap_or(PIPES_PER_SERVER),
                config.max_in_flight,
            ))
        });
        Ok(pool.clone())
    }
}

/// `R`'s timer for the pipe's [`Clock`], made of its `timeout`.
fn sleep<R: Runtime>(d: Duration) -> Pin<Box<dyn Future<Output = ()> + Send>> {
    Box::pin(async move {
        let _ = R::timeout(d, std::future::pending::<()>()).await;
    })
}

/// Admission to `pool` ([`ServerPool::admit_fresh`] if `fresh`), waited for until `deadline` at most: the call's timeout covers the
/// wait for a place as well as the wait for the reply. Admitted at once (the common case),
/// it arms no timer.
async fn admit<R: Runtime>(
    pool: &Arc<ServerPool>,
    deadline: Instant,
    server: &ServerAddr,
    observer: Option<&dyn observe::Observer>,
    fresh: bool,
) -> Result<Lease, Error> {
    let mut admit = if fresh { pool.admit_fresh() } else { pool.admit() };
    if let Poll::Ready(lease) = Pin::new(&mut admit).poll(&mut Context::from_waker(Waker::noop())) {
        return lease;
    }
    let started = R::now();
    let left = deadline.saturating_duration_since(started);
    let lease = R::timeout(left, admit).await.unwrap_or(Err(Error::Timeout));
    if let Some(o) = observer {
        let waited = R::now().saturating_duration_since(started);
        o.connection(&ConnectionEvent::Waited { server, waited });
    }
    lease
}

/// The call's result from its reply. A reply that decodes but contradicts the request (a
/// value for another key) shows the stream out of sync: the connection it came from is
/// failed, so that no later reply on it reaches anyone.
fn finish<O: Op>(op: O, response: crate::Response, lease: &Lease) -> Result<O::Output, Error> {
    let result = op.finish(response);
    if let (false, Err(e), Some(pipe)) = (Error::keeps_connection(&result), &result, lease.pipe()) {
        pipe.fail(e.clone());
    }
    result
}

/// Polls every reply not yet in; ready when none is left to wait for.
fn poll_replies<O>(cx: &mut Context<'_>, sent: &mut [Sent<O>]) -> Poll<()> {
    let mut waiting = false;
    for s in sent.iter_mut().filter(|s| s.reply.is_none()) {
        match &mut s.ticket {
            Ok((ticket, _)) => match Pin::new(ticket).poll(cx) {
                Poll::Ready(reply) => s.reply = Some(reply),
                Poll::Pending => waiting = true,
            },
            Err(e) => s.reply = Some(Err(e.clone())),
        }
    }
    if waiting { Poll::Pending } else { Poll::Ready(()) }
}

/// What the retry rule needs to know about a failed attempt.
fn attempt(ticket: &Ticket, lease: &Lease, resent: bool) -> Attempt {
    Attempt::on(lease.reused()).written(ticket.written()).resent(resent)
}
