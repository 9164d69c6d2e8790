//! The retry rule: when a failed request may be sent again on a fresh connection.
//!
//! A request that may have reached the server is never sent again, unless sending it twice
//! has the same effect as sending it once: a server that applies `incr k 1` and then loses
//! the connection before its reply arrives must not see a second `incr`. What a caller gets
//! after such a failure is the error ([`Error::Io`] or [`Error::Timeout`]): the outcome is
//! unknown, and saying so is the truth.
//!
//! Every client asks [`may_resend`] and nothing else, so the rule is coded once:
//! - a request no byte of which left the client may always be sent again once (a connection
//!   that failed before the request was written cannot have delivered it);
//! - a request that may have been written is sent again only if its command is
//!   [resend-safe](Command::is_resend_safe): reads (`get`, `gets`), `gat`/`gats` and `touch`
//!   (setting the same expiration twice is setting it once), `version`, `stats`, `verbosity`;
//! - and only after an IO error on a connection that had served an earlier call (taken from
//!   a pool): the symptom of a connection that went stale while idle (the server restarted,
//!   a proxy or idle timeout closed it). A fresh connection that fails, a timeout (the server
//!   is slow, not gone) or a protocol error is not retried;
//! - and only once per call.
//!
//! A pooled connection that died while idle is best found *before* writing (the blocking
//! client peeks at it on checkout; the async driver sees its EOF while the pipe is idle), so
//! that the common case, a restarted server, costs even a write request nothing.

use crate::Error;
use crate::command::Command;

/// What a client knows about one failed attempt to send a request and read its reply.
///
/// Build it with [`Attempt::on`] and the setters; pass it to [`may_resend`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attempt {
    reused: bool,
    written: bool,
    resent: bool,
}

impl Attempt {
    /// An attempt on a connection that had served an earlier call (`reused`: taken from a
    /// pool) or was opened for this one. Until told otherwise it assumes the request may
    /// have been written, the safe assumption.
    pub fn on(reused: bool) -> Attempt {
        Attempt { reused, written: true, resent: false }
    }

    /// Whether any byte of the request may have been handed to the transport. `false` only
    /// when the client knows that none was (the write failed before its first byte, or the
    /// request was never taken out of the queue).
    pub fn written(mut self, written: bool) -> Attempt {
        self.written = written;
        self
    }

    /// Whether this attempt was already a resend of the same request.
    pub fn resent(mut self, resent: bool) -> Attempt {
        self.resent = resent;
        self
    }
}

/// Whether a request whose attempt failed with `error` may be sent again on a fresh
/// connection. See the [module docs](self) for the rule.
pub fn may_resend(command: &Command, attempt: Attempt, error: &Error) -> bool {
    let stale = matches!(error, Error::Io(_)) && attempt.reused;
    stale && !attempt.resent && (!attempt.written || command.is_resend_safe())
}

impl Command {
    /// Whether sending this command twice has the same effect as sending it once, so that it
    /// may be sent again after it may have reached the server.
    ///
    /// Reads are (`get`, `gets`); so are `gat`/`gats` and `touch`, which set an expiration
    /// relative to their arrival (a second one sets it again to the same span), and
    /// `version`, `stats` and `verbosity`. Storage commands, `delete`, `incr`/`decr` and
    /// `flush_all` are not: a second `set` may overwrite another client's write made in
    /// between, a second `delete` reports a miss for a deletion that happened, a second `incr`
    /// counts twice. A `noreply` command never gets a reply to fail on, and `quit` closes the
    /// connection, so neither is resent. Meta requests follow
    /// [`MetaRequest::is_resend_safe`](crate::meta::MetaRequest::is_resend_safe); a batch is
    /// resent only if all of its requests may be.
    pub fn is_resend_safe(&self) -> bool {
        match self {
            Command::Get { .. } | Command::Version | Command::Stats { .. } => true,
            Command::Touch { noreply, .. } | Command::Verbosity { noreply, .. } => !noreply,
            Command::Store { .. }
            | Command::Delete { .. }
            | Command::Arith { .. }
            | Command::FlushAll { .. }
            | Command::Quit => false,
            Command::Meta(request) => request.is_resend_safe(),
            Command::MetaBatch(requests) => requests.iter().all(|r| r.is_resend_safe()),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io;
    use std::sync::Arc;

    use bytes::Bytes;

    use super::*;
    use crate::command::{ArithVerb, StoreVerb};
    use crate::meta::{MetaArith, MetaDelete, MetaGet, MetaRequest, MetaSet};
    use crate::{Key, Keys};

    fn key() -> Key {
        Key::copy_from(b"k").expect("valid")
    }

    fn io_error() -> Error {
        Error::Io(Arc::new(io::Error::from(io::ErrorKind::ConnectionReset)))
    }

    fn writes() -> Vec<Command> {
        let store = |verb| Command::Store {
            verb,
            key: key(),
            flags: 0,
            exptime: 0,
            value: Bytes::from_static(b"v"),
            noreply: false,
        };
        let arith = |verb| Command::Arith { verb, key: key(), delta: 1, noreply: false };
        vec![
            store(StoreVerb::Set),
            store(StoreVerb::Add),
            store(StoreVerb::Replace),
            store(StoreVerb::Append),
            store(StoreVerb::Prepend),
            store(StoreVerb::Cas(7)),
            Command::Delete { key: key(), hold: None, noreply: false },
            arith(ArithVerb::Incr),
            arith(ArithVerb::Decr),
            Command::FlushAll { delay: None, noreply: false },
            meta(MetaSet::new("k", "v").expect("key").into()),
            meta(MetaDelete::new("k").expect("key").into()),
            meta(MetaArith::new("k").expect("key").into()),
            meta(MetaGet::new("k").expect("key").lease(30).into()),
            meta(MetaGet::new("k").expect("key").recache_below(30).into()),
            Command::MetaBatch(vec![
                MetaGet::new("a").expect("key").into(),
                MetaSet::new("b", "v").expect("key").into(),
            ]),
        ]
    }

    fn meta(request: MetaRequest) -> Command {
        Command::Meta(request)
    }

    fn reads() -> Vec<Command> {
        let get = |cas, touch| Command::Get { keys: Keys::one(key()), cas, touch };
        vec![
            get(false, None),
            get(true, None),
            get(true, Some(10)),
            Command::Touch { key: key(), exptime: 10, noreply: false },
            Command::Version,
            Command::Stats { arg: None },
            meta(MetaGet::new("k").expect("key").cas().touch(10).into()),
            meta(MetaRequest::debug("k").expect("key")),
            Command::MetaBatch(vec![
                MetaGet::new("a").expect("key").into(),
                MetaGet::new("b").expect("key").into(),
            ]),
        ]
    }

    #[test]
    fn a_written_write_is_never_resent() {
        for c in writes() {
            assert!(!may_resend(&c, Attempt::on(true), &io_error()), "{c:?}");
            assert!(!c.is_resend_safe(), "{c:?}");
        }
    }

    #[test]
    fn an_unwritten_request_is_resent_once_after_a_stale_connection() {
        for c in writes().into_iter().chain(reads()) {
            let unwritten = Attempt::on(true).written(false);
            assert!(may_resend(&c, unwritten, &io_error()), "{c:?}");
            assert!(!may_resend(&c, unwritten.resent(true), &io_error()), "{c:?}");
        }
    }

    #[test]
    fn a_written_read_is_resent_once_after_a_stale_connection() {
        for c in reads() {
            assert!(may_resend(&c, Attempt::on(true), &io_error()), "{c:?}");
            assert!(!may_resend(&c, Attempt::on(true).resent(true), &io_error()), "{c:?}");
        }
    }

    #[test]
    fn only_an_io_error_on_a_reused_connection_is_stale() {
        let get = &reads()[0];
        assert!(!may_resend(get, Attempt::on(false), &io_error()));
        assert!(!may_resend(get, Attempt::on(false).written(false), &io_error()));
        for e in [Error::Timeout, Error::Closed, Error::Protocol(crate::ProtoError::UnsolicitedReply)] {
            assert!(!may_resend(get, Attempt::on(true).written(false), &e), "{e:?}");
        }
    }

    #[test]
    fn noreply_and_quit_are_not_resend_safe() {
        assert!(!Command::Touch { key: key(), exptime: 1, noreply: true }.is_resend_safe());
        assert!(!Command::Quit.is_resend_safe());
    }
}
