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
//!
//! `Builder::connector` with [`connector`] opens connections your way (any Tokio
//! `AsyncRead + AsyncWrite`); with the `tls` feature, `Builder::tls` secures every connection
//! with rustls (see `memcache_proto::tls`).
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

/// The crate's README (what crates.io shows), compiled and run here as doctests so that its
/// code can't drift from the API.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

use std::fmt;
use std::future::Future;
use std::io::{self, Read};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use memcache_proto::Endpoint;
use memcache_proto::driver::{Connector, Runtime, Transport};
use memcache_proto::io::read_into_spare;
use socket2::SockRef;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
#[cfg(unix)]
use tokio::net::UnixStream;

pub use memcache_proto::prelude::*;
/// TLS settings ([`tls::TlsConfig`]) for `Builder::tls` (features `tls`, `tls-aws-lc-rs`).
#[cfg(any(feature = "tls", feature = "tls-aws-lc-rs"))]
pub use memcache_proto::tls;
#[cfg(any(feature = "tls", feature = "tls-aws-lc-rs"))]
mod tls_stream;
#[cfg(any(feature = "tls", feature = "tls-aws-lc-rs"))]
pub use tls_stream::TlsStream;

/// The memcached client on Tokio. See [`memcache_proto::driver::Client`] for its calls.
pub type Client = memcache_proto::driver::Client<Tokio>;

/// A typed view of a [`Client`] (`client.typed(codec)`): values of type `T` through the
/// codec `C`. See [`memcache_proto::driver::Typed`] for its calls.
pub type Typed<C, T> = memcache_proto::driver::Typed<Tokio, C, T>;

/// The Tokio [`Runtime`]: Tokio sockets, `tokio::spawn` and `tokio::time::timeout`.
#[derive(Debug, Clone, Copy)]
pub struct Tokio;

/// A connection's stream: a Tokio TCP or Unix socket, or any other stream (one a
/// [`connector`] opened, or a TLS session).
#[non_exhaustive]
pub enum Stream {
    /// TCP.
    Tcp(TcpStream),
    /// A Unix domain socket.
    #[cfg(unix)]
    Unix(UnixStream),
    /// A stream from a [`connector`].
    Custom(Box<dyn AsyncStream>),
    /// TLS over any of these.
    #[cfg(any(feature = "tls", feature = "tls-aws-lc-rs"))]
    Tls(TlsStream),
}

impl fmt::Debug for Stream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Stream::Tcp(s) => f.debug_tuple("Tcp").field(s).finish(),
            #[cfg(unix)]
            Stream::Unix(s) => f.debug_tuple("Unix").field(s).finish(),
            Stream::Custom(_) => f.write_str("Custom"),
            #[cfg(any(feature = "tls", feature = "tls-aws-lc-rs"))]
            Stream::Tls(s) => f.debug_tuple("Tls").field(s).finish(),
        }
    }
}

/// Any Tokio byte stream the client can run over.
pub trait AsyncStream: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> AsyncStream for T {}

/// Each kind of stream's `AsyncRead`/`AsyncWrite` call, by variant.
macro_rules! each {
    ($stream:expr, $s:ident => $call:expr) => {
        match $stream {
            Stream::Tcp($s) => $call,
            #[cfg(unix)]
            Stream::Unix($s) => $call,
            Stream::Custom($s) => $call,
            #[cfg(any(feature = "tls", feature = "tls-aws-lc-rs"))]
            Stream::Tls($s) => $call,
        }
    };
}

/// Any of the streams, as Tokio sees them (TLS runs over this).
impl AsyncRead for Stream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        each!(self.get_mut(), s => Pin::new(s).poll_read(cx, buf))
    }
}

impl AsyncWrite for Stream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        each!(self.get_mut(), s => Pin::new(s).poll_write(cx, data))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        each!(self.get_mut(), s => Pin::new(s).poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        each!(self.get_mut(), s => Pin::new(s).poll_shutdown(cx))
    }
}

/// A connector (for `Builder::connector`) from a closure that, given a server, connects to it
/// any way it likes and returns a Tokio `AsyncRead + AsyncWrite` stream. It runs for every new
/// connection, within the connect timeout; the client reconnects through it after failures.
/// Busy polling ([`Builder::busy_poll`]) applies to the client's own sockets only.
///
/// ```no_run
/// use memcache_tokio::{Client, ServerAddr, connector};
///
/// # fn demo() -> Result<(), memcache_tokio::Error> {
/// // Reach every server through a Unix socket named after it.
/// let client = Client::builder()
///     .servers(["cache-a:11211"])
///     .connector(connector(|server: &ServerAddr| {
///         let path = format!("/run/memcached/{}.sock", server.as_str().replace(':', "-"));
///         tokio::net::UnixStream::connect(path)
///     }))
///     .build()?;
/// # Ok(())
/// # }
/// ```
pub fn connector<F, Fut, S>(connect: F) -> Connector<Stream>
where
    F: Fn(&ServerAddr) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = io::Result<S>> + Send + 'static,
    S: AsyncStream,
{
    Arc::new(move |server| {
        let connecting = connect(server);
        Box::pin(async move { Ok(Stream::Custom(Box::new(connecting.await?))) })
    })
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

    /// tokio-rustls over the fresh stream.
    #[cfg(any(feature = "tls", feature = "tls-aws-lc-rs"))]
    async fn handshake(
        tls: &memcache_proto::tls::TlsConfig,
        server: &ServerAddr,
        io: Stream,
    ) -> Result<Stream, Error> {
        let name = tls.server_name_for(server)?;
        let connector = tokio_rustls::TlsConnector::from(Arc::clone(tls.client_config()));
        Ok(Stream::Tls(TlsStream::new(connector.connect(name, io).await?)))
    }
}

/// One read of an `AsyncRead` into `buf`'s spare capacity.
fn poll_read_async(
    io: &mut (impl AsyncRead + Unpin),
    cx: &mut Context<'_>,
    buf: &mut BytesMut,
) -> Poll<io::Result<usize>> {
    read_into_spare(buf, |window| {
        let mut window = ReadBuf::new(window);
        Pin::new(io).poll_read(cx, &mut window).map_ok(|()| window.filled().len())
    })
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
            s => poll_read_async(s, cx, buf),
        }
    }

    fn poll_write(&mut self, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(self).poll_write(cx, data)
    }

    /// Sockets write through at once; a TLS session or a buffered stream may hold bytes back.
    fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self {
            Stream::Tcp(_) => Poll::Ready(Ok(())),
            #[cfg(unix)]
            Stream::Unix(_) => Poll::Ready(Ok(())),
            s => Pin::new(s).poll_flush(cx),
        }
    }

    /// The client's own sockets read through `try_read_buf`, which makes the system call
    /// whenever Tokio holds the socket as readable; a TLS session or a connector's stream
    /// may answer from buffers (and `AsyncRead` clears readiness after a short read).
    fn fresh_reads(&self) -> bool {
        match self {
            Stream::Tcp(_) => true,
            #[cfg(unix)]
            Stream::Unix(_) => true,
            _ => false,
        }
    }

    /// A `recv` on the socket itself: Tokio's own `try_read` would answer from its readiness
    /// cache, which only the runtime's IO driver refreshes, and busy polling exists to find
    /// the reply before that driver runs. A TLS session over the client's socket reads its
    /// records the same way ([`TlsStream`]); a connector's stream does not support it.
    fn read_now(&mut self, buf: &mut BytesMut) -> io::Result<usize> {
        let socket = match self {
            Stream::Tcp(s) => SockRef::from(&*s),
            #[cfg(unix)]
            Stream::Unix(s) => SockRef::from(&*s),
            Stream::Custom(_) => return Err(io::ErrorKind::Unsupported.into()),
            #[cfg(any(feature = "tls", feature = "tls-aws-lc-rs"))]
            Stream::Tls(s) => return s.read_now(buf),
        };
        read_into_spare(buf, |window| (&*socket).read(window))
    }
}
