//! One socket and its protocol state: the only place this crate moves bytes.

use std::io::{self, Read, Write};
use std::net::TcpStream;
#[cfg(unix)]
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use memcache_proto::config::{self, Config};
use memcache_proto::io::read_into_spare;
use memcache_proto::{Connection, Endpoint, Error, Response, ServerAddr};

enum Stream {
    Tcp(TcpStream),
    #[cfg(unix)]
    Unix(UnixStream),
}

impl Stream {
    fn io(&mut self) -> &mut dyn ReadWrite {
        match self {
            Stream::Tcp(s) => s,
            #[cfg(unix)]
            Stream::Unix(s) => s,
        }
    }

    fn set_read_timeout(&self, t: Duration) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.set_read_timeout(Some(t)),
            #[cfg(unix)]
            Stream::Unix(s) => s.set_read_timeout(Some(t)),
        }
    }

    fn set_nonblocking(&self, on: bool) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.set_nonblocking(on),
            #[cfg(unix)]
            Stream::Unix(s) => s.set_nonblocking(on),
        }
    }

    fn set_write_timeout(&self, t: Duration) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.set_write_timeout(Some(t)),
            #[cfg(unix)]
            Stream::Unix(s) => s.set_write_timeout(Some(t)),
        }
    }
}

trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

/// A connection to one server: socket plus [`Connection`] state.
pub(crate) struct Conn {
    stream: Stream,
    proto: Connection,
    /// The socket's read timeout as last set, to skip redundant `setsockopt` calls.
    read_timeout: Duration,
    /// [`Config::busy_poll`].
    busy_poll: Duration,
}

impl Conn {
    pub(crate) fn connect(addr: &ServerAddr, config: &Config) -> Result<Conn, Error> {
        let timeout = config.connect_timeout;
        let stream = match addr.endpoint() {
            Endpoint::Tcp(sa) => {
                let s = TcpStream::connect_timeout(sa, timeout)?;
                s.set_nodelay(true)?;
                Stream::Tcp(s)
            }
            #[cfg(unix)]
            Endpoint::Unix(path) => Stream::Unix(UnixStream::connect(path)?),
            #[allow(unreachable_patterns)]
            _ => return Err(Error::BadAddress(addr.to_string())),
        };
        stream.set_write_timeout(timeout)?;
        stream.set_read_timeout(timeout)?;
        let proto = Connection::with_limits(config.limits);
        Ok(Conn { stream, proto, read_timeout: timeout, busy_poll: config.busy_poll })
    }

    /// Queues `command` and writes everything queued.
    pub(crate) fn send(&mut self, command: &memcache_proto::Command) -> Result<(), Error> {
        self.proto.send(command);
        while let Some(chunk) = self.proto.poll_transmit() {
            self.stream.io().write_all(&chunk)?;
        }
        Ok(())
    }

    /// Reads until the oldest request in flight is answered or `deadline` passes.
    pub(crate) fn receive(&mut self, deadline: Instant) -> Result<Response, Error> {
        let mut spun = self.busy_poll.is_zero();
        loop {
            if let Some(done) = self.proto.poll_response()? {
                return Ok(done.response);
            }
            if !spun {
                spun = true;
                if let Some(response) = self.nonblocking(|conn| conn.spin(deadline))? {
                    return Ok(response);
                }
                continue;
            }
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                // Past the deadline (a multi-server call may have spent it waiting on another
                // server): take what already arrived, without waiting for more.
                self.nonblocking(Conn::drain)?;
                return self.proto.poll_response()?.map(|done| done.response).ok_or(Error::Timeout);
            }
            if remaining < self.read_timeout {
                self.stream.set_read_timeout(remaining)?;
                self.read_timeout = remaining;
            }
            self.fill()?;
        }
    }

    /// One read straight into the protocol's buffer.
    fn fill(&mut self) -> Result<(), Error> {
        let io = self.stream.io();
        let result = read_into_spare(self.proto.read_buf(), |window| io.read(window));
        match result {
            Ok(0) => Err(io::Error::new(io::ErrorKind::UnexpectedEof, "server closed the connection").into()),
            Ok(_) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Runs `f` with the socket in non-blocking mode, where [`fill`](Self::fill) reports
    /// "nothing yet" as [`Error::Timeout`].
    fn nonblocking<T>(&mut self, f: impl FnOnce(&mut Conn) -> Result<T, Error>) -> Result<T, Error> {
        self.stream.set_nonblocking(true)?;
        let result = f(self);
        self.stream.set_nonblocking(false)?;
        result
    }

    /// Reads whatever the socket holds now; nothing is not an error.
    fn drain(&mut self) -> Result<(), Error> {
        let mut result = Ok(());
        while result.is_ok() && self.proto.in_flight() > 0 {
            result = self.fill();
        }
        match result {
            Err(Error::Timeout) | Ok(()) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Busy polling: reads without sleeping until the reply is complete, or until no byte has
    /// arrived for a `busy_poll` window, or `deadline`. `None` leaves the rest to blocking reads.
    fn spin(&mut self, deadline: Instant) -> Result<Option<Response>, Error> {
        let mut until = deadline.min(config::deadline(Instant::now(), self.busy_poll));
        loop {
            match self.fill() {
                Ok(()) => {
                    if let Some(done) = self.proto.poll_response()? {
                        return Ok(Some(done.response));
                    }
                    until = deadline.min(config::deadline(Instant::now(), self.busy_poll));
                }
                Err(Error::Timeout) if Instant::now() < until => std::hint::spin_loop(),
                Err(Error::Timeout) => return Ok(None),
                Err(e) => return Err(e),
            }
        }
    }

    /// Restores the full per-call read timeout if a previous call shortened it.
    pub(crate) fn reset_timeout(&mut self, timeout: Duration) -> Result<(), Error> {
        if self.read_timeout != timeout {
            self.stream.set_read_timeout(timeout)?;
            self.read_timeout = timeout;
        }
        Ok(())
    }

    /// Whether the connection may serve another call.
    pub(crate) fn reusable(&self) -> bool {
        self.proto.is_idle()
    }
}
