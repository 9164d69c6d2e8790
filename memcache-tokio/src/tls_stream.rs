//! TLS sessions (tokio-rustls) over the client's own sockets that the pipe can read without a
//! waker ([`Transport::read_now`](memcache_proto::driver::Transport::read_now)): the check of
//! an idle connection before a request is written onto it, and busy polling.
//!
//! tokio-rustls reads only through `poll_read`, which registers the caller's waker with the
//! runtime; a read with any other waker would replace the driver's and lose its wake-ups. So
//! the session is fed here from the socket itself (a `recv` that registers nothing, as for a
//! plain socket), and the records read are decrypted by the same rustls session the stream
//! uses. What arrives on an idle connection is then told apart: an end of stream or a reset
//! (the server restarted, a proxy cut it), application data (the stream is out of step), or
//! TLS housekeeping such as session tickets, which the session absorbs and which leave the
//! connection usable.

use std::fmt;
use std::io::{self, Read};
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::BytesMut;
use memcache_proto::io::read_into_spare;
use socket2::SockRef;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_rustls::rustls::ClientConnection;

use super::Stream;

/// A TLS session over a [`Stream`] (a client's socket, or a connector's stream).
pub struct TlsStream(Box<tokio_rustls::client::TlsStream<Stream>>);

impl fmt::Debug for TlsStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("TlsStream").field(self.0.get_ref().0).finish()
    }
}

impl TlsStream {
    pub(crate) fn new(stream: tokio_rustls::client::TlsStream<Stream>) -> TlsStream {
        TlsStream(Box::new(stream))
    }

    /// The plaintext the session holds or the socket's records carry right now: bytes read,
    /// `Ok(0)` at the end of the stream (a `close_notify`, or the socket's end), `WouldBlock`
    /// if nothing (records that carried no data, such as session tickets, included).
    /// `Unsupported` over a connector's stream, which has no socket to read without a waker.
    pub(crate) fn read_now(&mut self, buf: &mut BytesMut) -> io::Result<usize> {
        let (io, session) = self.0.get_mut();
        let socket = match io {
            Stream::Tcp(s) => SockRef::from(&*s),
            #[cfg(unix)]
            Stream::Unix(s) => SockRef::from(&*s),
            _ => return Err(io::ErrorKind::Unsupported.into()),
        };
        loop {
            match read_into_spare(buf, |window| session.reader().read(window)) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                read => return read,
            }
            if feed(session, &mut &*socket)? == 0 {
                return Ok(0);
            }
        }
    }
}

impl AsyncRead for TlsStream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.get_mut().0).poll_read(cx, buf)
    }
}

impl AsyncWrite for TlsStream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.get_mut().0).poll_write(cx, data)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.get_mut().0).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.get_mut().0).poll_shutdown(cx)
    }
}

/// Reads one batch of records from `socket` into `session` and decrypts them; the bytes read
/// (0: the socket's end of stream). A record that fails to decrypt or parse is an error.
fn feed(session: &mut ClientConnection, socket: &mut dyn Read) -> io::Result<usize> {
    let n = session.read_tls(socket)?;
    session.process_new_packets().map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    Ok(n)
}
