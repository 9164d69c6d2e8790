//! The client on smol (feature `smol`), with no async-std anywhere in the build.
//!
//! ```no_run
//! use memcache_async_std::smol::Client;
//! use memcache_async_std::{Error, Item};
//!
//! smol::block_on(async {
//!     let client = Client::new(["127.0.0.1:11211"])?;
//!     client.set(&Item::new("greeting", "hello")).await?;
//!     assert_eq!(&client.get("greeting").await?.value[..], b"hello");
//!     Ok::<(), Error>(())
//! })?;
//! # Ok::<(), Error>(())
//! ```
//!
//! Sockets come from async-net and timers from async-io (through `smol`'s re-exports). The
//! client runs one background task per connection; [`Smol`] spawns it with a [`Spawn`]:
//! smol's global executor ([`GlobalExecutor`], the default) or one of your own.
//!
//! # Your own executor
//!
//! An application that runs its own `smol::Executor` (or any other) names it in the client's
//! type, so that the connection tasks run there:
//!
//! ```no_run
//! use std::future::Future;
//! use std::sync::LazyLock;
//!
//! use memcache_async_std::smol::{ClientOn, Spawn};
//!
//! static EXECUTOR: LazyLock<smol::Executor<'static>> = LazyLock::new(smol::Executor::new);
//!
//! /// Spawns the client's tasks on `EXECUTOR`.
//! struct MyExecutor;
//!
//! impl Spawn for MyExecutor {
//!     fn spawn<F: Future<Output = ()> + Send + 'static>(task: F) {
//!         EXECUTOR.spawn(task).detach();
//!     }
//! }
//!
//! # fn main() -> Result<(), memcache_async_std::Error> {
//! let client = ClientOn::<MyExecutor>::new(["127.0.0.1:11211"])?;
//! smol::block_on(EXECUTOR.run(async {
//!     client.get("greeting").await.ok();
//! }));
//! # Ok(())
//! # }
//! ```
#![cfg_attr(docsrs, doc(cfg(feature = "smol")))]

use std::fmt;
use std::future::Future;
use std::io;
use std::marker::PhantomData;
use std::time::{Duration, Instant};

use ::smol::net::TcpStream;
#[cfg(unix)]
use ::smol::net::unix::UnixStream;
use memcache_proto::Endpoint;
use memcache_proto::driver::Runtime;

use crate::Stream;

/// The memcached client on smol, spawning its connection tasks on smol's global executor.
/// See [`memcache_proto::driver::Client`] for its calls.
pub type Client = ClientOn<GlobalExecutor>;

/// The memcached client on smol, spawning its connection tasks with `S` (see [`Spawn`]).
pub type ClientOn<S> = memcache_proto::driver::Client<Smol<S>>;

/// A typed view of a [`Client`] (`client.typed(codec)`): values of type `T` through the
/// codec `C`. See [`memcache_proto::driver::Typed`] for its calls.
pub type Typed<C, T> = memcache_proto::driver::Typed<Smol<GlobalExecutor>, C, T>;

/// How [`Smol`] runs the client's background tasks (one per open connection).
///
/// A function with no receiver, so that the executor is part of the client's type and the
/// client needs no handle to it: implement it on a type of yours that spawns onto a `static`
/// executor (see the [module docs](self)).
pub trait Spawn: Send + Sync + 'static {
    /// Runs `task` in the background until it finishes; nothing waits for its output.
    fn spawn<F: Future<Output = ()> + Send + 'static>(task: F);
}

/// smol's global executor (`smol::spawn`), which runs on threads of its own, so the client
/// works from `smol::block_on` and from any other executor.
#[derive(Debug, Clone, Copy)]
pub struct GlobalExecutor;

impl Spawn for GlobalExecutor {
    fn spawn<F: Future<Output = ()> + Send + 'static>(task: F) {
        ::smol::spawn(task).detach();
    }
}

/// The smol [`Runtime`]: async-net sockets, async-io timers, and tasks spawned with `S`.
pub struct Smol<S = GlobalExecutor>(PhantomData<fn() -> S>);

impl<S> fmt::Debug for Smol<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Smol<{}>", std::any::type_name::<S>())
    }
}

impl<S: Spawn> Runtime for Smol<S> {
    type Io = Stream;

    async fn connect(endpoint: &Endpoint) -> io::Result<Stream> {
        connect_endpoint!(endpoint)
    }

    fn spawn<F: Future<Output = ()> + Send + 'static>(task: F) {
        S::spawn(task);
    }

    /// Races `f` against an async-io timer; `f` is polled first, so a result that is ready
    /// when the deadline passes still counts. A deadline too far away to represent never
    /// fires (async-io's `Timer::after` saturates).
    async fn timeout<F: Future + Send>(d: Duration, f: F) -> Option<F::Output> {
        let expired = async {
            ::smol::Timer::after(d).await;
            None
        };
        ::smol::future::or(async { Some(f.await) }, expired).await
    }

    /// The system's monotonic clock, which async-io's timers follow.
    fn now() -> Instant {
        Instant::now()
    }

    /// TLS with futures-rustls over the fresh stream.
    #[cfg(any(feature = "tls", feature = "tls-aws-lc-rs"))]
    async fn handshake(
        tls: &memcache_proto::tls::TlsConfig,
        server: &crate::ServerAddr,
        io: Stream,
    ) -> Result<Stream, crate::Error> {
        crate::tls_handshake(tls, server, io).await
    }
}
