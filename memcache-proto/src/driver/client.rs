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
use std::time::{Duration, Instant};

use super::pipeline::{Clock, Pipe, Ticket, Transport};
use super::pool::{Lease, Route, ServerPool};
use crate::config::{Config, FromConfig};
use crate::op::{KeyedOp, Op};
use crate::{Endpoint, Error, ServerAddr, ServerSelector};

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
}

/// Opens a transport for a server: lets a client run over any stream (TLS, a proxy, a stream
/// connected by another runtime) instead of [`Runtime::connect`].
pub type Connector<Io> =
    Arc<dyn Fn(&ServerAddr) -> Pin<Box<dyn Future<Output = io::Result<Io>> + Send>> + Send + Sync>;

/// An async memcached client: cheap to clone, safe to share across tasks and threads.
///
/// Requests to one server are pipelined on at most `max_idle_conns` connections (a new one is
/// opened only while every open one is busy); at most `max_in_flight` requests ride on each,
/// and callers beyond that wait in FIFO order. A call that times out closes its connection
/// (the server may be stalled), and a call whose future is dropped leaves its reply to be
/// read and discarded, so a reply never reaches a caller it was not meant for.
pub struct Client<R: Runtime> {
    inner: Arc<Inner<R>>,
}

struct Inner<R: Runtime> {
    config: Config,
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
    fn from_config(config: Config) -> Result<Self, Error> {
        Ok(Client::with_parts(config, None))
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
            $body
        }
    )*};
}

/// A request submitted to a server, awaiting its reply.
struct Sent<O> {
    server: ServerAddr,
    op: O,
    ticket: Result<(Ticket, Lease), Error>,
}

impl<R: Runtime> Client<R> {
    crate::client_constructors!();

    /// A client that opens connections with `connector` instead of the runtime's sockets.
    pub fn with_connector(config: Config, connector: Connector<R::Io>) -> Self {
        Client::with_parts(config, Some(connector))
    }

    fn with_parts(config: Config, connector: Option<Connector<R::Io>>) -> Self {
        let inner = Inner {
            config,
            pools: RwLock::new(HashMap::new()),
            connector,
            closed: AtomicBool::new(false),
            runtime: PhantomData,
        };
        Client { inner: Arc::new(inner) }
    }

    crate::client_calls!(async_calls; this.await);

    fn selector(&self) -> &dyn ServerSelector {
        self.inner.config.selector.as_ref()
    }

    async fn shut_down(&self) {
        self.inner.closed.store(true, Ordering::Release);
        let pools = std::mem::take(&mut *self.inner.pools.write().unwrap_or_else(|p| p.into_inner()));
        pools.values().for_each(|p| p.close());
    }

    async fn keyed<O: KeyedOp>(&self, op: O) -> Result<O::Output, Error> {
        let server = self.inner.config.selector.pick_server(op.key().as_bytes())?;
        self.call(&server, op).await
    }

    /// One op and its reply, under the call's deadline. A pooled connection found stale
    /// is replaced once (see [`Error::is_stale_connection`]).
    async fn call<O: Op>(&self, server: &ServerAddr, op: O) -> Result<O::Output, Error> {
        let mut retried = false;
        loop {
            let (mut ticket, lease) = self.submit(server, op.command()).await?;
            let reused = lease.reused();
            // No timer per call: the pipe's driver fails the pipe, and so this ticket, when
            // its oldest request outlives the timeout.
            let result = (&mut ticket).await;
            drop(lease);
            match result {
                Err(e) if reused && !retried && e.is_stale_connection() => retried = true,
                result => return finish(op, result, ticket.pipe()),
            }
        }
    }

    /// Submits every op to its server, then awaits every reply: the servers work at once,
    /// under one deadline.
    async fn fan_out<O: Op + Send>(
        &self,
        plan: Vec<(ServerAddr, O)>,
    ) -> Vec<(ServerAddr, Result<O::Output, Error>)> {
        let mut sent = Vec::with_capacity(plan.len());
        for (server, op) in plan {
            let ticket = self.submit(&server, op.command()).await;
            sent.push(Sent { server, op, ticket });
        }
        let mut replies: Vec<Option<Result<crate::Response, Error>>> = sent.iter().map(|_| None).collect();
        let wait_all = async {
            for (s, reply) in sent.iter_mut().zip(replies.iter_mut()) {
                *reply = Some(match &mut s.ticket {
                    Ok((ticket, _)) => ticket.await,
                    Err(e) => Err(e.clone()),
                });
            }
        };
        let _ = R::timeout(self.inner.config.timeout, wait_all).await;
        let mut results = Vec::with_capacity(sent.len());
        for (s, reply) in sent.into_iter().zip(replies) {
            let result = match (reply, &s.ticket) {
                (Some(Err(e)), Ok((_, lease))) if lease.reused() && e.is_stale_connection() => {
                    self.call(&s.server, s.op).await
                }
                (Some(r), Ok((ticket, _))) => finish(s.op, r, ticket.pipe()),
                (Some(r), Err(_)) => r.and_then(|r| s.op.finish(r)),
                (None, Ok((ticket, _))) => Err(timed_out(ticket.pipe())),
                (None, Err(e)) => Err(e.clone()),
            };
            results.push((s.server, result));
        }
        results
    }

    /// Waits for admission to `server`'s pool, opens a connection if the pool says so, and
    /// queues `command` on it.
    async fn submit(&self, server: &ServerAddr, command: &crate::Command) -> Result<(Ticket, Lease), Error> {
        let pool = self.pool(server)?;
        let mut lease = pool.admit().await?;
        let pipe = match lease.route() {
            Some(Route::Use(pipe)) => pipe.clone(),
            _ => {
                let pipe = self.open(server).await?;
                lease.opened(pipe.clone());
                pipe
            }
        };
        Ok((pipe.submit(command)?, lease))
    }

    async fn open(&self, server: &ServerAddr) -> Result<Arc<Pipe>, Error> {
        let connecting = async {
            match &self.inner.connector {
                Some(connect) => connect(server).await,
                None => R::connect(server.endpoint()).await,
            }
        };
        let io = R::timeout(self.inner.config.connect_timeout, connecting).await.ok_or(Error::Timeout)??;
        let (pipe, driver) = Pipe::new(io, &self.inner.config, Clock { now: R::now, sleep: sleep::<R> });
        R::spawn(driver);
        Ok(pipe)
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
        let pool = pools
            .entry(server.clone())
            .or_insert_with(|| Arc::new(ServerPool::new(config.max_idle_conns, config.max_in_flight)));
        Ok(pool.clone())
    }
}

/// `R`'s timer for the pipe's [`Clock`], made of its `timeout`.
fn sleep<R: Runtime>(d: Duration) -> Pin<Box<dyn Future<Output = ()> + Send>> {
    Box::pin(async move {
        let _ = R::timeout(d, std::future::pending::<()>()).await;
    })
}

/// Finishes `op` with the reply read on `pipe`. A reply the op finds out of sync with its
/// request (a value for a key it did not ask for) breaks the connection as garbled bytes do:
/// the pipe is failed, so nothing more is read from that stream.
fn finish<O: Op>(op: O, reply: Result<crate::Response, Error>, pipe: &Pipe) -> Result<O::Output, Error> {
    op.finish(reply?).inspect_err(|e| {
        if e.is_connection_broken() {
            pipe.fail(e.clone());
        }
    })
}

/// A call gave up waiting: the server may be stalled, so its connection is closed.
fn timed_out(pipe: &Pipe) -> Error {
    pipe.fail(Error::Timeout);
    Error::Timeout
}
