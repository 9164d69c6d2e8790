//! An async memcached client on the runtime-neutral `futures-io` traits, for async-std or
//! smol, following gomemcache's API.
//!
//! ```no_run
//! # #[cfg(feature = "async-std")]
//! # mod demo {
//! use memcache_async_std::{Client, Error, Item};
//!
//! # async fn demo() -> Result<(), Error> {
//! let client = Client::new(["127.0.0.1:11211"])?;
//! client.set(&Item::new("greeting", "hello")).await?;
//! assert_eq!(&client.get("greeting").await?.value[..], b"hello");
//! # Ok(())
//! # }
//! # }
//! ```
//!
//! The client is [`memcache_proto::driver::Client`] on a runtime of this crate, so it
//! behaves exactly like `memcache-tokio`'s: pipelining on a few connections per server,
//! per-call deadlines (default 100 ms), and futures that may be dropped at any point.
//!
//! # Runtimes
//!
//! The connection code is written against `futures_io::{AsyncRead, AsyncWrite}` only; a
//! runtime adds sockets, a timer and a way to spawn the one background task per connection.
//!
//! - Feature `async-std` (default): `Client` at the crate root, on async-std's sockets,
//!   timers and global executor (the `AsyncStd` runtime). async-std is no longer developed
//!   upstream; new code should prefer smol.
//! - Feature `smol`: the `smol` module's `Client`, on smol's sockets and timers, spawning on
//!   smol's global executor or on an executor you supply. Built with
//!   `default-features = false, features = ["smol"]`, this crate brings no async-std.
//!
//! (Items that need a feature are marked so in the documentation built with all of them.)
//!
//! Both runtimes run the same conformance suite.
//!
//! # Connectors and TLS
//!
//! `Builder::connector` with [`connector`] opens every connection your way (a proxy, a stream
//! from another runtime, a Unix socket chosen per server), and the client reconnects through
//! it after any failure. With the `tls` feature, `Builder::tls` secures every connection with
//! rustls (futures-rustls; see `memcache_proto::tls`), in either runtime.
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::BytesMut;
use futures_io::{AsyncRead, AsyncWrite};
use memcache_proto::driver::{Connector, Transport};
use memcache_proto::io::read_into_spare;

pub use memcache_proto::prelude::*;
/// TLS settings ([`tls::TlsConfig`]) for `Builder::tls` (features `tls`, `tls-aws-lc-rs`).
#[cfg(any(feature = "tls", feature = "tls-aws-lc-rs"))]
pub use memcache_proto::tls;

/// `Runtime::connect` for a futures-io runtime whose `TcpStream`/`UnixStream` are in scope
/// (async-std's or smol's): TCP with `TCP_NODELAY`, or a Unix socket, as a [`Stream`].
#[cfg(any(feature = "async-std", feature = "smol"))]
macro_rules! connect_endpoint {
    ($endpoint:expr) => {
        match $endpoint {
            Endpoint::Tcp(addr) => {
                let s = TcpStream::connect(addr).await?;
                s.set_nodelay(true)?;
                Ok(Stream::socket(s))
            }
            #[cfg(unix)]
            Endpoint::Unix(path) => Ok(Stream::socket(UnixStream::connect(path).await?)),
            _ => Err(io::Error::new(io::ErrorKind::Unsupported, "no socket for this endpoint")),
        }
    };
}

#[cfg(feature = "async-std")]
mod async_std_runtime;
mod relay;

use relay::Direction;
#[cfg(feature = "smol")]
pub mod smol;

#[cfg(feature = "async-std")]
pub use async_std_runtime::{AsyncStd, Client, Typed};

/// The crate's README (what crates.io shows), compiled and run here as doctests so that its
/// code can't drift from the API.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

/// Any futures-io byte stream the client can run over.
pub trait AsyncStream: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> AsyncStream for T {}

/// A connection's stream: a runtime's socket, a stream a [`connector`] opened, or TLS over
/// either.
pub struct Stream {
    io: Box<dyn AsyncStream>,
    /// The caller's task and the connection's driver both read it (see [`relay`]).
    read: Direction,
    write: Direction,
    /// The runtime's own socket (async-io reads it for real on every poll), not a TLS
    /// session or a connector's stream, which may answer from buffers.
    socket: bool,
}

impl Stream {
    fn new(stream: impl AsyncStream) -> Self {
        Stream { io: Box::new(stream), read: Direction::new(), write: Direction::new(), socket: false }
    }

    /// The runtime's own socket.
    #[cfg(any(feature = "async-std", feature = "smol"))]
    fn socket(stream: impl AsyncStream) -> Self {
        Stream { socket: true, ..Stream::new(stream) }
    }
}

impl fmt::Debug for Stream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Stream")
    }
}

impl Transport for Stream {
    fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut BytesMut) -> Poll<io::Result<usize>> {
        let mut cx = self.read.register(cx.waker());
        read_into_spare(buf, |window| Pin::new(&mut self.io).poll_read(&mut cx, window))
    }

    fn poll_write(&mut self, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(&mut self.write.register(cx.waker()), data)
    }

    fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(&mut self.write.register(cx.waker()))
    }

    /// futures-io streams (async-io's included) try the read system call on every poll, so a
    /// poll is a read now. It polls with the stream's own waker and leaves the task to wake
    /// as it is: whoever waits for the reply keeps its wake-up.
    /// async-io's sockets try the read system call on every poll.
    fn fresh_reads(&self) -> bool {
        self.socket
    }

    fn read_now(&mut self, buf: &mut BytesMut) -> io::Result<usize> {
        let mut cx = self.read.context();
        match read_into_spare(buf, |window| Pin::new(&mut self.io).poll_read(&mut cx, window)) {
            Poll::Ready(read) => read,
            Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
        }
    }
}

/// A connector (for `Builder::connector`, in either runtime) from a closure that, given a
/// server, connects to it any way it likes and returns a futures-io `AsyncRead + AsyncWrite`
/// stream. It runs for every new connection, within the connect timeout, so the client
/// reconnects through it after any failure.
///
/// ```no_run
/// # #[cfg(feature = "smol")]
/// # fn demo() -> Result<(), memcache_async_std::Error> {
/// use memcache_async_std::{ServerAddr, connector, smol::Client};
///
/// // Reach every server through a Unix socket named after it.
/// let client = Client::builder()
///     .servers(["cache-a:11211"])
///     .connector(connector(|server: &ServerAddr| {
///         let path = format!("/run/memcached/{}.sock", server.as_str().replace(':', "-"));
///         smol::net::unix::UnixStream::connect(path)
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
        Box::pin(async move { Ok(Stream::new(connecting.await?)) })
    })
}

/// futures-rustls over a fresh stream: the TLS handshake of either runtime.
#[cfg(any(feature = "tls", feature = "tls-aws-lc-rs"))]
#[cfg_attr(not(any(feature = "async-std", feature = "smol")), allow(dead_code))]
async fn tls_handshake(
    tls: &memcache_proto::tls::TlsConfig,
    server: &ServerAddr,
    io: Stream,
) -> Result<Stream, Error> {
    let name = tls.server_name_for(server)?;
    let connector = futures_rustls::TlsConnector::from(Arc::clone(tls.client_config()));
    Ok(Stream::new(connector.connect(name, io.io).await?))
}
