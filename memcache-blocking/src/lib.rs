//! A blocking memcached client over `std::net`, following gomemcache's API.
//!
//! ```no_run
//! use memcache_blocking::{Client, Error, Item};
//!
//! let client = Client::new(["127.0.0.1:11211"])?;
//! client.set(&Item::new("greeting", "hello").with_expiration(60))?;
//! assert_eq!(&client.get("greeting")?.value[..], b"hello");
//! match client.get("absent") {
//!     Err(Error::CacheMiss) => {}
//!     other => panic!("{other:?}"),
//! }
//! # Ok::<(), Error>(())
//! ```
//!
//! All protocol knowledge lives in [`memcache_proto`]; this crate opens sockets, pools them
//! per server (a connection per concurrent caller, up to `max_idle_conns` of them kept idle
//! for reuse, default 64; `max_conns_per_server` bounds how many are open, and a call that
//! finds them all busy waits for one within its timeout), and applies the per-call timeout
//! (default 100 ms) as a deadline over the whole exchange. A connection that saw a timeout, an IO
//! error or a protocol error is closed, never reused, so a late reply can't reach a later
//! call. TCP and Unix-socket servers are supported (an address containing `/` is a socket).
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

/// The crate's README (what crates.io shows), compiled and run here as doctests so that its
/// code can't drift from the API.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

mod client;
mod conn;
mod pool;
mod socket;
mod typed;

pub use client::Client;
pub use memcache_proto::prelude::*;
/// TLS settings ([`tls::TlsConfig`]) for `Builder::tls` (features `tls`, `tls-aws-lc-rs`).
#[cfg(any(feature = "tls", feature = "tls-aws-lc-rs"))]
pub use memcache_proto::tls;
pub use socket::{Connector, Socket, connect, connector};
pub use typed::Typed;
