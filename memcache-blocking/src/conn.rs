//! One socket and its protocol state: the only place this crate moves bytes.

use std::io::{self, Read, Write};
use std::net::TcpStream;
#[cfg(unix)]
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use memcache_proto::{Connection, Endpoint, Error, Limits, Response, ServerAddr, read_into_spare};

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
}

impl Conn {
    pub(crate) fn connect(addr: &ServerAddr, timeout: Duration, limits: Limits) -> Result<Conn, Error> {
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
        Ok(Conn { stream, proto: Connection::with_limits(limits), read_timeout: timeout })
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
        loop {
            if let Some(done) = self.proto.poll_response()? {
                return Ok(done.response);
            }
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                // Past the deadline (a multi-server call may have spent it waiting on another
                // server): take what already arrived, without waiting for more.
                self.fill_nonblocking()?;
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
        let result =
            read_into_spare(self.proto.read_buf(), |window| io.read(window), |r| *r.as_ref().unwrap_or(&0));
        match result {
            Ok(0) => Err(io::Error::new(io::ErrorKind::UnexpectedEof, "server closed the connection").into()),
            Ok(_) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Reads whatever the socket holds now; nothing is not an error.
    fn fill_nonblocking(&mut self) -> Result<(), Error> {
        self.stream.set_nonblocking(true)?;
        let mut result = Ok(());
        while result.is_ok() && self.proto.in_flight() > 0 {
            result = self.fill();
        }
        self.stream.set_nonblocking(false)?;
        match result {
            Err(Error::Timeout) | Ok(()) => Ok(()),
            Err(e) => Err(e),
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
