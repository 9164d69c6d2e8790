//! Spans and events for the `tracing` crate (feature `tracing`), with OpenTelemetry's names.
//!
//! Every public call of every client is one span named for the call (`get`, `get_multi`,
//! `compare_and_swap`, ...), with the fields of OpenTelemetry's database conventions:
//!
//! | field | value |
//! |---|---|
//! | `db.system.name` | `"memcached"` |
//! | `db.operation.name` | the call (`get_multi`), or the command on a per-server span (`gets`) |
//! | `server.address`, `server.port` | the server asked (host, and port for TCP servers) |
//! | `db.operation.batch.size` | the number of keys or requests of a multi-key call |
//! | `error.type` | [`Error::kind`] when the call failed (a miss is not a failure) |
//! | `memcached.key` | the key(s), only with `Builder::record_keys(true)` (feature `tracing`) |
//!
//! A call that asks several servers at once (`get_multi`, `flush_all`, `stats`, a
//! `meta_batch`) has one child span per server request, named `memcached` (its `otel.name` is
//! the command), with that server's fields and its own `error.type`. Connection events
//! (opened, connect failed, closed and why, waited for a connection, server marked down or
//! back up) are `debug` events with
//! the server's fields: they come from the same [observer events](crate::observe::Observer) as everything else,
//! through an observer this module puts in front of the user's.
//!
//! Every span and event has the target `memcache`. Keys are never recorded unless the client
//! was built with `record_keys(true)`: they can hold personal data. Without the feature,
//! everything here is an empty type and an empty inline function: the clients pay nothing.

#[cfg(feature = "tracing")]
use std::sync::Arc;

#[cfg(feature = "tracing")]
use crate::observe::{ConnectionEvent, Observer};
use crate::{Command, Error, ServerAddr};

/// The tracing crate, for the call-span macro as expanded in the adapters.
#[cfg(feature = "tracing")]
#[doc(hidden)]
pub use tracing as __tracing;

/// The span of one public call. Made by the client surface's callbacks (one per call, through
/// `__call_span!`): a call made by another public call (`get_multi` by way of
/// `get_multi_partial`, `meta_get` by way of `meta_op`) is part of its caller's span.
#[derive(Debug)]
pub struct CallSpan(#[cfg(feature = "tracing")] pub tracing::Span);

/// Opens a call span named `$name` (a literal: tracing names are static).
#[cfg(feature = "tracing")]
#[doc(hidden)]
#[macro_export]
macro_rules! __call_span {
    ($name:expr) => {
        if $crate::trace::in_call() {
            $crate::trace::CallSpan($crate::trace::__tracing::Span::none())
        } else {
            $crate::trace::CallSpan($crate::trace::__tracing::info_span!(
                target: "memcache",
                $name,
                db.system.name = "memcached",
                db.operation.name = $name,
                server.address = $crate::trace::__tracing::field::Empty,
                server.port = $crate::trace::__tracing::field::Empty,
                db.operation.batch.size = $crate::trace::__tracing::field::Empty,
                "error.type" = $crate::trace::__tracing::field::Empty,
                memcached.key = $crate::trace::__tracing::field::Empty,
            ))
        }
    };
}

/// Without the feature: no span.
#[cfg(not(feature = "tracing"))]
#[doc(hidden)]
#[macro_export]
macro_rules! __call_span {
    ($name:expr) => {
        $crate::trace::CallSpan()
    };
}

impl CallSpan {
    /// Runs the blocking call `f` inside the span, and records how it ended.
    #[inline]
    pub fn run<T: CallResult>(self, f: impl FnOnce() -> T) -> T {
        #[cfg(feature = "tracing")]
        let _entered = self.0.enter();
        let result = f();
        result.record();
        result
    }

    /// Runs the async call `f` inside the span (in each of its polls); then
    /// [`record`](Self::record) how it ended.
    #[cfg(feature = "tracing")]
    pub fn instrument<F: Future>(&self, f: F) -> tracing::instrument::Instrumented<F> {
        tracing::Instrument::instrument(f, self.0.clone())
    }

    /// Records how the call ended (`error.type`) on the span.
    #[cfg(feature = "tracing")]
    pub fn record<T: CallResult>(&self, result: &T) {
        self.0.in_scope(|| result.record());
    }
}

/// Whether the current span is a call span: a public call made by another is part of it.
#[cfg(feature = "tracing")]
#[doc(hidden)]
pub fn in_call() -> bool {
    tracing::Span::current().metadata().is_some_and(|m| m.target() == "memcache" && m.name() != "memcached")
}

/// What a call returns, as the span's `error.type` sees it.
pub trait CallResult {
    /// Records the call's failure, if any, on the current span.
    fn record(&self) {}
}

impl<T> CallResult for Result<T, Error> {
    #[inline]
    fn record(&self) {
        #[cfg(feature = "tracing")]
        match self {
            // A miss is an answer, not a failure.
            Err(Error::CacheMiss) | Ok(_) => {}
            Err(e) => {
                tracing::Span::current().record("error.type", e.kind());
            }
        }
    }
}

/// Calls that fail request by request (`meta_batch`) or not at all (`close`).
impl<T> CallResult for Vec<T> {}
impl CallResult for () {}

/// Records the number of keys or requests of a multi-key call on its span.
#[inline]
pub fn batch_size(n: usize) {
    #[cfg(feature = "tracing")]
    tracing::Span::current().record("db.operation.batch.size", n);
    #[cfg(not(feature = "tracing"))]
    let _ = n;
}

/// Records the server a keyed call goes to, and its key if the client records keys
/// (`record_keys`), on the call's span. Every client calls it once per keyed call.
#[inline]
pub fn route(config: &crate::config::Config, server: &ServerAddr, key: &crate::Key) {
    #[cfg(feature = "tracing")]
    {
        let span = tracing::Span::current();
        if span.is_disabled() {
            return;
        }
        let (address, port) = split(server);
        span.record("server.address", address);
        if let Some(port) = port {
            span.record("server.port", port);
        }
        if config.record_keys {
            span.record("memcached.key", tracing::field::display(key));
        }
    }
    #[cfg(not(feature = "tracing"))]
    let _ = (config, server, key);
}

/// The span of one server's part of a multi-server call (a child of the call's span).
#[derive(Debug)]
pub struct ServerSpan(#[cfg(feature = "tracing")] tracing::Span);

impl ServerSpan {
    /// The span of `command` to `server`, opened now (it closes when dropped).
    #[inline]
    pub fn new(config: &crate::config::Config, server: &ServerAddr, command: &Command) -> ServerSpan {
        #[cfg(feature = "tracing")]
        {
            let (address, port) = split(server);
            let name = command.name();
            let span = tracing::info_span!(
                target: "memcache",
                "memcached",
                otel.name = name,
                db.system.name = "memcached",
                db.operation.name = name,
                server.address = address,
                server.port = port,
                db.operation.batch.size = command.key_count(),
                "error.type" = tracing::field::Empty,
                memcached.key = tracing::field::Empty,
            );
            if config.record_keys && !span.is_disabled() {
                span.record("memcached.key", keys(command));
            }
            ServerSpan(span)
        }
        #[cfg(not(feature = "tracing"))]
        {
            let _ = (config, server, command);
            ServerSpan()
        }
    }

    /// Records how the request ended (`error.type` if it failed).
    #[inline]
    pub fn finish<T>(&self, result: &Result<T, Error>) {
        #[cfg(feature = "tracing")]
        if let Err(e) = result {
            self.0.record("error.type", e.kind());
        }
        #[cfg(not(feature = "tracing"))]
        let _ = result;
    }

    /// Runs `f` inside the span (so an event it reports belongs to it).
    #[inline]
    pub fn in_scope<T>(&self, f: impl FnOnce() -> T) -> T {
        #[cfg(feature = "tracing")]
        let _entered = self.0.enter();
        f()
    }
}

/// `server` as OpenTelemetry's `server.address` and `server.port`: a TCP server's host and
/// port, or a Unix socket's path and no port.
#[cfg(feature = "tracing")]
fn split(server: &ServerAddr) -> (&str, Option<u16>) {
    let name = server.as_str();
    match name.rsplit_once(':') {
        Some((host, port)) if !name.contains('/') => match port.parse() {
            Ok(port) => (host.trim_start_matches('[').trim_end_matches(']'), Some(port)),
            Err(_) => (name, None),
        },
        _ => (name, None),
    }
}

/// A retrieval's keys, space-separated as on the wire.
#[cfg(feature = "tracing")]
fn keys(command: &Command) -> String {
    match command {
        Command::Get { keys, .. } => String::from_utf8_lossy(keys.run().trim_ascii_start()).into_owned(),
        _ => String::new(),
    }
}

/// The observer a client is built with: with the feature, one that emits every connection
/// event as a `debug` event and passes everything on to `user`'s.
#[cfg(feature = "tracing")]
pub(crate) fn observer(user: Option<Arc<dyn Observer>>) -> Option<Arc<dyn Observer>> {
    Some(Arc::new(Tracing(user)))
}

/// Without the feature: the user's observer alone.
#[cfg(not(feature = "tracing"))]
pub(crate) fn observer(
    user: Option<std::sync::Arc<dyn crate::observe::Observer>>,
) -> Option<std::sync::Arc<dyn crate::observe::Observer>> {
    user
}

/// Connection events as `debug` events, then to the user's observer.
#[cfg(feature = "tracing")]
struct Tracing(Option<Arc<dyn Observer>>);

#[cfg(feature = "tracing")]
impl Observer for Tracing {
    fn operation(&self, event: &crate::observe::OperationEvent<'_>) {
        if let Some(user) = &self.0 {
            user.operation(event);
        }
    }

    fn connection(&self, event: &ConnectionEvent<'_>) {
        emit(event);
        if let Some(user) = &self.0 {
            user.connection(event);
        }
    }
}

/// One `debug` event for a connection event, with its server and reason.
#[cfg(feature = "tracing")]
fn emit(event: &ConnectionEvent<'_>) {
    use tracing::{Level, event};
    match event {
        ConnectionEvent::Opened { server, connect_time } => {
            let (address, port) = split(server);
            let connect_us = connect_time.as_micros() as u64;
            event!(target: "memcache", Level::DEBUG, server.address = address, server.port = port, connect_us,
                "memcached connection opened");
        }
        ConnectionEvent::ConnectFailed { server, error } => {
            let (address, port) = split(server);
            event!(target: "memcache", Level::DEBUG, server.address = address, server.port = port, "error.type" = *error,
                "memcached connection failed");
        }
        ConnectionEvent::Closed { server, reason } => {
            let (address, port) = split(server);
            event!(target: "memcache", Level::DEBUG, server.address = address, server.port = port, reason = reason.as_str(),
                "memcached connection closed");
        }
        ConnectionEvent::MarkedDown { server } => {
            let (address, port) = split(server);
            event!(target: "memcache", Level::DEBUG, server.address = address, server.port = port,
                "memcached server marked down");
        }
        ConnectionEvent::MarkedUp { server } => {
            let (address, port) = split(server);
            event!(target: "memcache", Level::DEBUG, server.address = address, server.port = port,
                "memcached server marked up");
        }
        ConnectionEvent::Waited { server, waited } => {
            let (address, port) = split(server);
            let waited_us = waited.as_micros() as u64;
            event!(target: "memcache", Level::DEBUG, server.address = address, server.port = port, waited_us,
                "waited for a memcached connection");
        }
    }
}

#[cfg(feature = "tracing")]
impl std::fmt::Debug for Tracing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tracing").field("observer", &self.0.is_some()).finish()
    }
}
