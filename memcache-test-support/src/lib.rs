//! Test machinery shared by the memcache adapters (not published).
//!
//! - [`memcached`]: starts real `memcached` servers (TCP on a free loopback port, or a Unix socket)
//!   and talks to them directly, independent of any client under test.
//! - [`fault`]: fake servers that stall, reset, answer garbage or half a value, and a proxy that
//!   dribbles, delays, holds or cuts the traffic of a real server; one that counts commands and
//!   loses replies; one that injects faults at random.
//! - [`sim`]: a deterministic world for the async driver: scripted in-memory servers, a manual
//!   clock and an executor the test drives.
//! - [`soak`]: the chaos soak, checking every answer against a model.
//! - [`tls`]: test certificates and `memcached -Z` (TLS, mTLS) for the TLS conformance runs.
//! - [`twemproxy`]: starts twemproxy (`nutcracker`) in front of real `memcached` servers.

/// The repository's README, whose code must compile against the published crates: rustdoc
/// compiles it here, where every client crate and runtime is a dependency.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
struct RepositoryReadmeDoctests;

pub mod adapters;
pub mod bench;
pub mod conformance;
pub mod fault;
pub mod floor;
pub mod memcached;
pub mod sim;
pub mod soak;
pub mod tls;
pub mod twemproxy;
pub mod typed_view;

pub use fault::{CountingProxy, Fault, FaultServer, Proxy, ProxyMode};
pub use memcached::Memcached;
pub use twemproxy::Twemproxy;
