//! An async memcached client for Tokio, following gomemcache's API.
//!
//! ```no_run
//! use memcache_tokio::{Client, Error, Item};
//!
//! # async fn demo() -> Result<(), Error> {
//! let client = Client::new(["127.0.0.1:11211"])?;
//! client.set(&Item::new("greeting", "hello")).await?;
//! assert_eq!(&client.get("greeting").await?.value[..], b"hello");
//! # Ok(())
//! # }
//! ```
//!
//! [`Client`] is [`memcache_proto::driver::Client`] on the [`Tokio`] runtime: requests
//! from many tasks are pipelined on a few connections per server (memcached answers in
//! order), each call has a deadline (default 100 ms), and dropping a call's future at any
//! point is safe: its reply is read and discarded, never handed to another caller. The
//! client needs a Tokio runtime with IO and time enabled, and spawns one task per connection.
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

/// The crate's README (what crates.io shows), compiled and run here as doctests so that its
/// code can't drift from the API.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

use std::future::Future;
use std::io::{self, Read};
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use memcache_proto::Endpoint;
use memcache_proto::driver::{Runtime, Transport};
use memcache_proto::io::read_into_spare;
use socket2::SockRef;
use tokio::io::AsyncWrite;
use tokio::net::TcpStream;
#[cfg(unix)]
use tokio::net::UnixStream;

pub use memcache_proto::prelude::*;

/// The memcached client on Tokio. See [`memcache_proto::driver::Client`] for its calls.
pub type Client = memcache_proto::driver::Client<Tokio>;

/// A typed view of a [`Client`] (`client.typed(codec)`): values of type `T` through the
/// codec `C`. See [`memcache_proto::driver::Typed`] for its calls.
pub type Typed<C, T> = memcache_proto::driver::Typed<Tokio, C, T>;

/// The Tokio [`Runtime`]: Tokio sockets, `tokio::spawn` and `tokio::time::timeout`.
#[derive(Debug, Clone, Copy)]
pub struct Tokio;

/// A Tokio TCP or Unix stream.
#[derive(Debug)]
pub enum Stream {
    /// TCP.
    Tcp(TcpStream),
    /// A Unix domain socket.
    #[cfg(unix)]
    Unix(UnixStream),
}

impl Runtime for Tokio {
    type Io = Stream;

    async fn connect(endpoint: &Endpoint) -> io::Result<Stream> {
        match endpoint {
            Endpoint::Tcp(addr) => {
                let s = TcpStream::connect(addr).await?;
                s.set_nodelay(true)?;
                Ok(Stream::Tcp(s))
            }
            #[cfg(unix)]
            Endpoint::Unix(path) => Ok(Stream::Unix(UnixStream::connect(path).await?)),
            #[allow(unreachable_patterns)]
            _ => Err(io::Error::new(io::ErrorKind::Unsupported, "unsupported endpoint")),
        }
    }

    fn spawn<F: Future<Output = ()> + Send + 'static>(task: F) {
        tokio::spawn(task);
    }

    async fn timeout<F: Future + Send>(d: Duration, f: F) -> Option<F::Output> {
        tokio::time::timeout(d, f).await.ok()
    }

    /// Tokio's clock, which its timers follow (and which a test may pause and advance).
    fn now() -> Instant {
        tokio::time::Instant::now().into_std()
    }

    /// Tokio's blocking pool.
    async fn spawn_blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
        match tokio::task::spawn_blocking(f).await {
            Ok(value) => value,
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    }
}

/// Reads with readiness + `try_read_buf`, which fills `BytesMut` spare capacity safely.
/// Readiness is asked first, so a driver woken for writing makes no futile `recv` call.
macro_rules! poll_read_buf {
    ($s:expr, $cx:expr, $buf:expr) => {
        loop {
            ready!($s.poll_read_ready($cx))?;
            match $s.try_read_buf($buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                result => return Poll::Ready(result),
            }
        }
    };
}

impl Transport for Stream {
    fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut BytesMut) -> Poll<io::Result<usize>> {
        match self {
            Stream::Tcp(s) => poll_read_buf!(s, cx, buf),
            #[cfg(unix)]
            Stream::Unix(s) => poll_read_buf!(s, cx, buf),
        }
    }

    fn poll_write(&mut self, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        match self {
            Stream::Tcp(s) => Pin::new(s).poll_write(cx, data),
            #[cfg(unix)]
            Stream::Unix(s) => Pin::new(s).poll_write(cx, data),
        }
    }

    fn poll_flush(&mut self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    /// A `recv` on the socket itself: Tokio's own `try_read` would answer from its readiness
    /// cache, which only the runtime's IO driver refreshes, and busy polling exists to find
    /// the reply before that driver runs.
    fn read_now(&mut self, buf: &mut BytesMut) -> io::Result<usize> {
        let socket = match self {
            Stream::Tcp(s) => SockRef::from(&*s),
            #[cfg(unix)]
            Stream::Unix(s) => SockRef::from(&*s),
        };
        read_into_spare(buf, |window| (&*socket).read(window))
    }
}
