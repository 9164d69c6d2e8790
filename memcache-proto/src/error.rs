//! The one error type shared by the core and every adapter.
//!
//! [`Error`] mirrors gomemcache's error values (`ErrCacheMiss`, `ErrCASConflict`, ...) and adds
//! the failures a networked client meets. Each variant says whether the connection that produced
//! it may be reused; [`Error::is_connection_broken`] is the single place that rule is coded, and
//! every adapter asks it before returning a connection to its pool.

use std::io;
use std::sync::Arc;

use crate::codec::CodecError;

/// Everything a memcached call can fail with.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The item was not in the cache (`get`, `delete`, `touch`, `incr`, `decr`).
    /// The connection survives.
    #[error("memcache: cache miss")]
    CacheMiss,
    /// `compare_and_swap` lost a race: the item changed since it was read (`EXISTS`).
    /// The connection survives.
    #[error("memcache: compare-and-swap conflict")]
    CasConflict,
    /// A conditional store (`add`, `replace`, `append`, `prepend`, or `cas` of an item that is
    /// gone) was not performed. The connection survives.
    #[error("memcache: item not stored")]
    NotStored,
    /// The server answered `SERVER_ERROR <message>`. The protocol framed the answer completely,
    /// so the connection survives.
    #[error("memcache: server error: {0}")]
    Server(String),
    /// The server answered `CLIENT_ERROR <message>` (for example `incr` of a non-number).
    /// The connection survives.
    #[error("memcache: client error: {0}")]
    Client(String),
    /// The server answered `ERROR`: it does not know the command. The connection survives.
    #[error("memcache: server does not know the command")]
    UnknownCommand,
    /// `stats` got nothing back from any server.
    #[error("memcache: no statistics available")]
    NoStats,
    /// A key is empty, longer than 250 bytes, or holds a control character or space. Detected
    /// before any byte is written, so no connection is involved.
    #[error("memcache: malformed key: {0}")]
    MalformedKey(String),
    /// The selector has no servers to pick from.
    #[error("memcache: no servers configured or available")]
    NoServers,
    /// A server address could not be parsed or resolved.
    #[error("memcache: bad server address {0}")]
    BadAddress(String),
    /// The server did not answer (or accept the connection) within the configured timeout.
    /// The connection is closed: a late answer must never reach the next caller.
    #[error("memcache: i/o timeout")]
    Timeout,
    /// A socket error. The connection is closed.
    #[error("memcache: i/o error: {0}")]
    Io(#[source] Arc<io::Error>),
    /// The server sent bytes that are not memcached's protocol, or exceeded a [`Limits`] bound.
    /// The connection is closed.
    ///
    /// [`Limits`]: crate::Limits
    #[error("memcache: protocol error: {0}")]
    Protocol(#[from] ProtoError),
    /// A request uses a meta flag that the server's version predates, so it was not sent (an
    /// old server may ignore such a flag silently). No connection is involved.
    #[error("memcache: {what} needs memcached {needs} or newer; the server runs {server}")]
    Unsupported {
        /// The flag and what it does.
        what: String,
        /// The first release that understands it.
        needs: String,
        /// The server's version.
        server: String,
    },
    /// The client was closed with `close()`.
    #[error("memcache: client closed")]
    Closed,
    /// A typed call could not encode its value, or the value read is not the codec's (stored
    /// by another client or codec: the flags did not match) or not valid for it. The reply was
    /// read in full (or nothing was sent), so the connection survives.
    #[error("memcache: codec: {0}")]
    Codec(#[from] CodecError),
    /// The server for this key is marked down after repeated transport failures (see
    /// [`FailurePolicy`]): the call failed at once, without touching the network. Nothing was
    /// sent, so no connection is involved and the call may be retried, at `retry_at` or later
    /// for a chance of reaching this server.
    ///
    /// [`FailurePolicy`]: crate::FailurePolicy
    #[error("memcache: server {server} is down after repeated failures (not contacted)")]
    ServerUnavailable {
        /// The server that is down.
        server: crate::ServerAddr,
        /// When a caller will next be let through to probe it.
        retry_at: std::time::Instant,
    },
    /// The configuration cannot work (for example ejection with a selector that cannot eject,
    /// or changing the servers of a fixed selector). Nothing was changed.
    #[error("memcache: invalid configuration: {0}")]
    InvalidConfig(String),
    /// A TLS handshake or certificate failure, or a TLS configuration that cannot work. On a
    /// connection it is a transport failure: the connection is closed.
    #[error("memcache: TLS: {0}")]
    Tls(#[source] TlsError),
}

impl Error {
    /// A short, stable name for the kind of error (`cache_miss`, `timeout`, `io`, ...): what
    /// metrics label and OpenTelemetry's `error.type` record.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::CacheMiss => "cache_miss",
            Error::CasConflict => "cas_conflict",
            Error::NotStored => "not_stored",
            Error::Server(_) => "server_error",
            Error::Client(_) => "client_error",
            Error::UnknownCommand => "unknown_command",
            Error::NoStats => "no_stats",
            Error::MalformedKey(_) => "malformed_key",
            Error::NoServers => "no_servers",
            Error::BadAddress(_) => "bad_address",
            Error::Timeout => "timeout",
            Error::Io(_) => "io",
            Error::Protocol(_) => "protocol",
            Error::Closed => "closed",
            Error::Codec(_) => "codec",
            Error::ServerUnavailable { .. } => "server_unavailable",
            Error::InvalidConfig(_) => "invalid_config",
            Error::Tls(_) => "tls",
            #[allow(unreachable_patterns)]
            _ => "other",
        }
    }

    /// Whether the connection that produced this error must be dropped rather than reused.
    ///
    /// Only errors after which the byte stream is known to be in sync keep the connection:
    /// misses, conflicts, `NOT_STORED`, `CLIENT_ERROR`/`SERVER_ERROR`/`ERROR` lines that the
    /// protocol fully framed, and [`Error::Codec`] (a value that was read whole but could not be
    /// decoded, or one that could not be encoded before anything was sent). After a timeout, an IO error or a protocol error the stream
    /// position is unknown, so a reply meant for this call could reach the next one.
    pub fn is_connection_broken(&self) -> bool {
        matches!(self, Error::Timeout | Error::Io(_) | Error::Protocol(_) | Error::Closed | Error::Tls(_))
    }

    /// Whether the connection that produced `result` may serve another call. `result` is the
    /// call's *final* result, after [`Op::finish`](crate::op::Op::finish): a reply that decoded
    /// but does not fit the request (a value for a key that was not asked) is a
    /// [`Error::Protocol`] found only then, and it means the stream is out of sync as surely as
    /// a decoding error does. Every client decides whether to keep a connection with this.
    pub fn keeps_connection<T>(result: &Result<T, Error>) -> bool {
        !result.as_ref().is_err_and(Error::is_connection_broken)
    }

    /// Whether this error says the server (or the path to it) failed: a connect failure, a
    /// socket error, a timeout, a protocol error or a TLS failure (a refused handshake or
    /// certificate). Only these count against a server's health; a miss, `NOT_STORED`, a
    /// conflict, `CLIENT_ERROR` or `SERVER_ERROR` is the server answering.
    pub fn is_transport_failure(&self) -> bool {
        matches!(self, Error::Timeout | Error::Io(_) | Error::Protocol(_) | Error::Tls(_))
    }

    /// Whether the call may succeed if retried on a fresh connection (to the same or to a
    /// failover server): timeouts, socket errors and TLS failures (transport failures all).
    pub fn is_retryable(&self) -> bool {
        matches!(self, Error::Timeout | Error::Io(_) | Error::Tls(_))
    }

    /// Whether this error, met on a connection taken from the pool, may mean the connection had
    /// gone stale while idle (the server restarted, or a proxy or idle timeout closed it): a
    /// socket error, not a timeout.
    ///
    /// This is a symptom, not a license to send the request again: a request that may have
    /// reached the server is resent only if it is safe to apply twice. The clients decide with
    /// [`retry::may_resend`](crate::retry::may_resend), which codes the whole rule.
    pub fn is_stale_connection(&self) -> bool {
        matches!(self, Error::Io(_))
    }
}

impl From<io::Error> for Error {
    /// A timeout kind is [`Error::Timeout`]; a rustls error inside (how TLS streams report a
    /// failed handshake or a bad certificate) is [`Error::Tls`]; anything else is `Io`.
    fn from(e: io::Error) -> Self {
        #[cfg(any(feature = "tls", feature = "tls-aws-lc-rs"))]
        let e = match crate::tls::from_io(e) {
            Ok(tls) => return Error::Tls(tls),
            Err(e) => e,
        };
        match e.kind() {
            io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => Error::Timeout,
            _ => Error::Io(Arc::new(e)),
        }
    }
}

/// What kind of TLS failure an [`Error::Tls`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TlsFailure {
    /// The TLS settings cannot work (a PEM without a certificate, an unusable key, a Unix
    /// socket server, a server name that is not one).
    Config,
    /// The server's certificate is not signed by a trusted CA.
    CertificateNotTrusted,
    /// The server's certificate is trusted but refused (wrong name, expired, ...).
    CertificateInvalid,
    /// The server demanded a client certificate and the client has none (mTLS).
    ClientCertificateRequired,
    /// The server refused the client certificate that was sent.
    ClientCertificateRejected,
    /// Any other handshake or TLS record failure.
    Handshake,
}

/// A TLS failure: what kind, a message that says what happened, and (for handshake and
/// certificate failures) the rustls error as its source.
#[derive(Debug, Clone)]
pub struct TlsError {
    failure: TlsFailure,
    message: String,
    source: Option<Arc<dyn std::error::Error + Send + Sync>>,
}

impl TlsError {
    /// A TLS error of kind `failure`, saying `message`, caused by `source`.
    pub fn new(
        failure: TlsFailure,
        message: impl Into<String>,
        source: Option<Arc<dyn std::error::Error + Send + Sync>>,
    ) -> TlsError {
        TlsError { failure, message: message.into(), source }
    }

    /// What kind of failure this is.
    pub fn failure(&self) -> TlsFailure {
        self.failure
    }
}

impl std::fmt::Display for TlsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for TlsError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_deref().map(|e| e as &(dyn std::error::Error + 'static))
    }
}

impl From<TlsError> for Error {
    fn from(e: TlsError) -> Self {
        Error::Tls(e)
    }
}

/// A violation of the wire protocol by the peer. After one, a [`Connection`] is poisoned.
///
/// [`Connection`]: crate::Connection
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProtoError {
    /// A reply line that does not fit the reply expected for the request.
    #[error("unexpected reply line {line:?}")]
    UnexpectedLine {
        /// The offending line, lossily decoded and cut to 64 bytes.
        line: String,
    },
    /// A reply line longer than [`Limits::max_line_len`](crate::Limits::max_line_len).
    #[error("reply line longer than {limit} bytes")]
    LineTooLong {
        /// The limit in force.
        limit: usize,
    },
    /// A value longer than [`Limits::max_value_len`](crate::Limits::max_value_len).
    #[error("value of {len} bytes exceeds the limit of {limit}")]
    ValueTooLarge {
        /// The length the server announced.
        len: u64,
        /// The limit in force.
        limit: usize,
    },
    /// A value block that does not end in `\r\n` where its announced length says it must.
    #[error("value data not terminated by CRLF")]
    BadValueTerminator,
    /// A reply arrived while no request was in flight.
    #[error("reply received with no request in flight")]
    UnsolicitedReply,
    /// A reply longer than [`Limits::max_reply_len`](crate::Limits::max_reply_len) in all
    /// (lines and value data), or announcing a value that would make it so.
    #[error("reply longer than {limit} bytes")]
    ReplyTooLarge {
        /// The limit in force.
        limit: usize,
    },
    /// More values than [`Limits::max_values`](crate::Limits::max_values) in one reply.
    #[error("more than {limit} values in one reply")]
    TooManyValues {
        /// The limit in force.
        limit: usize,
    },
}

impl ProtoError {
    pub(crate) fn unexpected(line: &[u8]) -> Self {
        let cut = &line[..line.len().min(64)];
        ProtoError::UnexpectedLine { line: String::from_utf8_lossy(cut).into_owned() }
    }
}
