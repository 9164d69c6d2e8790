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
use std::time::Duration;

use memcache_proto::config::Builder;
use memcache_proto::driver::{self, Runtime};
use memcache_proto::multi::MultiOutcome;
use memcache_proto::{Error, Item};

use crate::conformance::{Adapter, ClientConfig, Res};

/// Applies a suite [`ClientConfig`] to any adapter's builder.
pub fn configure<C: memcache_proto::config::FromConfig>(cfg: &ClientConfig) -> Result<C, Error> {
    let mut b = Builder::<C>::new().servers(&cfg.servers);
    if let Some(t) = cfg.timeout {
        b = b.timeout(t);
    }
    if let Some(t) = cfg.connect_timeout {
        b = b.connect_timeout(t);
    }
    if let Some(n) = cfg.max_idle_conns {
        b = b.max_idle_conns(n);
    }
    if let Some(w) = cfg.busy_poll {
        b = b.busy_poll(w);
    }
    b.build()
}

/// How an async adapter's tests run: an executor and its timer.
pub trait Executor: 'static {
    /// Name for messages.
    const NAME: &'static str;
    /// Runs `f` to completion.
    fn block_on<F: Future>(f: F) -> F::Output;
    /// Runs a benchmark workload, see [`Adapter::run`].
    fn run<F>(f: F) -> F::Output
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        Self::block_on(f)
    }
    /// Spawns `f` as a task.
    fn spawn<F>(f: F) -> Pin<Box<dyn Future<Output = F::Output> + Send>>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static;
}

/// The async client on runtime `R`, tested on executor `E`.
#[derive(Debug)]
pub struct AsyncAdapter<R, E>(PhantomData<fn() -> (R, E)>);

impl<R: Runtime, E: Executor> Adapter for AsyncAdapter<R, E> {
    type Client = driver::Client<R>;
    const NAME: &'static str = E::NAME;

    fn block_on<F: Future>(f: F) -> F::Output {
        E::block_on(f)
    }
    fn run<F>(f: F) -> F::Output
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        E::run(f)
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
        configure(&cfg)
    }
    async fn get(c: &Self::Client, key: &str) -> Res<Item> {
        c.get(key).await
    }
    async fn get_multi(c: &Self::Client, keys: &[&str]) -> Res<HashMap<String, Item>> {
        c.get_multi(keys).await
    }
    async fn get_multi_partial(c: &Self::Client, keys: &[&str]) -> Res<MultiOutcome<HashMap<String, Item>>> {
        c.get_multi_partial(keys).await
    }
    async fn set(c: &Self::Client, item: &Item) -> Res<()> {
        c.set(item).await
    }
    async fn add(c: &Self::Client, item: &Item) -> Res<()> {
        c.add(item).await
    }
    async fn replace(c: &Self::Client, item: &Item) -> Res<()> {
        c.replace(item).await
    }
    async fn append(c: &Self::Client, item: &Item) -> Res<()> {
        c.append(item).await
    }
    async fn prepend(c: &Self::Client, item: &Item) -> Res<()> {
        c.prepend(item).await
    }
    async fn compare_and_swap(c: &Self::Client, item: &Item) -> Res<()> {
        c.compare_and_swap(item).await
    }
    async fn delete(c: &Self::Client, key: &str) -> Res<()> {
        c.delete(key).await
    }
    async fn delete_lock(c: &Self::Client, key: &str, seconds: u32) -> Res<()> {
        c.delete_lock(key, seconds).await
    }
    async fn increment(c: &Self::Client, key: &str, delta: u64) -> Res<u64> {
        c.increment(key, delta).await
    }
    async fn decrement(c: &Self::Client, key: &str, delta: u64) -> Res<u64> {
        c.decrement(key, delta).await
    }
    async fn touch(c: &Self::Client, key: &str, seconds: i32) -> Res<()> {
        c.touch(key, seconds).await
    }
    async fn get_and_touch(c: &Self::Client, key: &str, seconds: i32) -> Res<Item> {
        c.get_and_touch(key, seconds).await
    }
    async fn flush_all(c: &Self::Client) -> Res<()> {
        c.flush_all().await
    }
    async fn ping(c: &Self::Client) -> Res<()> {
        c.ping().await
    }
    async fn stats(c: &Self::Client) -> Res<HashMap<String, HashMap<String, String>>> {
        c.stats().await
    }
    async fn close(c: &Self::Client) {
        c.close().await
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
    fn run<F>(f: F) -> F::Output
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        Self::block_on(async { tokio_spawn(f).await })
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
#[derive(Debug)]
pub struct AsyncStdExecutor;

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

/// memcache-tokio on the multi-thread runtime.
pub type Tokio = AsyncAdapter<memcache_tokio::Tokio, TokioMultiThread>;
/// memcache-tokio on the current-thread runtime.
pub type TokioCt = AsyncAdapter<memcache_tokio::Tokio, TokioCurrentThread>;
/// memcache-async-std.
pub type AsyncStd = AsyncAdapter<memcache_async_std::AsyncStd, AsyncStdExecutor>;

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
        configure(&cfg)
    }
    async fn get(c: &Self::Client, key: &str) -> Res<Item> {
        c.get(key)
    }
    async fn get_multi(c: &Self::Client, keys: &[&str]) -> Res<HashMap<String, Item>> {
        c.get_multi(keys)
    }
    async fn get_multi_partial(c: &Self::Client, keys: &[&str]) -> Res<MultiOutcome<HashMap<String, Item>>> {
        c.get_multi_partial(keys)
    }
    async fn set(c: &Self::Client, item: &Item) -> Res<()> {
        c.set(item)
    }
    async fn add(c: &Self::Client, item: &Item) -> Res<()> {
        c.add(item)
    }
    async fn replace(c: &Self::Client, item: &Item) -> Res<()> {
        c.replace(item)
    }
    async fn append(c: &Self::Client, item: &Item) -> Res<()> {
        c.append(item)
    }
    async fn prepend(c: &Self::Client, item: &Item) -> Res<()> {
        c.prepend(item)
    }
    async fn compare_and_swap(c: &Self::Client, item: &Item) -> Res<()> {
        c.compare_and_swap(item)
    }
    async fn delete(c: &Self::Client, key: &str) -> Res<()> {
        c.delete(key)
    }
    async fn delete_lock(c: &Self::Client, key: &str, seconds: u32) -> Res<()> {
        c.delete_lock(key, seconds)
    }
    async fn increment(c: &Self::Client, key: &str, delta: u64) -> Res<u64> {
        c.increment(key, delta)
    }
    async fn decrement(c: &Self::Client, key: &str, delta: u64) -> Res<u64> {
        c.decrement(key, delta)
    }
    async fn touch(c: &Self::Client, key: &str, seconds: i32) -> Res<()> {
        c.touch(key, seconds)
    }
    async fn get_and_touch(c: &Self::Client, key: &str, seconds: i32) -> Res<Item> {
        c.get_and_touch(key, seconds)
    }
    async fn flush_all(c: &Self::Client) -> Res<()> {
        c.flush_all()
    }
    async fn ping(c: &Self::Client) -> Res<()> {
        c.ping()
    }
    async fn stats(c: &Self::Client) -> Res<HashMap<String, HashMap<String, String>>> {
        c.stats()
    }
    async fn close(c: &Self::Client) {
        c.close();
    }
}
