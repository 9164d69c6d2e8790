//! Client configuration shared by every adapter: one builder, one set of defaults.

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::observe::Observer;
use crate::{Error, FailurePolicy, Health, Limits, ServerList, ServerSelector};

/// gomemcache's `DefaultTimeout`: the socket read/write timeout of one call.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(100);

/// gomemcache's `DefaultMaxIdleConns`: idle connections kept per server, unless the client
/// chooses another default ([`FromConfig::DEFAULT_MAX_IDLE_CONNS`]).
pub const DEFAULT_MAX_IDLE_CONNS: usize = 2;

/// `after` past `from`, for deadlines: a duration too large for the clock (`Duration::MAX`
/// given as "no timeout") gives a deadline a century away instead of an overflow panic.
pub fn deadline(from: Instant, after: Duration) -> Instant {
    const CENTURY: Duration = Duration::from_secs(100 * 365 * 24 * 3600);
    [after, CENTURY, CENTURY / 100].into_iter().find_map(|d| from.checked_add(d)).unwrap_or(from)
}

/// Everything an adapter needs to build a client; made by [`Builder`].
#[derive(Clone)]
#[non_exhaustive]
pub struct Config {
    /// Picks the server for each key.
    pub selector: Arc<dyn ServerSelector>,
    /// Deadline of one call (write, then the whole reply), default 100 ms.
    pub timeout: Duration,
    /// Deadline for establishing a connection; defaults to `timeout`.
    pub connect_timeout: Duration,
    /// Idle connections kept per server for reuse (gomemcache's `MaxIdleConns`): a
    /// connection handed back while this many are idle is closed. It does not limit how many
    /// are open; [`max_conns_per_server`](Self::max_conns_per_server) does.
    pub max_idle_conns: usize,
    /// The most connections open to one server at once, if bounded. The blocking client
    /// makes a caller wait (within its timeout) when all are busy; the async clients pipeline
    /// many requests on each and open a new one only when the open ones are saturated. `None`
    /// (the default) is no bound for the blocking client (one connection per concurrent
    /// caller, as gomemcache) and two connections per server for the async clients.
    pub max_conns_per_server: Option<usize>,
    /// Most requests in flight on one pipelined connection (async clients).
    pub max_in_flight: usize,
    /// Decoder bounds.
    pub limits: Limits,
    /// Dead-server handling (see [`Builder::failure_policy`]).
    pub failure_policy: FailurePolicy,
    /// How often the server names are looked up again, if at all (see
    /// [`Builder::resolve_every`]).
    pub resolve_every: Option<Duration>,
    /// How long a caller waiting for its reply keeps checking the socket before it sleeps
    /// (zero, the default: it sleeps at once). See [`Builder::busy_poll`].
    pub busy_poll: Duration,
    /// Hears every operation and connection event, if set (see [`Builder::observer`]).
    pub observer: Option<Arc<dyn Observer>>,
    /// TLS for every connection ([`Builder::tls`]); `None`: plain text.
    #[cfg(any(feature = "tls", feature = "tls-aws-lc-rs"))]
    pub tls: Option<crate::tls::TlsConfig>,
    /// Whether spans carry the keys ([`Builder::record_keys`]).
    #[cfg(feature = "tracing")]
    pub record_keys: bool,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("servers", &self.selector.servers())
            .field("timeout", &self.timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("max_idle_conns", &self.max_idle_conns)
            .field("max_conns_per_server", &self.max_conns_per_server)
            .field("max_in_flight", &self.max_in_flight)
            .field("busy_poll", &self.busy_poll)
            .field("failure_policy", &self.failure_policy)
            .field("resolve_every", &self.resolve_every)
            .field("observer", &self.observer.is_some())
            .finish_non_exhaustive()
    }
}

/// Builds an adapter's client `C` (`Client::builder()` in every adapter returns one).
pub struct Builder<C: FromConfig> {
    servers: Option<Vec<String>>,
    selector: Option<Arc<dyn ServerSelector>>,
    timeout: Duration,
    connect_timeout: Option<Duration>,
    max_idle_conns: usize,
    max_conns_per_server: Option<usize>,
    max_in_flight: usize,
    limits: Limits,
    busy_poll: Duration,
    failure_policy: FailurePolicy,
    resolve_every: Option<Duration>,
    observer: Option<Arc<dyn Observer>>,
    connector: Option<C::Connector>,
    #[cfg(any(feature = "tls", feature = "tls-aws-lc-rs"))]
    tls: Option<crate::tls::TlsConfig>,
    #[cfg(feature = "tracing")]
    record_keys: bool,
    client: PhantomData<fn() -> C>,
}

/// A client that can be made from a [`Config`].
pub trait FromConfig: Sized {
    /// [`Builder::max_idle_conns`]'s default for this client.
    const DEFAULT_MAX_IDLE_CONNS: usize = DEFAULT_MAX_IDLE_CONNS;
    /// What opens the client's connections instead of its default sockets
    /// ([`Builder::connector`]); each adapter has its own, for its own kind of stream.
    type Connector;

    /// Makes the client. No connection is opened until the first call.
    fn from_config(config: Config, connector: Option<Self::Connector>) -> Result<Self, Error>;
}

impl<C: FromConfig> Default for Builder<C> {
    fn default() -> Self {
        Builder {
            servers: None,
            selector: None,
            timeout: DEFAULT_TIMEOUT,
            connect_timeout: None,
            max_idle_conns: C::DEFAULT_MAX_IDLE_CONNS,
            max_conns_per_server: None,
            max_in_flight: 1024,
            limits: Limits::default(),
            busy_poll: Duration::ZERO,
            failure_policy: FailurePolicy::default(),
            resolve_every: None,
            observer: None,
            connector: None,
            #[cfg(any(feature = "tls", feature = "tls-aws-lc-rs"))]
            tls: None,
            #[cfg(feature = "tracing")]
            record_keys: false,
            client: PhantomData,
        }
    }
}

impl<C: FromConfig> Builder<C> {
    /// A builder with gomemcache's defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// The servers, as `host:port` or Unix socket paths, hashed as gomemcache's `ServerList`.
    pub fn servers<S: AsRef<str>>(mut self, servers: impl IntoIterator<Item = S>) -> Self {
        self.servers = Some(servers.into_iter().map(|s| s.as_ref().to_owned()).collect());
        self
    }

    /// A custom selector, used instead of [`servers`](Self::servers).
    pub fn selector(mut self, selector: impl ServerSelector + 'static) -> Self {
        self.selector = Some(Arc::new(selector));
        self
    }

    /// Reports every operation (command, server, keys, bytes, duration, outcome) and every
    /// connection event (opened, closed and why, callers waiting) to `observer`. See
    /// [`observe`](crate::observe). Without one, the client pays nothing for reporting (with
    /// the `tracing` feature, an observer that emits connection events is always there, in
    /// front of this one).
    pub fn observer(mut self, observer: Arc<dyn Observer>) -> Self {
        self.observer = Some(observer);
        self
    }

    /// Whether the `tracing` spans carry the keys of each call (`memcached.key`), default
    /// `false`: keys can hold personal data, so they are left out unless asked for. See
    /// [`trace`](crate::trace).
    #[cfg(feature = "tracing")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tracing")))]
    pub fn record_keys(mut self, record: bool) -> Self {
        self.record_keys = record;
        self
    }

    /// Deadline of one call, default 100 ms.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Deadline for connecting, default: the call timeout.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = Some(timeout);
        self
    }

    /// Idle connections kept per server for reuse (gomemcache's `MaxIdleConns`; at least 1).
    /// The default is the client's: 64 for the blocking client, which opens one connection
    /// per concurrent caller, so a thread pool keeps its connections; it does not matter to
    /// the async clients, whose pipelined connections are shared, not idle. See
    /// [`Config::max_idle_conns`].
    pub fn max_idle_conns(mut self, n: usize) -> Self {
        self.max_idle_conns = n.max(1);
        self
    }

    /// The most connections open to one server at once (at least 1). Unbounded by default in
    /// the blocking client; two in the async clients, which pipeline many callers on each.
    /// See [`Config::max_conns_per_server`].
    pub fn max_conns_per_server(mut self, n: usize) -> Self {
        self.max_conns_per_server = Some(n.max(1));
        self
    }

    /// Most requests in flight on one pipelined connection (async clients, default 1024).
    pub fn max_in_flight(mut self, n: usize) -> Self {
        self.max_in_flight = n.max(1);
        self
    }

    /// Decoder bounds (default [`Limits::DEFAULT`]).
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Lets a caller that waits for its reply keep checking the socket for up to `window`
    /// before it goes to sleep (default zero: off).
    ///
    /// Waking a sleeping thread when the reply lands costs tens of microseconds on virtual
    /// machines, as much as a whole loopback round trip, so with a server on the same host or
    /// rack a short window (20-50 µs) can halve the latency of sequential calls. The price is
    /// CPU: the waiting thread spins for up to `window` on every call, and an async client
    /// keeps its executor thread busy meanwhile. Leave it off when the server is farther away
    /// than the window, when CPU is scarce, or when many calls run concurrently anyway.
    pub fn busy_poll(mut self, window: Duration) -> Self {
        self.busy_poll = window;
        self
    }

    /// Dead-server handling (default [`FailurePolicy::default`]: down after 3 consecutive
    /// transport failures, probed after 1 s, no ejection). A call for a down server's keys
    /// fails at once with [`Error::ServerUnavailable`] instead of waiting out a timeout;
    /// [`FailurePolicy::disabled`] sends every call to the network as gomemcache does.
    /// `build()` refuses `eject: true` unless the selector can eject ([`Ketama`]).
    ///
    /// [`Ketama`]: crate::Ketama
    pub fn failure_policy(mut self, policy: FailurePolicy) -> Self {
        self.failure_policy = policy;
        self
    }

    /// Looks the server names up again every `interval` (default: never; see
    /// `Client::refresh_servers` for doing it on demand), so a name whose addresses change
    /// is followed without a restart. The lookup runs off the call path (on a blocking
    /// thread in the async clients); a name that fails to resolve keeps its last good
    /// addresses.
    pub fn resolve_every(mut self, interval: Duration) -> Self {
        self.resolve_every = Some(interval);
        self
    }

    /// Opens every connection with `connector` instead of the adapter's own TCP or Unix
    /// socket: gomemcache's `DialContext`. Each adapter's `connector(..)` function makes one
    /// from a closure that, given a [`ServerAddr`](crate::ServerAddr), returns its kind of
    /// stream (`Read + Write` for blocking, Tokio's or futures-io's `AsyncRead + AsyncWrite`).
    /// It runs for every new connection, inside [`connect_timeout`](Self::connect_timeout),
    /// so a client reconnects through it after any failure. With [`tls`](Self::tls) too, the
    /// handshake runs over the stream it returns.
    pub fn connector(mut self, connector: C::Connector) -> Self {
        self.connector = Some(connector);
        self
    }

    /// Secures every connection with TLS: each new connection (plain, or from the
    /// [`connector`](Self::connector)) handshakes within the connect timeout and verifies the
    /// server as [`TlsConfig`](crate::tls::TlsConfig) says. Servers on Unix sockets are
    /// refused by [`build`](Self::build).
    #[cfg(any(feature = "tls", feature = "tls-aws-lc-rs"))]
    #[cfg_attr(docsrs, doc(cfg(any(feature = "tls", feature = "tls-aws-lc-rs"))))]
    pub fn tls(mut self, tls: crate::tls::TlsConfig) -> Self {
        self.tls = Some(tls);
        self
    }

    /// Resolves the servers and makes the client; no connection is opened yet.
    pub fn build(mut self) -> Result<C, Error> {
        let connector = self.connector.take();
        C::from_config(self.config()?, connector)
    }

    /// Resolves the servers into the [`Config`] that [`build`](Self::build) passes on (the
    /// connector, adapter-specific, is not part of it). Fails for TLS settings that cannot
    /// work with these servers.
    pub fn config(self) -> Result<Config, Error> {
        let selector: Arc<dyn ServerSelector> = match (self.selector, self.servers) {
            (Some(selector), _) => selector,
            (None, Some(servers)) => Arc::new(ServerList::new(servers)?),
            (None, None) => Arc::new(ServerList::default()),
        };
        Health::validate(&self.failure_policy, selector.as_ref())?;
        #[cfg(any(feature = "tls", feature = "tls-aws-lc-rs"))]
        let tls = self.tls.map(|tls| tls.check(&selector.servers()).map(|()| tls)).transpose()?;
        Ok(Config {
            selector,
            failure_policy: self.failure_policy,
            resolve_every: self.resolve_every,
            timeout: self.timeout,
            connect_timeout: self.connect_timeout.unwrap_or(self.timeout),
            max_idle_conns: self.max_idle_conns,
            max_conns_per_server: self.max_conns_per_server,
            max_in_flight: self.max_in_flight,
            limits: self.limits,
            busy_poll: self.busy_poll,
            observer: crate::trace::observer(self.observer),
            #[cfg(any(feature = "tls", feature = "tls-aws-lc-rs"))]
            tls,
            #[cfg(feature = "tracing")]
            record_keys: self.record_keys,
        })
    }
}

impl<C: FromConfig> fmt::Debug for Builder<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Builder").field("servers", &self.servers).field("timeout", &self.timeout).finish()
    }
}
