//! A sans-IO core for memcached's text protocol.
//!
//! This crate turns commands into bytes and bytes into replies. It owns no socket, thread,
//! clock or runtime, so it runs under any IO loop: the `memcache-blocking`, `memcache-tokio`
//! and `memcache-async-std` clients are thin adapters over it, and you can embed it in your
//! own event loop the same way.
//!
//! - [`Connection`]: the pipelined state machine. Send any number of commands, write what
//!   [`Connection::poll_transmit`] hands out, feed what you read, and collect replies in order.
//! - [`Decoder`]: the resumable, zero-copy parser under it, bounded by [`Limits`].
//! - [`op`]: gomemcache's calls as typed operations (`Get`, `Store`, `Delete`, `Arith`, ...): what to
//!   send and how the reply becomes a `Result`. Adapters execute these and nothing else.
//! - [`ServerList`] / [`ServerSelector`]: gomemcache's CRC32 sharding, bit for bit;
//!   [`Ketama`]: consistent hashing, bit for bit with libmemcached or spymemcached.
//! - [`health`]: dead-server handling ([`FailurePolicy`]): fail fast, one probe, ejection.
//! - [`resolve`]: server names kept with every address, and re-resolved on refresh.
//! - [`Error`]: the one error type every adapter returns; [`retry`]: the one rule for when a
//!   failed request may be sent again (never a write that may have reached the server).
//! - [`codec`]: typed values. A [`codec::Codec`] turns a value into bytes plus flags and
//!   back, refusing values another client or codec stored; JSON, postcard and compression
//!   sit behind the `json`, `postcard`, `zlib` and `lz4` features (none on by default).
//! - [`meta`]: the meta protocol, typed: builders where one method is one flag, outcome
//!   enums, quiet batches matched by opaque, leases and stale-while-revalidate.
//! - [`config`]: the one `Builder` and its defaults (100 ms timeout, 2 connections per server).
//! - [`io`]: reading into a connection's buffer through `Read`-style APIs, for adapters.
//! - `tls` (features `tls` / `tls-aws-lc-rs`): the one TLS configuration every adapter
//!   handshakes with (rustls; no IO here).
//!
//! # Two layers
//!
//! Everything above is the protocol: pure, with no socket, thread, lock, clock or runtime.
//! The optional `driver` module (feature `driver`, enabled by the async adapters) is the
//! second layer: the async client written once for every runtime, which shares pipelined
//! connections between tasks. It still owns no runtime or clock: an adapter supplies its
//! sockets, spawner, timer and the current time through `driver::Runtime`.
//!
//! # Driving a connection
//!
//! The whole loop over a blocking `TcpStream`:
//!
//! ```no_run
//! use std::io::{Read, Write};
//! use std::net::TcpStream;
//!
//! use memcache_proto::op::{Get, Op, Store};
//! use memcache_proto::command::StoreVerb;
//! use memcache_proto::{Connection, Error, Item};
//!
//! fn execute<O: Op>(conn: &mut Connection, sock: &mut TcpStream, op: O) -> Result<O::Output, Error> {
//!     let id = conn.send(op.command());
//!     while let Some(bytes) = conn.poll_transmit() {
//!         sock.write_all(&bytes)?;
//!     }
//!     let mut chunk = [0u8; 16 * 1024];
//!     loop {
//!         if let Some(done) = conn.poll_response()? {
//!             assert_eq!(done.id, id, "one request in flight");
//!             return op.finish(done.response);
//!         }
//!         let n = sock.read(&mut chunk)?;
//!         if n == 0 {
//!             return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof).into());
//!         }
//!         conn.handle_input(&chunk[..n]);
//!     }
//! }
//!
//! fn main() -> Result<(), Error> {
//!     let mut sock = TcpStream::connect("127.0.0.1:11211")?;
//!     let mut conn = Connection::new();
//!     execute(&mut conn, &mut sock, Store::new(StoreVerb::Set, &Item::new("greeting", "hello"))?)?;
//!     let item = execute(&mut conn, &mut sock, Get::new("greeting")?)?;
//!     assert_eq!(&item.value[..], b"hello");
//!     Ok(())
//! }
//! ```
//!
//! Pipelining is the same loop with several `send`s before the first read: replies come back
//! in order, each with the [`RequestId`] that `send` returned.
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

/// The crate's README (what crates.io shows), compiled and run here as doctests so that its
/// code can't drift from the API.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

pub mod codec;
pub mod command;
pub mod config;
mod connection;
mod decode;
#[cfg(feature = "driver")]
#[cfg_attr(docsrs, doc(cfg(feature = "driver")))]
pub mod driver;
mod error;
pub mod fleet;
mod grouping;
pub mod health;
pub mod io;
mod item;
mod ketama;
mod key;
mod keys;
mod limits;
mod matching;
pub mod meta;
pub mod multi;
pub mod observe;
pub mod op;
pub mod prelude;
pub mod resolve;
pub mod response;
pub mod retry;
mod selector;
mod surface;
#[cfg(any(feature = "tls", feature = "tls-aws-lc-rs"))]
#[cfg_attr(docsrs, doc(cfg(any(feature = "tls", feature = "tls-aws-lc-rs"))))]
pub mod tls;
pub mod trace;

pub use command::Command;
pub use connection::{Completed, Connection, RequestId};
pub use decode::Decoder;
pub use error::{Error, ProtoError, TlsError, TlsFailure};
pub use health::{FailurePolicy, Health};
pub use item::Item;
pub use ketama::Ketama;
pub use key::{Key, MAX_KEY_LEN, check as check_key};
pub use keys::{Keys, KeysBuilder};
pub use limits::Limits;
pub use response::{ReplyKind, Response};
pub use selector::{Endpoint, PickEach, ServerAddr, ServerList, ServerSelector};
