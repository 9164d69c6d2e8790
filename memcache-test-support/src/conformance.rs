//! The one conformance suite that every adapter runs.
//!
//! An adapter describes itself with [`Adapter`] (how to run a future, spawn a worker, bound a call
//! by a deadline, and how each client method is called) and instantiates the whole suite in its
//! `tests/conformance.rs` with one line:
//!
//! ```text
//! memcache_test_support::conformance_suite!(MyAdapter);
//! ```
//!
//! which expands to one `#[test]` per test function of this module, each running
//! `conformance::<name>::<MyAdapter>()` on [`Adapter::block_on`] under a watchdog.
//!
//! The same groups run over TLS in a test binary of their own per adapter
//! (`tests/conformance_tls.rs`: `conformance_suite!(tls MyAdapter)`): there every
//! [`Memcached::start`](crate::memcached::Memcached::start) starts `memcached -Z` with test
//! certificates (see [`crate::tls`]) and every client the suite builds trusts them.
//!
//! Every test starts its own real `memcached` servers ([`Memcached`](crate::memcached::Memcached))
//! and, for faults, its own [`FaultServer`](crate::fault::FaultServer)s and
//! [`Proxy`](crate::fault::Proxy)s, so tests run in parallel. Nothing in here is specific to an
//! adapter: a blocking client implements the async methods with ready futures, spawns threads,
//! and treats [`Adapter::timeout`] as "run to completion".

use std::fmt::Debug;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::mpsc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread;
use std::time::{Duration, Instant};

use memcache_proto::codec::Codec;
use memcache_proto::observe::{Observer, PoolStats};
use memcache_proto::{Error, FailurePolicy, Item, Limits, ServerSelector};

/// Asserts that `$res` is `Err` matching `$pat`, with a message naming what came instead.
macro_rules! expect_err {
    ($res:expr, $pat:pat, $($ctx:tt)+) => {
        match $res {
            Err($pat) => {}
            other => panic!(
                "{}: expected Err({}), got {:?}",
                format_args!($($ctx)+),
                stringify!($pat),
                other
            ),
        }
    };
}

/// Unwraps `Ok`, panicking with context and the error otherwise.
macro_rules! expect_ok {
    ($res:expr, $($ctx:tt)+) => {
        match $res {
            Ok(v) => v,
            Err(e) => panic!("{}: expected Ok, got Err({:?})", format_args!($($ctx)+), e),
        }
    };
}

mod basic;
mod bounds;
mod busy_poll;
mod chaos;
mod concurrency;
mod exactly_once;
mod faults;
mod fleet;
mod keys;
mod meta;
mod observe;
mod proxy;
mod servers;
mod tls;
#[cfg(feature = "tracing")]
mod traced;
mod typed;
mod util;

pub use basic::*;
pub use bounds::*;
pub use busy_poll::*;
pub use chaos::*;
pub use concurrency::*;
pub use exactly_once::*;
pub use faults::*;
pub use fleet::*;
pub use keys::*;
pub use meta::*;
pub use observe::*;
pub use proxy::*;
pub use servers::*;
pub use tls::*;
#[cfg(feature = "tracing")]
pub use traced::*;
pub use typed::*;
pub use util::XorShift;

/// Call timeout the suite configures unless a test is about timeouts: generous, because tests
/// run in parallel on small machines and a slow answer is not what they check.
pub const TEST_TIMEOUT: Duration = Duration::from_secs(5);

/// How long one conformance test may run before the watchdog fails it.
pub const TEST_DEADLINE: Duration = Duration::from_secs(180);

/// How to build a client for a test; `None` leaves the adapter's default.
#[derive(Clone, Default)]
pub struct ClientConfig {
    /// Server addresses, `host:port` or Unix socket paths, in selector order.
    pub servers: Vec<String>,
    /// Per-call timeout (`Builder::timeout`).
    pub timeout: Option<Duration>,
    /// Connect timeout (`Builder::connect_timeout`).
    pub connect_timeout: Option<Duration>,
    /// Per-server connection bound (`Builder::max_conns_per_server`).
    pub max_conns: Option<usize>,
    /// Busy-polling window (`Builder::busy_poll`).
    pub busy_poll: Option<Duration>,
    /// Dead-server handling (`Builder::failure_policy`).
    pub failure_policy: Option<FailurePolicy>,
    /// A selector used instead of `servers` (`Builder::selector`).
    pub selector: Option<Arc<dyn ServerSelector>>,
    /// Periodic re-resolution (`Builder::resolve_every`).
    pub resolve_every: Option<Duration>,
    /// TLS (`Builder::tls`). In a TLS run the suite sets the test CA's config when `None`.
    pub tls: Option<memcache_proto::tls::TlsConfig>,
    /// Open connections through a connector (`Builder::connector`) that counts them here and
    /// then connects as the adapter would.
    pub count_connections: Option<Arc<std::sync::atomic::AtomicUsize>>,
    /// Who hears the client's events (`Builder::observer`).
    pub observer: Option<Arc<dyn Observer>>,
    /// Whether spans carry the keys (`Builder::record_keys`, feature `tracing`).
    pub record_keys: bool,
    /// Decoder bounds (`Builder::limits`).
    pub limits: Option<Limits>,
}

impl Debug for ClientConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientConfig")
            .field("servers", &self.servers)
            .field("timeout", &self.timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("max_conns", &self.max_conns)
            .field("busy_poll", &self.busy_poll)
            .field("failure_policy", &self.failure_policy)
            .field("selector", &self.selector)
            .field("resolve_every", &self.resolve_every)
            .field("tls", &self.tls)
            .field("count_connections", &self.count_connections)
            .field("observer", &self.observer.is_some())
            .field("record_keys", &self.record_keys)
            .field("limits", &self.limits)
            .finish()
    }
}

impl ClientConfig {
    /// `servers` with the suite's [`TEST_TIMEOUT`] and the adapter's other defaults.
    pub fn new<S: Into<String>>(servers: impl IntoIterator<Item = S>) -> ClientConfig {
        ClientConfig {
            servers: servers.into_iter().map(Into::into).collect(),
            timeout: Some(TEST_TIMEOUT),
            connect_timeout: None,
            max_conns: None,
            busy_poll: None,
            failure_policy: None,
            selector: None,
            resolve_every: None,
            tls: None,
            count_connections: None,
            observer: None,
            record_keys: false,
            limits: None,
        }
    }

    /// Has the spans carry the keys (feature `tracing`; without it the setting is ignored).
    pub fn record_keys(mut self) -> ClientConfig {
        self.record_keys = true;
        self
    }

    /// Has `observer` hear the client's events.
    pub fn observer(mut self, observer: Arc<dyn Observer>) -> ClientConfig {
        self.observer = Some(observer);
        self
    }

    /// Sets the dead-server handling.
    pub fn failure_policy(mut self, policy: FailurePolicy) -> ClientConfig {
        self.failure_policy = Some(policy);
        self
    }

    /// Uses `selector` instead of the server list.
    pub fn selector(mut self, selector: Arc<dyn ServerSelector>) -> ClientConfig {
        self.selector = Some(selector);
        self
    }

    /// Looks the server names up again every `interval`.
    pub fn resolve_every(mut self, interval: Duration) -> ClientConfig {
        self.resolve_every = Some(interval);
        self
    }

    /// Secures the connections with `tls`.
    pub fn tls(mut self, tls: memcache_proto::tls::TlsConfig) -> ClientConfig {
        self.tls = Some(tls);
        self
    }

    /// Opens connections through a connector that counts them in `counter`.
    pub fn count_connections(mut self, counter: Arc<std::sync::atomic::AtomicUsize>) -> ClientConfig {
        self.count_connections = Some(counter);
        self
    }

    /// Sets the per-call timeout.
    pub fn timeout(mut self, timeout: Duration) -> ClientConfig {
        self.timeout = Some(timeout);
        self
    }

    /// Sets the decoder bounds.
    pub fn limits(mut self, limits: Limits) -> ClientConfig {
        self.limits = Some(limits);
        self
    }

    /// Sets the per-server connection bound.
    pub fn max_conns(mut self, n: usize) -> ClientConfig {
        self.max_conns = Some(n);
        self
    }

    /// Sets the busy-polling window.
    pub fn busy_poll(mut self, window: Duration) -> ClientConfig {
        self.busy_poll = Some(window);
        self
    }
}

/// The result of one client call, as an adapter's future yields it.
pub type Res<T> = Result<T, Error>;

/// One client implementation, seen by the suite. The client methods mirror DESIGN.md's public
/// API; a blocking adapter returns `std::future::ready(client.method(..))`.
pub trait Adapter: Sized + 'static {
    /// The adapter's `Client`.
    type Client: Clone + Send + Sync + 'static;
    /// A name for messages, e.g. `"memcache-tokio (current-thread)"`.
    const NAME: &'static str;

    /// Runs a whole test to completion (blocking: [`block_on_simple`]; tokio: a runtime;
    /// async-std: `task::block_on`).
    fn block_on<F: Future>(f: F) -> F::Output;
    /// Runs `f` concurrently (blocking: a thread, see [`spawn_thread`]; tokio: `tokio::spawn`;
    /// async-std: `task::spawn`). The returned future yields its output; panics propagate.
    fn spawn<F>(f: F) -> Pin<Box<dyn Future<Output = F::Output> + Send>>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static;
    /// Runs `f` with a deadline; `None` if it did not finish in time, in which case `f` is
    /// dropped right there (this is how cancellation is tested). A blocking adapter runs `f` to
    /// completion and returns `Some`.
    fn timeout<F: Future + Send>(d: Duration, f: F) -> impl Future<Output = Option<F::Output>> + Send;

    /// Builds a client with `Client::builder()`.
    fn connect(cfg: ClientConfig) -> Res<Self::Client>;

    memcache_proto::client_calls!(crate::adapters::declare_calls; c);

    /// `client.pool_stats()`: each server's connections, keyed by address.
    fn pool_stats(c: &Self::Client) -> std::collections::HashMap<String, PoolStats>;

    /// The client's typed view for values `T` through the codec `C`.
    type Typed<C, T>: crate::typed_view::TypedView<T>
    where
        C: Codec<T> + Send + Sync + 'static,
        T: Send + Sync + 'static;

    /// `client.typed(codec)`.
    fn typed<C, T>(c: &Self::Client, codec: C) -> Self::Typed<C, T>
    where
        C: Codec<T> + Send + Sync + 'static,
        T: Send + Sync + 'static;
}

/// Expands to one `#[test]` per conformance test for the adapter type `$a`.
///
/// Put each instantiation in its own module if a crate instantiates the suite more than once
/// (e.g. for two runtimes).
#[macro_export]
macro_rules! conformance_suite {
    ($a:ty) => {
        $crate::conformance_suite!(@tests $a;
            // basic
            get_hit_miss_and_cas,
            get_multi_skips_missing_keys,
            store_verbs_and_not_stored,
            compare_and_swap_semantics,
            delete_and_delete_lock,
            increment_and_decrement,
            incr_on_non_number_keeps_connection,
            touch_and_get_and_touch,
            flags_and_expiration,
            duration_max_timeouts_mean_no_deadline,
            // keys and values
            empty_and_binary_values,
            longest_and_non_ascii_keys,
            large_value_round_trip,
            oversized_value_refused_then_client_works,
            malformed_keys_never_reach_the_wire,
            unix_socket_server,
            // several servers
            get_multi_across_three_servers_uses_gomemcache_hashing,
            flush_all_reaches_every_server,
            ping_reaches_every_server,
            version_of_every_server,
            stats_keyed_by_server,
            close_releases_connections,
            get_multi_asks_servers_concurrently,
            get_multi_partial_keeps_healthy_results,
            // faults
            stalled_server_times_out,
            stalled_server_does_not_block_others,
            broken_connections_are_reported_and_never_reused,
            recovers_after_proxy_faults,
            recovers_after_server_restart,
            dribbled_replies_are_correct,
            late_reply_never_reaches_a_later_call,
            // a fleet of servers
            dead_server_fails_fast_and_is_probed_back,
            ketama_ejection_moves_only_the_down_servers_keys,
            set_servers_under_load_fails_no_call,
            a_names_second_address_serves_when_the_first_refuses,
            resolve_every_follows_a_name_that_moves,
            // bounds under failure
            desync_found_after_decoding_closes_the_connection,
            fresh_connections_read_with_the_call_timeout,
            writes_are_bounded_by_the_call_deadline,
            an_endless_reply_is_cut_at_the_deadline,
            a_reply_streamed_faster_than_read_is_cut_at_the_deadline,
            get_multi_beyond_the_reply_limits_is_split,
            // the retry rule
            written_reads_are_resent_once,
            written_writes_are_sent_exactly_once,
            chaos_soak_finds_no_wrong_answer,
            // concurrency
            sixteen_workers_share_one_client,
            bounded_connections_under_64_workers,
            cancelled_calls_never_cross_answers,
            // busy polling
            busy_polling_keeps_every_guarantee,
            busy_polling_reports_broken_connections,
            // behind a proxy
            twemproxy_supports_every_keyed_call,
            twemproxy_get_multi_of_200_keys_spans_every_backend,
            twemproxy_32_concurrent_getters_get_their_own_values,
            twemproxy_refused_calls_fail_fast_and_the_client_recovers,
            multi_key_replies_in_any_order,
            // typed values
            typed_calls_store_and_read,
            typed_compare_and_swap,
            typed_flag_mismatch_keeps_the_client,
            typed_values_share_pymemcache_flags,
            // the meta protocol
            meta_calls_and_their_outcomes,
            meta_binary_keys,
            meta_quiet_batch_of_100,
            meta_flags_newer_than_the_server_are_refused,
            leases_give_exactly_one_fill,
            stale_while_revalidate,
            // connectors and TLS
            custom_connector_opens_every_connection,
            mtls_client_certificates_and_trust,
            tls_server_restart_is_survived,
            tls_to_a_unix_socket_is_refused_at_build,
            // observability
            observer_hears_hits_and_misses,
            observer_hears_timeouts,
            observer_hears_protocol_errors,
            observer_hears_reconnects,
            observer_hears_dropped_futures,
            observer_hears_dropped_fan_outs,
            observer_hears_servers_marked_down_and_up,
        );
        // tracing (only in a test crate built with its `tracing` feature)
        $crate::conformance_suite!(@traced $a;
            tracing_spans_of_get_and_get_multi,
            tracing_records_failures,
            tracing_records_keys_only_when_asked,
        );
    };
    // The groups that make sense over TLS (the Unix-socket test does not: TLS over a Unix
    // socket is refused), each against `memcached -Z`. Use it in a test binary of its own.
    (tls $a:ty) => {
        $crate::conformance_suite!(@run run_tls $a;
            // basic
            get_hit_miss_and_cas,
            get_multi_skips_missing_keys,
            store_verbs_and_not_stored,
            compare_and_swap_semantics,
            delete_and_delete_lock,
            increment_and_decrement,
            incr_on_non_number_keeps_connection,
            touch_and_get_and_touch,
            flags_and_expiration,
            duration_max_timeouts_mean_no_deadline,
            // keys and values
            empty_and_binary_values,
            longest_and_non_ascii_keys,
            large_value_round_trip,
            oversized_value_refused_then_client_works,
            malformed_keys_never_reach_the_wire,
            // several servers
            get_multi_across_three_servers_uses_gomemcache_hashing,
            flush_all_reaches_every_server,
            ping_reaches_every_server,
            stats_keyed_by_server,
            close_releases_connections,
            get_multi_asks_servers_concurrently,
            get_multi_partial_keeps_healthy_results,
            // faults
            stalled_server_times_out,
            stalled_server_does_not_block_others,
            broken_connections_are_reported_and_never_reused,
            recovers_after_proxy_faults,
            recovers_after_server_restart,
            dribbled_replies_are_correct,
            late_reply_never_reaches_a_later_call,
            // concurrency
            sixteen_workers_share_one_client,
            // busy polling (the TLS session read without a waker); its broken-connection
            // test needs the fault servers, which speak no TLS
            busy_polling_keeps_every_guarantee,
        );
    };
    (@traced $a:ty; $($name:ident),* $(,)?) => {
        $(
            #[cfg(feature = "tracing")]
            #[test]
            fn $name() {
                $crate::conformance::run::<$a, _>(stringify!($name), $crate::conformance::$name::<$a>);
            }
        )*
    };
    (@tests $a:ty; $($name:ident),* $(,)?) => {
        $crate::conformance_suite!(@run run $a; $($name),*);
    };
    (@run $run:ident $a:ty; $($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                $crate::conformance::$run::<$a, _>(stringify!($name), $crate::conformance::$name::<$a>);
            }
        )*
    };
}

/// [`run`] in a TLS run: every server this process starts serves TLS
/// ([`serve_tls_by_default`](crate::tls::serve_tls_by_default)) and every client the suite
/// builds trusts it.
pub fn run_tls<A: Adapter, F: Future<Output = ()> + 'static>(name: &str, make: fn() -> F) {
    crate::tls::serve_tls_by_default();
    run::<A, F>(name, make)
}

/// Runs one test: `make()`'s future on [`Adapter::block_on`], on its own thread, failing the test
/// (instead of hanging the run) if it takes longer than [`TEST_DEADLINE`].
pub fn run<A: Adapter, F: Future<Output = ()> + 'static>(name: &str, make: fn() -> F) {
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let handle = thread::Builder::new()
        .name(format!("conformance-{name}"))
        .spawn(move || {
            A::block_on(make());
            let _ = done_tx.send(());
        })
        .expect("spawn the test thread");
    match done_rx.recv_timeout(TEST_DEADLINE) {
        Err(mpsc::RecvTimeoutError::Timeout) => {
            panic!("{} / {name}: did not finish within {TEST_DEADLINE:?} (hung?)", A::NAME)
        }
        // Finished, or panicked (the sender was dropped): join and pass the panic on.
        Ok(()) | Err(mpsc::RecvTimeoutError::Disconnected) => {
            if let Err(panic) = handle.join() {
                std::panic::resume_unwind(panic);
            }
        }
    }
}

struct ThreadWaker(thread::Thread);

impl Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

/// A trivial executor: polls `f` on this thread, parking between wake-ups. Enough for a blocking
/// adapter, whose futures are all ready at once.
pub fn block_on_simple<F: Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    let waker = Waker::from(Arc::new(ThreadWaker(thread::current())));
    let mut cx = Context::from_waker(&waker);
    loop {
        if let Poll::Ready(out) = f.as_mut().poll(&mut cx) {
            return out;
        }
        thread::park();
    }
}

/// [`Adapter::spawn`] for a blocking adapter: runs `f` on a new thread with [`block_on_simple`].
/// The returned future joins the thread when polled (blocking the poller, which is what a
/// blocking adapter wants) and re-raises its panic.
pub fn spawn_thread<F>(f: F) -> Pin<Box<dyn Future<Output = F::Output> + Send>>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handle = thread::Builder::new()
        .name("conformance-worker".into())
        .spawn(move || block_on_simple(f))
        .expect("spawn a worker thread");
    Box::pin(async move {
        match handle.join() {
            Ok(out) => out,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })
}

/// Builds a client, panicking with the adapter's error if that fails.
///
/// In a TLS run ([`run_tls`]) a config without TLS gets the test CA's.
pub(crate) fn client<A: Adapter>(mut cfg: ClientConfig) -> A::Client {
    if cfg.tls.is_none() && crate::tls::tls_by_default() {
        cfg.tls = Some(crate::tls::pki().client());
    }
    let shown = format!("{cfg:?}");
    expect_ok!(A::connect(cfg), "{}: building a client with {shown}", A::NAME)
}

/// Measures how long the call `f` makes takes. A closure, not a future: a blocking adapter does
/// its work when the future is created.
pub(crate) async fn timed<T, F: Future<Output = T>>(f: impl FnOnce() -> F) -> (T, Duration) {
    let start = Instant::now();
    let out = f().await;
    (out, start.elapsed())
}

/// Shortens a value for a panic message.
pub(crate) fn show(bytes: &[u8]) -> String {
    if bytes.len() <= 80 {
        format!("{:?}", String::from_utf8_lossy(bytes))
    } else {
        format!("{} bytes starting {:?}", bytes.len(), String::from_utf8_lossy(&bytes[..48]))
    }
}

/// Checks that `got` is the item `key` = `value` with `flags`.
#[track_caller]
pub(crate) fn check_item(got: &Item, key: &str, value: &[u8], flags: u32, ctx: impl Debug) {
    assert_eq!(got.key, key, "{ctx:?}: item key");
    assert!(
        &got.value[..] == value,
        "{ctx:?}: value of {key:?}: expected {}, got {}",
        show(value),
        show(&got.value)
    );
    assert_eq!(got.flags, flags, "{ctx:?}: flags of {key:?}");
}
