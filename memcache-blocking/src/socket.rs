//! The streams the client runs over: its own TCP and Unix sockets, whatever a [`Connector`]
//! opens, and TLS over either.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::TcpStream;
#[cfg(unix)]
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use memcache_proto::config::Config;
use memcache_proto::resolve;
use memcache_proto::{Endpoint, Error, ServerAddr};

/// A connected byte stream the blocking client can use: `Read + Write`, plus the timeouts and
/// non-blocking mode with which the client bounds every call by its deadline. Implemented for
/// `TcpStream` and `UnixStream`; implement it for a stream of your own (delegating to the
/// socket underneath) to hand it to the client through a [`Connector`].
pub trait Socket: Read + Write + Send + 'static {
    /// Like [`TcpStream::set_read_timeout`].
    fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()>;
    /// Like [`TcpStream::set_write_timeout`].
    fn set_write_timeout(&self, timeout: Option<Duration>) -> io::Result<()>;
    /// Like [`TcpStream::set_nonblocking`]: reads then return `WouldBlock` instead of waiting.
    fn set_nonblocking(&self, nonblocking: bool) -> io::Result<()>;

    /// Whether input (bytes, or the end of the stream) waits to be read, found without waiting
    /// and without taking it: the client asks before reusing an idle connection. `None` (the
    /// default) if this socket can't tell that way; the client then reads in non-blocking
    /// mode, which costs two more system calls. The client's own TCP and Unix sockets answer
    /// with one `recv(MSG_PEEK | MSG_DONTWAIT)`. A stream that buffers or consumes input of
    /// its own (TLS reads session tickets) must keep the default.
    fn input_pending(&self) -> Option<io::Result<bool>> {
        None
    }
}

/// One `recv(MSG_PEEK | MSG_DONTWAIT)` of a byte: whether input waits, without taking it.
#[cfg(unix)]
fn peek_now(socket: socket2::SockRef<'_>) -> io::Result<bool> {
    let mut byte = [std::mem::MaybeUninit::<u8>::uninit()];
    loop {
        return match socket.recv_with_flags(&mut byte, libc::MSG_PEEK | libc::MSG_DONTWAIT) {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(false),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => Err(e),
        };
    }
}

macro_rules! std_socket {
    ($t:ty) => {
        impl Socket for $t {
            fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
                <$t>::set_read_timeout(self, timeout)
            }
            fn set_write_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
                <$t>::set_write_timeout(self, timeout)
            }
            fn set_nonblocking(&self, nonblocking: bool) -> io::Result<()> {
                <$t>::set_nonblocking(self, nonblocking)
            }
            #[cfg(unix)]
            fn input_pending(&self) -> Option<io::Result<bool>> {
                Some(peek_now(socket2::SockRef::from(self)))
            }
        }
    };
}

std_socket!(TcpStream);
#[cfg(unix)]
std_socket!(UnixStream);

impl Socket for Box<dyn Socket> {
    fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        (**self).set_read_timeout(timeout)
    }
    fn set_write_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        (**self).set_write_timeout(timeout)
    }
    fn set_nonblocking(&self, nonblocking: bool) -> io::Result<()> {
        (**self).set_nonblocking(nonblocking)
    }
    fn input_pending(&self) -> Option<io::Result<bool>> {
        (**self).input_pending()
    }
}

/// Opens the stream to a server, given the connect timeout (see
/// [`Builder::connector`](memcache_proto::config::Builder::connector)). Made with
/// [`connector`].
#[derive(Clone)]
pub struct Connector(Arc<ConnectFn>);

type ConnectFn = dyn Fn(&ServerAddr, Duration) -> io::Result<Box<dyn Socket>> + Send + Sync;

impl fmt::Debug for Connector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Connector")
    }
}

/// A [`Connector`] from a closure that, given a server and the connect timeout, returns a
/// connected [`Socket`]. It runs for every new connection, so the client reconnects through
/// it after any failure.
///
/// ```no_run
/// use std::net::TcpStream;
/// use memcache_blocking::{Client, connector};
///
/// // Count connections, then connect as the client would.
/// let opened = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
/// let counter = opened.clone();
/// let client = Client::builder()
///     .servers(["127.0.0.1:11211"])
///     .connector(connector(move |server, timeout| {
///         counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
///         memcache_blocking::connect(server, timeout)
///     }))
///     .build()?;
/// # Ok::<(), memcache_blocking::Error>(())
/// ```
pub fn connector<S, F>(connect: F) -> Connector
where
    S: Socket,
    F: Fn(&ServerAddr, Duration) -> io::Result<S> + Send + Sync + 'static,
{
    Connector(Arc::new(move |server, timeout| Ok(Box::new(connect(server, timeout)?))))
}

/// A new connection to `server`: `connector`'s stream or the default socket, then the TLS
/// handshake if the config has TLS, all within the connect timeout.
pub(crate) fn open(
    server: &ServerAddr,
    config: &Config,
    connector: Option<&Connector>,
) -> Result<Box<dyn Socket>, Error> {
    let timeout = config.connect_timeout;
    let start = Instant::now();
    let socket = match connector {
        Some(connector) => (connector.0)(server, timeout)?,
        None => connect(server, timeout)?,
    };
    #[cfg(any(feature = "tls", feature = "tls-aws-lc-rs"))]
    if let Some(tls) = &config.tls {
        return handshake(tls, server, socket, timeout.saturating_sub(start.elapsed()));
    }
    let _ = start;
    Ok(socket)
}

/// What the client does without a connector: connects to the first of `server`'s addresses
/// that accepts (TCP with `TCP_NODELAY`, or a Unix socket), within `timeout` shared between
/// them (see [`resolve::attempt_timeout`]); the last failure otherwise. Public so that a
/// connector can add to it.
pub fn connect(server: &ServerAddr, timeout: Duration) -> io::Result<Box<dyn Socket>> {
    let start = Instant::now();
    let endpoints = server.endpoints();
    let mut failure = io::Error::from(io::ErrorKind::TimedOut);
    for (i, endpoint) in endpoints.iter().enumerate() {
        let left = timeout.saturating_sub(start.elapsed());
        if left.is_zero() {
            break;
        }
        let attempt: io::Result<Box<dyn Socket>> = match endpoint {
            Endpoint::Tcp(sa) => {
                TcpStream::connect_timeout(sa, resolve::attempt_timeout(left, endpoints.len() - i))
                    .and_then(|s| s.set_nodelay(true).map(|()| Box::new(s) as Box<dyn Socket>))
            }
            #[cfg(unix)]
            Endpoint::Unix(path) => UnixStream::connect(path).map(|s| Box::new(s) as Box<dyn Socket>),
            _ => Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!("{server} has no socket of its own: it needs a connector"),
            )),
        };
        match attempt {
            Ok(socket) => return Ok(socket),
            Err(e) => failure = e,
        }
    }
    Err(failure)
}

/// A TLS session over a socket.
#[cfg(any(feature = "tls", feature = "tls-aws-lc-rs"))]
type TlsSocket = rustls::StreamOwned<rustls::ClientConnection, Box<dyn Socket>>;

#[cfg(any(feature = "tls", feature = "tls-aws-lc-rs"))]
impl Socket for TlsSocket {
    fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.sock.set_read_timeout(timeout)
    }
    fn set_write_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.sock.set_write_timeout(timeout)
    }
    fn set_nonblocking(&self, nonblocking: bool) -> io::Result<()> {
        self.sock.set_nonblocking(nonblocking)
    }
}

/// Runs the TLS handshake over `sock` within `timeout` and returns the secured socket.
#[cfg(any(feature = "tls", feature = "tls-aws-lc-rs"))]
fn handshake(
    tls: &memcache_proto::tls::TlsConfig,
    server: &ServerAddr,
    mut sock: Box<dyn Socket>,
    timeout: Duration,
) -> Result<Box<dyn Socket>, Error> {
    let mut session = tls.connection(server)?;
    let deadline = memcache_proto::config::deadline(Instant::now(), timeout);
    while session.is_handshaking() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(Error::Timeout);
        }
        sock.set_read_timeout(Some(left))?;
        sock.set_write_timeout(Some(left))?;
        session.complete_io(&mut sock)?;
    }
    Ok(Box::new(TlsSocket::new(session, sock)))
}
