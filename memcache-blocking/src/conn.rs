//! One socket and its protocol state: the only place this crate moves bytes.

use std::io;
use std::time::{Duration, Instant};

use memcache_proto::config::{self, Config};
use memcache_proto::io::read_into_spare;
use memcache_proto::{Connection, Error, Response, ServerAddr};

use crate::socket::{Connector, Socket};

/// The socket as the connection uses it: timeouts given as plain durations.
struct Stream(Box<dyn Socket>);

impl Stream {
    fn io(&mut self) -> &mut Box<dyn Socket> {
        &mut self.0
    }

    fn set_read_timeout(&self, t: Duration) -> io::Result<()> {
        self.0.set_read_timeout(Some(t))
    }

    fn set_nonblocking(&self, on: bool) -> io::Result<()> {
        self.0.set_nonblocking(on)
    }

    fn set_write_timeout(&self, t: Duration) -> io::Result<()> {
        self.0.set_write_timeout(Some(t))
    }
}

/// How long past its deadline one blocking read or write may wait. The socket's timeout is
/// shortened to what is left of a call only when that is shorter by more than this, so a call
/// answered in time makes no `setsockopt` (it made four: shorten and restore, both ways),
/// and a call that times out ends at most this late (Linux counts socket timeouts in clock
/// ticks of 1-10 ms anyway).
const TIMEOUT_SLACK: Duration = Duration::from_millis(1);

/// Reads a call past its deadline may still make (of at most 64 KiB each): enough for a reply
/// that had already arrived, and a bound against a peer that never stops sending.
const DRAIN_READS: usize = 4;

/// A connection to one server: socket plus [`Connection`] state.
pub(crate) struct Conn {
    stream: Stream,
    proto: Connection,
    /// The socket's read timeout as last set, to skip redundant `setsockopt` calls.
    read_timeout: Duration,
    /// The socket's write timeout as last set.
    write_timeout: Duration,
    /// Whether a [`send`](Conn::send) since the connection was opened or taken from the pool
    /// handed any byte to the socket.
    wrote: bool,
    /// [`Config::busy_poll`].
    busy_poll: Duration,
}

impl Conn {
    /// Opens a connection (with `connector` if there is one, then the TLS handshake if
    /// configured), all within the connect timeout.
    pub(crate) fn connect(
        addr: &ServerAddr,
        config: &Config,
        connector: Option<&Connector>,
    ) -> Result<Conn, Error> {
        let stream = Stream(crate::socket::open(addr, config, connector)?);
        // The calls' timeout from now on, not the connect timeout: each call shortens it to
        // what is left of its deadline.
        stream.set_write_timeout(config.timeout)?;
        stream.set_read_timeout(config.timeout)?;
        let proto = Connection::with_limits(config.limits);
        Ok(Conn {
            stream,
            proto,
            read_timeout: config.timeout,
            write_timeout: config.timeout,
            wrote: false,
            busy_poll: config.busy_poll,
        })
    }

    /// Queues `command` and writes everything queued, each write bounded by what is left
    /// until `deadline`. [`wrote_any`](Self::wrote_any) then tells whether any byte left.
    pub(crate) fn send(&mut self, command: &memcache_proto::Command, deadline: Instant) -> Result<(), Error> {
        self.proto.send(command);
        while let Some(chunk) = self.proto.poll_transmit() {
            let mut rest = &chunk[..];
            while !rest.is_empty() {
                let remaining = deadline.saturating_duration_since(Instant::now());
                if remaining.is_zero() {
                    return Err(Error::Timeout);
                }
                if remaining + TIMEOUT_SLACK < self.write_timeout {
                    self.stream.set_write_timeout(remaining)?;
                    self.write_timeout = remaining;
                }
                match self.stream.io().write(rest) {
                    Ok(0) => return Err(io::Error::from(io::ErrorKind::WriteZero).into()),
                    Ok(n) => {
                        self.wrote = true;
                        rest = &rest[n..];
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
        Ok(())
    }

    /// Whether any byte of this call's requests was handed to the socket, so that the server
    /// may have received it (see `memcache_proto::retry`).
    pub(crate) fn wrote_any(&self) -> bool {
        self.wrote
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
                return self.nonblocking(Conn::drain)?.ok_or(Error::Timeout);
            }
            if remaining + TIMEOUT_SLACK < self.read_timeout {
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

    /// Takes what already arrived, without waiting for more: at most [`DRAIN_READS`]
    /// non-blocking reads, so that a server streaming faster than this reads cannot keep a
    /// call that is past its deadline reading.
    fn drain(&mut self) -> Result<Option<Response>, Error> {
        for _ in 0..DRAIN_READS {
            if let Some(done) = self.proto.poll_response()? {
                return Ok(Some(done.response));
            }
            match self.fill() {
                Ok(()) => {}
                Err(Error::Timeout) => break,
                Err(e) => return Err(e),
            }
        }
        Ok(self.proto.poll_response()?.map(|done| done.response))
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

    /// Readies a pooled connection for a call: nothing of it written yet, and the full per-call
    /// read and write timeouts restored if a previous call shortened them.
    pub(crate) fn reset_timeout(&mut self, timeout: Duration) -> Result<(), Error> {
        self.wrote = false;
        if self.read_timeout != timeout {
            self.stream.set_read_timeout(timeout)?;
            self.read_timeout = timeout;
        }
        if self.write_timeout != timeout {
            self.stream.set_write_timeout(timeout)?;
            self.write_timeout = timeout;
        }
        Ok(())
    }

    /// Whether an idle connection is still open, checked without waiting: a non-blocking read
    /// must find nothing. End of stream (the server closed it: restarted, or an idle timeout),
    /// a reset, or bytes nobody asked for all mean it must not carry a request, which could
    /// then not safely be sent again (see `memcache_proto::retry`).
    pub(crate) fn is_alive(&mut self) -> bool {
        match self.stream.0.input_pending() {
            Some(pending) => matches!(pending, Ok(false)),
            None => matches!(self.nonblocking(Conn::fill), Err(Error::Timeout)),
        }
    }

    /// Whether the connection may serve another call.
    pub(crate) fn reusable(&self) -> bool {
        self.proto.is_idle()
    }
}
