//! The client on async-std (feature `async-std`, the default).

use std::future::Future;
use std::io;
use std::time::{Duration, Instant};

use async_std::net::TcpStream;
#[cfg(unix)]
use async_std::os::unix::net::UnixStream;
use memcache_proto::Endpoint;
use memcache_proto::driver::Runtime;

use crate::Stream;

/// The memcached client on async-std. See [`memcache_proto::driver::Client`] for its
/// calls.
#[cfg_attr(docsrs, doc(cfg(feature = "async-std")))]
pub type Client = memcache_proto::driver::Client<AsyncStd>;

/// A typed view of a [`Client`] (`client.typed(codec)`): values of type `T` through the
/// codec `C`. See [`memcache_proto::driver::Typed`] for its calls.
#[cfg_attr(docsrs, doc(cfg(feature = "async-std")))]
pub type Typed<C, T> = memcache_proto::driver::Typed<AsyncStd, C, T>;

/// The async-std [`Runtime`]: async-std sockets, `task::spawn` and `future::timeout`.
///
/// async-std runs its executor and timers on threads of its own, so this client also works
/// when called from another runtime's tasks.
#[cfg_attr(docsrs, doc(cfg(feature = "async-std")))]
#[derive(Debug, Clone, Copy)]
pub struct AsyncStd;

impl Runtime for AsyncStd {
    type Io = Stream;

    async fn connect(endpoint: &Endpoint) -> io::Result<Stream> {
        connect_endpoint!(endpoint)
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
