//! The async client, written once for every runtime (feature `driver`).
//!
//! This is the one part of the crate that is not sans-IO: it shares connections between
//! tasks, takes locks, and drives sockets through the [`Transport`] an adapter supplies. It
//! still owns no runtime: an adapter implements [`Runtime`] (a socket type, a way to spawn a
//! task, a timer and a clock), and `memcache-tokio` and `memcache-async-std` are each
//! [`Client`] over their own. Time comes in through [`Runtime::now`] and [`Runtime::timeout`],
//! never from the system clock directly, so a test (or a simulated runtime) owns it.
//!
//! Inside: [`client`] (the calls, fan-out to several servers, retries), a pool of a few
//! pipelined connections per server with FIFO admission, the pipeline that shares one
//! [`Connection`](crate::Connection) between many callers (replies are matched in order,
//! concurrent single-key gets merged into one `gets`), and the task that moves its bytes and
//! enforces deadlines.

mod blocking;
pub mod client;
mod coalesce;
mod pipeline;
mod pool;
mod typed;

pub use blocking::{OnThread, on_thread};
pub use client::{Client, Connector, Runtime};
pub use pipeline::Transport;
pub use typed::Typed;
