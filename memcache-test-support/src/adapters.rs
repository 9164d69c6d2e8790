//! The [`Adapter`] of each client crate: one place that maps the suite's calls onto every
//! client, used by each adapter's conformance test and by `mcbench`.
//!
//! The two async clients are the same generic [`driver::Client`] on different
//! runtimes, so they share one implementation, [`AsyncAdapter`], parameterised by an
//! [`Executor`] that runs tests, spawns workers and applies deadlines.

use std::collections::HashMap;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use memcache_proto::codec::Codec;
use memcache_proto::config::{Builder, FromConfig};
use memcache_proto::driver::{self, Runtime};
use memcache_proto::observe::PoolStats;
use memcache_proto::{Error, ServerAddr};

use crate::conformance::{Adapter, ClientConfig, Res};

/// Declares the client calls in the [`Adapter`] trait: `fn call(c: &Self::Client, args..)`
/// returning a future of the call's result.
macro_rules! declare_calls {
    (@this $c:ident $(. $aw:ident)?; $(
        $(#[$doc:meta])*
        fn $name:ident $([$($generics:tt)*])? ($($arg:ident: $ty:ty),* $(,)?) -> $out:ty $body:block
    )*) => {$(
        #[doc = concat!("`Client::", stringify!($name), "`.")]
        fn $name $(<$($generics)*>)? ($c: &Self::Client, $($arg: $ty),*)
            -> impl std::future::Future<Output = $out> + Send;
    )*};
}

pub(crate) use declare_calls;

/// Implements the [`Adapter`] calls by calling the client's own method of the same name:
/// awaited for an async client (`c.await`), wrapped in a ready future for a blocking one
/// (`c`), which then does its work when the suite creates the future.
macro_rules! forward_calls {
    (@this $c:ident . await; $($calls:tt)*) => { forward_calls!(@wrap std::convert::identity; $c; $($calls)*); };
    (@this $c:ident; $($calls:tt)*) => { forward_calls!(@wrap std::future::ready; $c; $($calls)*); };
    (@wrap $wrap:path; $c:ident; $(
        $(#[$doc:meta])*
        fn $name:ident $([$($generics:tt)*])? ($($arg:ident: $ty:ty),* $(,)?) -> $out:ty $body:block
    )*) => {$(
        fn $name $(<$($generics)*>)? ($c: &Self::Client, $($arg: $ty),*)
            -> impl std::future::Future<Output = $out> + Send
        {
            $wrap($c.$name($($arg),*))
        }
    )*};
}

/// Applies a suite [`ClientConfig`] to any adapter's builder; `counting` makes the adapter's
/// connector that counts connections ([`ClientConfig::count_connections`]).
pub fn configure<C: FromConfig>(
    cfg: &ClientConfig,
    counting: impl FnOnce(Arc<AtomicUsize>) -> C::Connector,
) -> Result<C, Error> {
    let mut b = Builder::<C>::new().servers(&cfg.servers);
    if let Some(tls) = &cfg.tls {
        b = b.tls(tls.clone());
    }
    if let Some(counter) = &cfg.count_connections {
        b = b.connector(counting(Arc::clone(counter)));
    }
    if let Some(t) = cfg.timeout {
        b = b.timeout(t);
    }
    if let Some(t) = cfg.connect_timeout {
        b = b.connect_timeout(t);
    }
    if let Some(n) = cfg.max_conns {
        b = b.max_conns_per_server(n);
    }
    if let Some(w) = cfg.busy_poll {
        b = b.busy_poll(w);
    }
    if let Some(policy) = cfg.failure_policy {
        b = b.failure_policy(policy);
    }
    if let Some(selector) = &cfg.selector {
        b = b.selector(selector.clone());
    }
    if let Some(every) = cfg.resolve_every {
        b = b.resolve_every(every);
    }
    if let Some(limits) = cfg.limits {
        b = b.limits(limits);
    }
    if let Some(observer) = &cfg.observer {
        b = b.observer(observer.clone());
    }
    #[cfg(feature = "tracing")]
    if cfg.record_keys {
        b = b.record_keys(true);
    }
    b.build()
}

/// How an async adapter's tests run: an executor and its timer.
pub trait Executor: 'static {
    /// Name for messages.
    const NAME: &'static str;
    /// Runs `f` to completion.
    fn block_on<F: Future>(f: F) -> F::Output;
    /// Spawns `f` as a task.
    fn spawn<F>(f: F) -> Pin<Box<dyn Future<Output = F::Output> + Send>>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static;
}

/// A runtime whose adapter crate's public `connector(..)` the suite can exercise.
pub trait TestRuntime: Runtime {
    /// A connector made with the adapter's `connector(..)`: counts each connection in
    /// `counter`, then connects to the server's TCP address with the runtime's own socket.
    fn counting_connector(counter: Arc<AtomicUsize>) -> driver::Connector<Self::Io>;
}

impl TestRuntime for memcache_tokio::Tokio {
    fn counting_connector(counter: Arc<AtomicUsize>) -> driver::Connector<Self::Io> {
        memcache_tokio::connector(move |server: &ServerAddr| {
            counter.fetch_add(1, Ordering::SeqCst);
            tokio::net::TcpStream::connect(server.to_string())
        })
    }
}

#[cfg(feature = "async-std")]
impl TestRuntime for memcache_async_std::AsyncStd {
    fn counting_connector(counter: Arc<AtomicUsize>) -> driver::Connector<Self::Io> {
        memcache_async_std::connector(move |server: &ServerAddr| {
            counter.fetch_add(1, Ordering::SeqCst);
            let addr = server.to_string();
            async move { async_std::net::TcpStream::connect(addr).await }
        })
    }
}

#[cfg(feature = "smol")]
impl TestRuntime for memcache_async_std::smol::Smol {
    fn counting_connector(counter: Arc<AtomicUsize>) -> driver::Connector<Self::Io> {
        memcache_async_std::connector(move |server: &ServerAddr| {
            counter.fetch_add(1, Ordering::SeqCst);
            smol::net::TcpStream::connect(server.to_string())
        })
    }
}

/// The async client on runtime `R`, tested on executor `E`.
#[derive(Debug)]
pub struct AsyncAdapter<R, E>(PhantomData<fn() -> (R, E)>);

impl<R: TestRuntime, E: Executor> Adapter for AsyncAdapter<R, E> {
    type Client = driver::Client<R>;
    const NAME: &'static str = E::NAME;

    fn block_on<F: Future>(f: F) -> F::Output {
        E::block_on(f)
    }
    fn spawn<F>(f: F) -> Pin<Box<dyn Future<Output = F::Output> + Send>>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        E::spawn(f)
    }
    fn timeout<F: Future + Send>(d: Duration, f: F) -> impl Future<Output = Option<F::Output>> + Send {
        R::timeout(d, f)
    }
    fn connect(cfg: ClientConfig) -> Res<Self::Client> {
        configure(&cfg, R::counting_connector)
    }
    memcache_proto::client_calls!(forward_calls; c.await);
    fn pool_stats(c: &Self::Client) -> HashMap<String, PoolStats> {
        c.pool_stats()
    }

    type Typed<C, T>
        = driver::Typed<R, C, T>
    where
        C: Codec<T> + Send + Sync + 'static,
        T: Send + Sync + 'static;
    fn typed<C, T>(c: &Self::Client, codec: C) -> Self::Typed<C, T>
    where
        C: Codec<T> + Send + Sync + 'static,
        T: Send + Sync + 'static,
    {
        c.typed(codec)
    }
}

/// Tokio's multi-thread runtime (a new one per test).
#[derive(Debug)]
pub struct TokioMultiThread;

/// Tokio's current-thread runtime (a new one per test).
#[derive(Debug)]
pub struct TokioCurrentThread;

fn tokio_spawn<F>(f: F) -> Pin<Box<dyn Future<Output = F::Output> + Send>>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handle = tokio::spawn(f);
    Box::pin(async move {
        match handle.await {
            Ok(out) => out,
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    })
}

impl Executor for TokioMultiThread {
    const NAME: &'static str = "memcache-tokio (multi-thread)";
    fn block_on<F: Future>(f: F) -> F::Output {
        let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
        rt.block_on(f)
    }
    fn spawn<F>(f: F) -> Pin<Box<dyn Future<Output = F::Output> + Send>>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        tokio_spawn(f)
    }
}

impl Executor for TokioCurrentThread {
    const NAME: &'static str = "memcache-tokio (current-thread)";
    fn block_on<F: Future>(f: F) -> F::Output {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime");
        rt.block_on(f)
    }
    fn spawn<F>(f: F) -> Pin<Box<dyn Future<Output = F::Output> + Send>>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        tokio_spawn(f)
    }
}

/// async-std's global executor.
#[cfg(feature = "async-std")]
#[derive(Debug)]
pub struct AsyncStdExecutor;

#[cfg(feature = "async-std")]
impl Executor for AsyncStdExecutor {
    const NAME: &'static str = "memcache-async-std";
    fn block_on<F: Future>(f: F) -> F::Output {
        async_std::task::block_on(f)
    }
    fn spawn<F>(f: F) -> Pin<Box<dyn Future<Output = F::Output> + Send>>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        Box::pin(async_std::task::spawn(f))
    }
}

/// smol: a test runs in `smol::block_on` on its own thread, workers are tasks on smol's
/// global executor (where the client's connection tasks run too).
#[cfg(feature = "smol")]
#[derive(Debug)]
pub struct SmolExecutor;

#[cfg(feature = "smol")]
impl Executor for SmolExecutor {
    const NAME: &'static str = "memcache-async-std (smol)";
    fn block_on<F: Future>(f: F) -> F::Output {
        smol::block_on(f)
    }
    fn spawn<F>(f: F) -> Pin<Box<dyn Future<Output = F::Output> + Send>>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        // A smol `Task` cancels its future when dropped, where the other runtimes' handles
        // detach; the suite awaits every worker it spawns, so the difference never shows.
        Box::pin(smol::spawn(f))
    }
}

/// memcache-tokio on the multi-thread runtime.
pub type Tokio = AsyncAdapter<memcache_tokio::Tokio, TokioMultiThread>;
/// memcache-tokio on the current-thread runtime.
pub type TokioCt = AsyncAdapter<memcache_tokio::Tokio, TokioCurrentThread>;
/// memcache-async-std on async-std.
#[cfg(feature = "async-std")]
pub type AsyncStd = AsyncAdapter<memcache_async_std::AsyncStd, AsyncStdExecutor>;
/// memcache-async-std on smol, without async-std.
#[cfg(feature = "smol")]
pub type Smol = AsyncAdapter<memcache_async_std::smol::Smol, SmolExecutor>;

/// memcache-blocking: each call runs when the suite asks for it, inside a ready future;
/// workers are threads.
#[derive(Debug)]
pub struct Blocking;

impl Adapter for Blocking {
    type Client = memcache_blocking::Client;
    const NAME: &'static str = "memcache-blocking";

    fn block_on<F: Future>(f: F) -> F::Output {
        crate::conformance::block_on_simple(f)
    }
    fn spawn<F>(f: F) -> Pin<Box<dyn Future<Output = F::Output> + Send>>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        crate::conformance::spawn_thread(f)
    }
    async fn timeout<F: Future + Send>(_d: Duration, f: F) -> Option<F::Output> {
        // A blocking call cannot be abandoned half-way; it runs under the client's own timeout.
        Some(f.await)
    }
    fn connect(cfg: ClientConfig) -> Res<Self::Client> {
        configure(&cfg, |counter| {
            memcache_blocking::connector(move |server, timeout| {
                counter.fetch_add(1, Ordering::SeqCst);
                memcache_blocking::connect(server, timeout)
            })
        })
    }
    memcache_proto::client_calls!(forward_calls; c);
    fn pool_stats(c: &Self::Client) -> HashMap<String, PoolStats> {
        c.pool_stats()
    }

    type Typed<C, T>
        = memcache_blocking::Typed<C, T>
    where
        C: Codec<T> + Send + Sync + 'static,
        T: Send + Sync + 'static;
    fn typed<C, T>(c: &Self::Client, codec: C) -> Self::Typed<C, T>
    where
        C: Codec<T> + Send + Sync + 'static,
        T: Send + Sync + 'static,
    {
        c.typed(codec)
    }
}
