//! An async memcached client on the runtime-neutral `futures-io` traits, with async-std for
//! connecting, timers and spawning.
//!
//! ```no_run
//! use memcache_async_std::{Client, Error, Item};
//!
//! # async fn demo() -> Result<(), Error> {
//! let client = Client::new(["127.0.0.1:11211"])?;
//! client.set(&Item::new("greeting", "hello")).await?;
//! assert_eq!(&client.get("greeting").await?.value[..], b"hello");
//! # Ok(())
//! # }
//! ```
//!
//! [`Client`] is [`memcache_proto::driver::Client`] on the [`AsyncStd`] runtime, so it
//! behaves exactly like `memcache-tokio`'s: pipelining on a few connections per server,
//! per-call deadlines (default 100 ms), and futures that may be dropped at any point.
//!
//! # Any futures-io runtime
//!
//! async-std is no longer developed upstream. The connection code here is written against
//! `futures_io::{AsyncRead, AsyncWrite}` only, and async-std's executor and timers run on
//! their own threads, so the client works from smol or any other futures-io runtime.
//! [`from_stream`] hands the client a stream you connected yourself (TLS, a proxy, a stream
//! from another runtime).
#![forbid(unsafe_code)]
#![deny(missing_docs)]

use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use async_std::net::TcpStream;
#[cfg(unix)]
use async_std::os::unix::net::UnixStream;
use bytes::BytesMut;
use futures_io::{AsyncRead, AsyncWrite};
use memcache_proto::Endpoint;
use memcache_proto::driver::{Connector, Runtime, Transport};
use memcache_proto::io::read_into_spare;

pub use memcache_proto::prelude::*;

/// The memcached client on async-std. See [`memcache_proto::driver::Client`] for its
/// calls.
pub type Client = memcache_proto::driver::Client<AsyncStd>;

/// The async-std [`Runtime`]: async-std sockets, `task::spawn` and `future::timeout`.
#[derive(Debug, Clone, Copy)]
pub struct AsyncStd;

/// Any futures-io byte stream the client can run over.
pub trait AsyncStream: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> AsyncStream for T {}

/// A connection's stream: an async-std socket or one handed over with [`from_stream`].
pub struct Stream(Box<dyn AsyncStream>);

impl fmt::Debug for Stream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Stream")
    }
}

impl Transport for Stream {
    fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut BytesMut) -> Poll<io::Result<usize>> {
        read_into_spare(buf, |window| Pin::new(&mut self.0).poll_read(cx, window))
    }

    fn poll_write(&mut self, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, data)
    }

    fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    /// futures-io streams (async-io's included) try the read system call on every poll, so a
    /// poll with a no-op waker is a read now; the pipe polls again with its real waker after.
    fn read_now(&mut self, buf: &mut BytesMut) -> io::Result<usize> {
        match self.poll_read(&mut Context::from_waker(std::task::Waker::noop()), buf) {
            Poll::Ready(read) => read,
            Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
        }
    }
}

impl Runtime for AsyncStd {
    type Io = Stream;

    async fn connect(endpoint: &Endpoint) -> io::Result<Stream> {
        match endpoint {
            Endpoint::Tcp(addr) => {
                let s = TcpStream::connect(addr).await?;
                s.set_nodelay(true)?;
                Ok(Stream(Box::new(s)))
            }
            #[cfg(unix)]
            Endpoint::Unix(path) => Ok(Stream(Box::new(UnixStream::connect(path).await?))),
            _ => Err(io::Error::new(io::ErrorKind::Unsupported, "no socket for this endpoint")),
        }
    }

    fn spawn<F: Future<Output = ()> + Send + 'static>(task: F) {
        async_std::task::spawn(task);
    }

    async fn timeout<F: Future + Send>(d: Duration, f: F) -> Option<F::Output> {
        async_std::future::timeout(d, f).await.ok()
    }

    /// The system's monotonic clock, which async-std's timers follow.
    fn now() -> Instant {
        Instant::now()
    }
}

/// A client over one stream you connected yourself, with the default settings.
///
/// All calls are pipelined on that stream. It can't be reopened: once it fails (or a call
/// times out, which closes it), calls fail with an IO error; make a new client then.
pub fn from_stream(stream: impl AsyncStream) -> Result<Client, Error> {
    from_stream_with(stream, Client::builder())
}

/// [`from_stream`] with the settings of `builder` (its servers are ignored).
pub fn from_stream_with(stream: impl AsyncStream, builder: Builder<Client>) -> Result<Client, Error> {
    let server = ServerAddr::custom("connected-stream");
    let config = builder.selector(OnlyServer(server)).config()?;
    let stream = Mutex::new(Some(Stream(Box::new(stream))));
    let connector: Connector<Stream> = Arc::new(move |_| {
        let taken = stream.lock().unwrap_or_else(|p| p.into_inner()).take();
        Box::pin(async move {
            taken.ok_or_else(|| io::Error::new(io::ErrorKind::NotConnected, "the connected stream is gone"))
        })
    });
    Ok(Client::with_connector(config, connector))
}

/// A selector with exactly one server.
#[derive(Debug)]
struct OnlyServer(ServerAddr);

impl ServerSelector for OnlyServer {
    fn pick_server(&self, _key: &[u8]) -> Result<ServerAddr, Error> {
        Ok(self.0.clone())
    }

    fn servers(&self) -> Vec<ServerAddr> {
        vec![self.0.clone()]
    }
}
